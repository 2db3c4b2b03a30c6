"""devbox-ctl unpin: end a container's pin."""

from __future__ import annotations

import click

from devbox.cli import names
from devbox.cli.options import in_fleet, runtime


@click.command()
@click.argument("name", shell_complete=names.containers)
@click.pass_context
def command(ctx: click.Context, name: str) -> None:
    """End NAME's pin: idle stop and auto-destroy apply again (after their warnings)."""
    from devbox.runtime import pins  # noqa: PLC0415 - keep --help fast

    rt = runtime(ctx, changes=True)
    had = rt.container(name).pin is not None
    if in_fleet(rt):
        from devbox.runtime import fleet  # noqa: PLC0415 - keep --help fast

        fleet.deploy_after(rt, lambda: pins.unpin(rt, name), progress=click.echo)
    else:
        pins.unpin(rt, name)
    click.echo(f"Unpinned {name}." if had else f"{name} was not pinned.")
