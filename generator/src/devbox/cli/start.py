"""devbox-ctl start: start a container now and declare it running."""

from __future__ import annotations

import click

from devbox.cli import names
from devbox.cli.options import in_fleet, runtime


@click.command()
@click.argument("name", shell_complete=names.containers)
@click.option(
    "--no-apply",
    is_flag=True,
    help="In a fleet: record and commit, but print the deploy command. A single host "
    "rebuilds nothing for a start or a stop.",
)
@click.pass_context
def command(ctx: click.Context, name: str, no_apply: bool) -> None:
    """Start NAME within seconds, and record it as running (a reboot keeps it running)."""
    from devbox.runtime import fleet, operations  # noqa: PLC0415 - keep --help fast

    rt = runtime(ctx, changes=True)
    if in_fleet(rt):
        fleet.start(rt, name, apply=not no_apply, progress=click.echo)
    else:
        operations.start(rt, name, progress=click.echo)
