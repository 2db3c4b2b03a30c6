"""devbox-ctl check: whether the generated tree is what the inputs produce."""

from __future__ import annotations

import difflib
import sys
from pathlib import Path

import click

from devbox.cli.options import as_json, echo_json, inputs
from devbox.errors import ExitCode
from devbox.wording import files_differ


def _diff(path: str, old: bytes | None, new: bytes | None, out: Path) -> str:
    before = [] if old is None else old.decode("utf-8", "replace").splitlines(keepends=True)
    after = [] if new is None else new.decode("utf-8", "replace").splitlines(keepends=True)
    lines = difflib.unified_diff(
        before,
        after,
        fromfile=f"{out}/{path}" if old is not None else "/dev/null",
        tofile=f"{out}/{path} (from the inputs)" if new is not None else "/dev/null",
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


@click.command()
@inputs
@as_json
def command(users: Path | None, containers: Path | None, out: Path | None, as_json: bool) -> None:
    """Exit 1 with a diff when the generated tree is stale or was edited by hand.

    Exit 0 when the generated directory holds exactly what the inputs produce.
    """
    from devbox import write  # noqa: PLC0415 - keep --help fast
    from devbox.declare import pipeline  # noqa: PLC0415 - keep --help fast

    paths = pipeline.Paths.choose(users, containers, out)
    _, tree = pipeline.build(paths)
    on_disk = write.read_tree(paths.out)
    changes = {
        path: change
        for path, change in write.compare(on_disk, tree).items()
        if change is not write.Change.UNCHANGED
    }
    if as_json:
        echo_json(
            {
                "out": str(paths.out),
                "upToDate": not changes,
                "files": {p: c.value for p, c in changes.items()},
            }
        )
    elif changes:
        for path in changes:
            click.echo(_diff(path, on_disk.get(path), tree.get(path), paths.out), nl=False)
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
