"""devbox-ctl rotate-key: re-enroll a container in the tailnet with a fresh key."""

from __future__ import annotations

import click

from devbox.cli import names
from devbox.cli.options import in_fleet, runtime, wait_for_tailnet


@click.command()
@click.argument("name", shell_complete=names.containers)
@wait_for_tailnet
@click.pass_context
def command(ctx: click.Context, name: str, timeout: float) -> None:
    """Fetch a fresh auth key from 1Password and re-enroll NAME, keeping its volume.

    For an expired or revoked key, or a container that could not join. The key is
    neutralised again once the container is on the tailnet.
    """
    from devbox.runtime import fleet, operations  # noqa: PLC0415 - keep --help fast

    rt = runtime(ctx, changes=True)
    if in_fleet(rt):
        joined = fleet.rotate_key(rt, name, timeout=timeout, progress=click.echo)
        click.echo(f"{name} is on the tailnet again ({joined.get('dnsName') or name}).")
        return
    node = operations.rotate_key(rt, name, timeout=timeout, progress=click.echo)
    click.echo(f"{name} is on the tailnet again ({node.dns_name or name}).")
