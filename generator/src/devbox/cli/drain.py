"""devbox-ctl drain: move every container off a host of the fleet (for its maintenance)."""

from __future__ import annotations

import sys

import click

from devbox.cli import names
from devbox.cli.options import runtime
from devbox.errors import ExitCode


@click.command()
@click.argument("host", shell_complete=names.hosts)
@click.option("--dry-run", is_flag=True, help="Show where each container would go; move none.")
@click.pass_context
def command(ctx: click.Context, host: str, dry_run: bool) -> None:
    """Move every container off HOST, each to the host with most room (admins).

    One container that cannot be moved does not stop the others; the command says which
    failed, and running it again finishes what is left. Exit 3 when a move failed.
    """
    from devbox.host import fleet  # noqa: PLC0415 - keep --help fast
    from devbox.runtime import moves  # noqa: PLC0415 - keep --help fast

    rt = runtime(ctx)
    fleet.require_fleet(rt)
    drained = moves.drain(rt, host, dry_run=dry_run, progress=click.echo)
    if not drained.moves:
        click.echo(f"No containers on {host}.")
        return
    if dry_run:
        click.echo(f"Would move off {host}:")
        for name, target in drained.moves:
            click.echo(f"  {name} -> {target}")
        return
    click.echo(f"Moved off {host}: {', '.join(drained.moved) or 'none'}.")
    for name, why in sorted(drained.failed.items()):
        click.echo(f"error: {name}: {why}", err=True)
    if drained.failed:
        click.echo(f"hint: run devbox-ctl drain {host} again to finish", err=True)
        sys.exit(ExitCode.FAILED)
