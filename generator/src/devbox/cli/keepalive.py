"""devbox-ctl keepalive: inside a container, count it as active while nobody watches it."""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from pathlib import Path

import click

from devbox.errors import UsageError


def _home() -> Path:
    return Path(os.environ.get("HOME") or "/home/dev")


def _inside_a_container(home: Path) -> None:
    """Refuse (exit 2) where no host would read a lease: outside a devbox container.

    The host reads leases from a container's volume, where the container's activity monitor
    keeps its record; a home without that record is not a devbox container's, and a lease
    taken there would keep nothing alive.
    """
    from devbox.container import activity  # noqa: PLC0415 - keep --help fast

    record = home / activity.RECORD
    if not record.is_file():
        raise UsageError(
            f"keepalive runs inside a devbox container: {home} has no activity record "
            f"({activity.RECORD}), so no host would read a lease taken here",
            hint="connect to the container (ssh dev@NAME) and run it there",
        )


def _duration(text: str) -> timedelta:
    """--for's duration, the error naming the option."""
    from devbox import clock  # noqa: PLC0415 - keep --help fast

    try:
        return clock.parse_duration(text)
    except UsageError as exc:
        raise UsageError(f"--for: {exc.message}", hint=exc.hint) from exc


@click.command(context_settings={"ignore_unknown_options": False})
@click.option(
    "--for",
    "duration",
    metavar="DURATION",
    help="How long: 90m, 48h, 3d.  [default: 24h, or while CMD runs]",
)
@click.option("--reason", default="", help="What it is for (shown by cleanup and status --why).")
@click.option("--list", "list_leases", is_flag=True, help="Show the leases.")
@click.option("--cancel", metavar="ID", help="End a lease early (ID, or all).")
@click.argument("cmd", nargs=-1, type=click.UNPROCESSED)
def command(
    duration: str | None, reason: str, list_leases: bool, cancel: str | None, cmd: tuple[str, ...]
) -> None:
    """Keep this container from being stopped for idleness.

    \b
    devbox-ctl keepalive --for 48h --reason "training run"
    devbox-ctl keepalive -- make -j8 world      (a lease while the command runs)
    devbox-ctl keepalive --list
    devbox-ctl keepalive --cancel ID|all

    A lease counts as activity until it ends; the host caps each lease at maxPinDays.
    With -- CMD the lease is renewed while CMD runs and ended when it exits (--for then
    caps it); the exit code is CMD's.
    """  # noqa: D301 - \b is click's mark for a paragraph it must not rewrap
    from devbox.container import keepalive  # noqa: PLC0415 - keep --help fast

    home = _home()
    _inside_a_container(home)
    if list_leases or cancel:
        if cmd or duration:
            raise UsageError("--list and --cancel take no duration and no command")
        if cancel:
            ended = keepalive.release(home, cancel)
            click.echo(f"Ended {ended} lease{'s' if ended != 1 else ''}.")
            return
        for lease in keepalive.current(home):
            until = lease.until.strftime("%Y-%m-%d %H:%M UTC")
            click.echo(f"{lease.id}  until {until}  {lease.reason}")
        return
    limit = _duration(duration) if duration else None
    if cmd:
        sys.exit(keepalive.hold(home, list(cmd), reason, limit))
    lease = keepalive.take(home, limit or _duration("24h"), reason)
    click.echo(
        f"Kept alive until {lease.until.strftime('%Y-%m-%d %H:%M UTC')} (lease {lease.id}); "
        f"devbox-ctl keepalive --cancel {lease.id} ends it early."
    )
