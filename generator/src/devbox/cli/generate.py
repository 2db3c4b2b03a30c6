"""devbox-ctl generate: write the generated tree."""

from __future__ import annotations

from pathlib import Path

import click

from devbox.cli.options import as_json, echo_json, inputs


@click.command()
@inputs
@click.option("--dry-run", is_flag=True, help="Report what would change; write nothing.")
@click.option("--quiet", "-q", is_flag=True, help="Print only the summary line.")
@as_json
def command(
    users: Path | None,
    containers: Path | None,
    out: Path | None,
    dry_run: bool,
    quiet: bool,
    as_json: bool,
) -> None:
    """Write the generated tree from users.nix and containers.json.

    Only files whose content changed are written; the tree is replaced as a whole, so an
    interrupted run leaves the old tree or the new one. Each file is reported as created,
    updated, unchanged or removed.
    """
    from devbox.declare import pipeline  # noqa: PLC0415 - keep --help fast

    paths = pipeline.Paths.choose(users, containers, out)
    generated = pipeline.generate(paths, dry_run=dry_run)
    if as_json:
        echo_json(generated.as_json())
        return
    if not quiet:
        for path, change in generated.report.changes.items():
            click.echo(f"{change.value:<9} {path}")
    verb = "Would write" if dry_run else "Wrote"
    summary = ", ".join(f"{n} {name}" for name, n in generated.counts().items())
    click.echo(f"{verb} {paths.out}: {summary}.")
