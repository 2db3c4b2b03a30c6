"""devbox-ctl check: whether the generated tree is what the inputs produce."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from devbox.cli.options import as_json, echo_json, inputs
from devbox.errors import ExitCode
from devbox.wording import files_differ


@click.command()
@inputs
@as_json
def command(users: Path | None, containers: Path | None, out: Path | None, as_json: bool) -> None:
    """Exit 1 with a diff when the generated tree is stale or was edited by hand.

    Exit 0 when the generated directory holds exactly what the inputs produce.
    """
    from devbox.declare import pipeline  # noqa: PLC0415 - keep --help fast

    paths = pipeline.Paths.choose(users, containers, out)
    drift = pipeline.check(paths)
    changes = drift.changes
    if as_json:
        echo_json(drift.as_json())
    elif changes:
        for path in changes:
            click.echo(drift.diff(path), nl=False)
        click.echo(
            f"{paths.out} is not what the inputs produce "
            f"({files_differ(len(changes))}); "
            "run devbox-ctl generate",
            err=True,
        )
    else:
        click.echo(f"{paths.out} is up to date.")
    if changes:
        sys.exit(ExitCode.CHANGES)
