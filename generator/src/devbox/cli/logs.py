"""devbox-ctl logs: a container's output."""

from __future__ import annotations

import sys

import click

from devbox.cli.options import in_fleet, runtime


@click.command()
@click.argument("name")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new output.")
@click.option("--since", help='Only output since a time or duration, e.g. "1h" or "2026-11-26".')
@click.pass_context
def command(ctx: click.Context, name: str, follow: bool, since: str | None) -> None:
    """Show the output of NAME (podman logs)."""
    from devbox.runtime import fleet_views, reach  # noqa: PLC0415 - keep --help fast

    rt = runtime(ctx)
    verb = fleet_views.logs if in_fleet(rt) else reach.logs
    sys.exit(verb(rt, name, follow=follow, since=since))
