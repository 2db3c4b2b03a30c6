"""devbox-ctl connect: how to reach a container."""

from __future__ import annotations

import click

from devbox.cli import names
from devbox.cli.options import as_json, echo_json, runtime


@click.command()
@click.argument("name", shell_complete=names.containers)
@as_json
@click.pass_context
def command(ctx: click.Context, name: str, as_json: bool) -> None:
    """Print how to reach NAME: SSH, code-server, Zed, Syncthing."""
    from devbox.runtime import reach  # noqa: PLC0415 - keep --help fast

    container = reach.connect(runtime(ctx), name)
    if as_json:
        echo_json(reach.addresses(container))
        return
    click.echo(f"{name} (owner {container.owner}):")
    click.echo("\n".join(reach.instructions(container)))
