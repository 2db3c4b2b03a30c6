"""devbox-ctl connect: how to reach a container."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from devbox.cli.options import as_json, echo_json, runtime

if TYPE_CHECKING:  # keep --help fast: these import pydantic
    from devbox.declare.resolve import Container
    from devbox.tools.tailscale import NodeState


def instructions(container: Container, node: NodeState | None = None) -> list[str]:
    """How to reach a container over the tailnet."""
    host = container.name
    lines = [
        f"  SSH:          ssh dev@{host}",
        f"  code-server:  http://{host}:8080",
        f"  Zed:          Connect to Server → dev@{host}",
    ]
    if container.syncthing:
        lines += [
            f"  Syncthing:    http://{host}:8384  (user dev; password: ssh dev@{host} cat "
            "~/.config/syncthing/gui-password)",
        ]
    if node is not None and node.dns_name:
        lines.append(f"  Full name:    {node.dns_name}  {' '.join(node.addresses)}")
    return lines


@click.command()
@click.argument("name")
@as_json
@click.pass_context
def command(ctx: click.Context, name: str, as_json: bool) -> None:
    """Print how to reach NAME: SSH, code-server, Zed, Syncthing."""
    from devbox.host import identity  # noqa: PLC0415 - keep --help fast

    rt = runtime(ctx)
    container = rt.container(name)
    identity.authorize(rt.caller, container.owner, name, "connect to")
    if as_json:
        echo_json(
            {
                "ssh": f"dev@{name}",
                "codeServer": f"http://{name}:8080",
                "zed": f"dev@{name}",
                "syncthing": f"http://{name}:8384" if container.syncthing else None,
            }
        )
        return
    click.echo(f"{name} (owner {container.owner}):")
    click.echo("\n".join(instructions(container)))
