"""devbox-ctl deploy: deploy the fleet's hosts whose slice is not the committed one."""

from __future__ import annotations

import sys

import click

from devbox.cli import names
from devbox.cli.options import runtime
from devbox.errors import ExitCode


@click.command()
@click.argument("hosts", nargs=-1, shell_complete=names.hosts)
@click.pass_context
def command(ctx: click.Context, hosts: tuple[str, ...]) -> None:
    """Deploy HOSTS, or every host whose deployed slice is not the committed one.

    Runs the configured deploy tool (colmena by default) for each host, one after the other.
    A host that fails leaves the others applied; the message names it and the command that
    retries it. Exit 3 when a host failed. Admins only.
    """
    from devbox.host import fleet  # noqa: PLC0415 - keep --help fast

    rt = runtime(ctx)
    fleet.require_fleet(rt)
    done, behind = fleet.deploy(rt, hosts, progress=click.echo)
    if done.applied:
        click.echo(f"Deployed {', '.join(done.applied)}.")
    if done.failed:
        for host, why in sorted(done.failed.items()):
            click.echo(f"error: deploying {host} failed ({why})", err=True)
        click.echo(f"hint: fix what the output above says, then run `{done.retry()}`", err=True)
        sys.exit(ExitCode.FAILED)
    if behind and not done.applied:
        sys.exit(ExitCode.FAILED)
