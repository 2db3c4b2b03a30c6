"""devbox-ctl move: move a container to another host of the fleet, data and identity."""

from __future__ import annotations

import click

from devbox.cli import names
from devbox.cli.options import runtime


@click.command()
@click.argument("name", shell_complete=names.containers)
@click.option(
    "--to", "target", required=True, shell_complete=names.hosts, help="The host to move it to."
)
@click.pass_context
def command(ctx: click.Context, name: str, target: str) -> None:
    """Move NAME to the host TARGET: its volume, its Tailscale identity, its state.

    Stops it, copies its volume host to host, declares it on TARGET, deploys both hosts and
    starts it there if it was running; the old copy is removed only once it runs on TARGET.
    Interrupted at any point, the same command finishes the move.
    """
    from devbox.host import fleet  # noqa: PLC0415 - keep --help fast
    from devbox.runtime import moves  # noqa: PLC0415 - keep --help fast

    rt = runtime(ctx)
    fleet.require_fleet(rt)
    moves.move(rt, name, target, progress=click.echo)
