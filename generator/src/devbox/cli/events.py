"""devbox-ctl events: the event log (stops, starts, destroys, restores, warnings, pins)."""

from __future__ import annotations

import click

from devbox.cli import names
from devbox.cli.options import as_json, echo_json, runtime


@click.command()
@click.option(
    "--container",
    "-c",
    metavar="NAME",
    shell_complete=names.containers,
    help="Only this container's events.",
)
@click.option(
    "--since",
    metavar="WHEN",
    help="From a time (2026-11-20, 2026-11-20T09:00:00Z) or an age (48h, 7d).",
)
@as_json
@click.pass_context
def command(ctx: click.Context, container: str | None, since: str | None, as_json: bool) -> None:
    """Show the event log, oldest first: who or what did what to which container, and why.

    Users see their own containers' events, admins all. --json prints every field of each
    event (the signals and the policy at that moment included).
    """
    from devbox.runtime import listing  # noqa: PLC0415 - keep --help fast

    chosen = listing.event_log(runtime(ctx), container=container, since=since)
    if as_json:
        echo_json(chosen)
        return
    for event in chosen:
        click.echo(listing.event_line(event))
