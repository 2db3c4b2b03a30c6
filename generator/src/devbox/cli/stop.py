"""devbox-ctl stop: stop a container now and declare it stopped."""

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
    """Stop NAME within seconds, and record it as stopped (a reboot keeps it stopped).

    Its volume stays. The auto-destroy clock (stoppedDestroyDays) starts now.
    """
    from devbox.runtime import fleet, operations  # noqa: PLC0415 - keep --help fast

    rt = runtime(ctx, changes=True)
    if in_fleet(rt):
        fleet.stop(rt, name, apply=not no_apply, progress=click.echo)
    else:
        operations.stop(rt, name, progress=click.echo)
