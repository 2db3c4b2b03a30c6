"""One function per systemd command devbox runs, all against a user's own systemd manager.

Containers are user services of their owner (rootless podman under Quadlet); root reaches the
owner's manager with `systemctl --user --machine=<user>@`, which needs the user to linger
(the NixOS module sets that).

A command run in a user's manager (`systemd-run --user --machine=<user>@`) is named by its
absolute path: systemd-run makes a command absolute only for the local transport
(`shall_make_executable_absolute()` in systemd's src/run/run.c), and the manager searches a
bare name only in systemd's compiled-in path, which NixOS patches to systemd's own bin/; the
unit then fails with status 203/EXEC (docs/tools-checked.md).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import PurePosixPath

from devbox.errors import ToolError
from devbox.tools import process

# systemctl's exit status for "no such unit" (LSB "program is not installed").
NOT_LOADED = 5
# A service's exit status when the manager could not execute its command (EXIT_EXEC, "203/EXEC");
# systemd-run --wait returns the service's status.
EXIT_EXEC = 203
# How systemctl show prints a timestamp property: "Sat 2026-11-28 08:14:19 UTC" (weekday, date,
# time, time zone abbreviation; FORMAT_TIMESTAMP in systemd's src/basic/time-util.c).
TIMESTAMP = re.compile(r"^[A-Z][a-z]{2} (\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}) UTC$")


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
    # systemctl prints timestamps in its own time zone: UTC, so that timestamp() reads them.
    result = process.run(
        _user_systemctl(user, "show", unit, f"--property={','.join(names)}"),
        env={"TZ": "UTC"},
        timeout=60,
    )
    if not result.ok:
        return {}
    values = {}
    for line in result.stdout.splitlines():
        key, _, value = line.partition("=")
        values[key] = value
    return values


def timestamp(value: str) -> datetime | None:
    """A timestamp as systemctl show prints it in UTC, or None (empty, or another zone)."""
    match = TIMESTAMP.match(value.strip())
    if match is None:
        return None
    return datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)


def in_user_manager(user: str, argv: Sequence[str]) -> list[str]:
    """The command line that runs argv as a transient unit of the user's manager.

    Standard input and output pass through; it waits for the unit and returns its exit status.
    argv[0] must be an absolute path.
    """
    if not argv or not PurePosixPath(argv[0]).is_absolute():
        raise ToolError(
            f"{argv[0] if argv else 'an empty command'} is not an absolute path; "
            f"{user}'s systemd manager could not run it"
        )
    return [
        "systemd-run",
        "--user",
        f"--machine={user}@",
        "--wait",
        "--collect",
        "--quiet",
        "--pipe",
        *argv,
    ]


def run_in_user_manager(user: str, argv: Sequence[str]) -> process.Result:
    """Run a command as a transient unit of the user's manager (their podman, their session)."""
    return process.run(in_user_manager(user, argv), timeout=600)
