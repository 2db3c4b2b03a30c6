"""How to reach a container (connect) and read its output (logs).

The ports are the image's (containers/devcontainer/entrypoint.sh binds code-server and the
Syncthing GUI to them on 127.0.0.1; tailscaled forwards tailnet connections there).
"""

from __future__ import annotations

from typing import Any

from devbox.declare.resolve import Container
from devbox.errors import ToolError
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


def journal(container: Container) -> str:
    """Where a container's output is once its container is gone: its unit's journal.

    Quadlet runs a container with --rm, so a container that stopped or died is removed with
    its podman logs; the unit's journal keeps what it printed.
    """
    unit, owner = container.service, container.owner
    return (
        f"journalctl --user -u {unit} (as {owner}), or as root: "
        f"journalctl --user -M {owner}@ -u {unit}"
    )


def logs(rt: Runtime, name: str, *, follow: bool, since: str | None) -> None:
    """Show the output of NAME (podman logs) on this terminal.

    A failure is an error of devbox's (exit 3), not podman's raw words: for a container that
    is gone, where its output went instead.
    """
    container = rt.container(name)
    authorize(rt.caller, container.owner, name, "read the logs of")
    podman = rt.podman(container.owner)
    code, said = process.run_attached_said(podman.logs_argv(name, follow=follow, since=since))
    if code == 0:
        return
    if podman.inspect_container(name) is None:
        raise ToolError(
            f"{name} has no container now, so podman has no logs of it (Quadlet removes a "
            "container that stopped or failed, with its logs)",
            hint=f"its unit's journal has what it printed: {journal(container)}",
        )
    raise ToolError(f"podman logs {name} failed: {said or f'exit {code}'}")
