"""devbox-ctl logs: a container's output."""

from __future__ import annotations

import sys

import click

from devbox.cli import names
from devbox.cli.options import in_fleet, runtime


@click.command()
@click.argument("name", shell_complete=names.containers)
@click.option("--follow", "-f", is_flag=True, help="Keep printing new output.")
@click.option("--since", help='Only output since a time or duration, e.g. "1h" or "2026-11-26".')
@click.pass_context
def command(ctx: click.Context, name: str, follow: bool, since: str | None) -> None:
    """Show the output of NAME (podman logs).

    Exit 3 when podman cannot show it (a container that is gone: its unit's journal has its
    output, and the message says how to read it), 4 when it is not yours.
    """
    from devbox.runtime import fleet_views, reach  # noqa: PLC0415 - keep --help fast

    rt = runtime(ctx)
    if in_fleet(rt):
        sys.exit(fleet_views.logs(rt, name, follow=follow, since=since))
    reach.logs(rt, name, follow=follow, since=since)
