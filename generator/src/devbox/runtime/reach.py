"""How to reach a container (connect) and read its output (logs).

The ports are the image's (containers/devcontainer/entrypoint.sh binds code-server and the
Syncthing GUI to them on 127.0.0.1; tailscaled forwards tailnet connections there).
"""

from __future__ import annotations

from typing import Any

from devbox.declare.resolve import Container
from devbox.host.context import Runtime
from devbox.host.identity import authorize
from devbox.tools import process
from devbox.tools.tailscale import NodeState

CODE_SERVER_PORT = 8080
SYNCTHING_PORT = 8384


def connect(rt: Runtime, name: str) -> Container:
    """The container NAME, if the caller may connect to it."""
    container = rt.container(name)
    authorize(rt.caller, container.owner, name, "connect to")
    return container


def addresses(container: Container) -> dict[str, Any]:
    """`connect --json`: each way in."""
    name = container.name
    return {
        "ssh": f"dev@{name}",
        "codeServer": f"http://{name}:{CODE_SERVER_PORT}",
        "zed": f"dev@{name}",
        "syncthing": f"http://{name}:{SYNCTHING_PORT}" if container.syncthing else None,
    }


def instructions(container: Container, node: NodeState | None = None) -> list[str]:
    """How to reach a container over the tailnet, one way a line."""
    host = container.name
    lines = [
        f"  SSH:          ssh dev@{host}",
        f"  code-server:  http://{host}:{CODE_SERVER_PORT}",
        f"  Zed:          Connect to Server → dev@{host}",
    ]
    if container.syncthing:
        lines += [
            f"  Syncthing:    http://{host}:{SYNCTHING_PORT}  (user dev; password: ssh dev@{host} "
            "cat ~/.config/syncthing/gui-password)",
        ]
    if node is not None and node.dns_name:
        lines.append(f"  Full name:    {node.dns_name}  {' '.join(node.addresses)}")
    return lines


def in_short(container: Container) -> str:
    """The ways in on one line."""
    name = container.name
    return f"Connect: ssh dev@{name}   http://{name}:{CODE_SERVER_PORT}   Zed: dev@{name}"


def logs(rt: Runtime, name: str, *, follow: bool, since: str | None) -> int:
    """Show the output of NAME (podman logs) on this terminal; podman's exit code."""
    container = rt.container(name)
    authorize(rt.caller, container.owner, name, "read the logs of")
    argv = rt.podman(container.owner).logs_argv(name, follow=follow, since=since)
    return process.run_attached(argv)
