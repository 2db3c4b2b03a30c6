"""One function per systemd command devbox runs, all against a user's own systemd manager.

Containers are user services of their owner (rootless podman under Quadlet); root reaches the
owner's manager with `systemctl --user --machine=<user>@`, which needs the user to linger
(the NixOS module sets that).
"""

from __future__ import annotations

from collections.abc import Sequence

from devbox import process
from devbox.errors import ToolError

# systemctl's exit status for "no such unit" (LSB "program is not installed").
NOT_LOADED = 5


def _user_systemctl(user: str, *args: str) -> list[str]:
    return ["systemctl", "--user", f"--machine={user}@", "--no-ask-password", *args]


def daemon_reload(user: str) -> None:
    """Rerun the user's generators (Quadlet among them) over the installed unit files."""
    result = process.run(_user_systemctl(user, "daemon-reload"), timeout=120)
    if not result.ok:
        raise ToolError(
            f"could not reload {user}'s systemd manager: {result.stderr.strip()}",
            hint=f"is {user} lingering? loginctl enable-linger {user}",
        )


def act(user: str, verb: str, units: Sequence[str], *, wait: bool = True) -> process.Result:
    """start, stop or restart units in the user's manager; the caller decides about errors."""
    args = [verb, *([] if wait else ["--no-block"]), *units]
    return process.run(_user_systemctl(user, *args), timeout=600)


def not_loaded(result: process.Result) -> bool:
    """Whether systemctl failed because the manager knows no such unit (nothing to stop)."""
    return result.returncode == NOT_LOADED or "not loaded" in result.stderr


def properties(user: str, unit: str, names: Sequence[str]) -> dict[str, str]:
    """Properties of one unit (e.g. ActiveState, ActiveEnterTimestamp) as systemctl shows them."""
    result = process.run(
        _user_systemctl(user, "show", unit, f"--property={','.join(names)}"), timeout=60
    )
    if not result.ok:
        return {}
    values = {}
    for line in result.stdout.splitlines():
        key, _, value = line.partition("=")
        values[key] = value
    return values


def run_in_user_manager(user: str, argv: Sequence[str]) -> process.Result:
    """Run a command as a transient unit of the user's manager (their podman, their session)."""
    return process.run(
        [
            "systemd-run",
            "--user",
            f"--machine={user}@",
            "--wait",
            "--collect",
            "--quiet",
            "--pipe",
            *argv,
        ],
        timeout=600,
    )
