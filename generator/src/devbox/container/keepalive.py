"""Keep-alive leases: `devbox-ctl keepalive` inside a container, for work nobody watches.

A lease says "count this container as active until then": a training run, a long build,
a download. `devbox-ctl keepalive --for 48h --reason …` takes one; `devbox-ctl keepalive
-- CMD …` holds one while CMD runs (renewed every few minutes, an hour ahead, and removed
when CMD exits, so a killed keepalive stops counting within the hour). The leases live in
`~/.local/state/devbox/keepalive.json` (docs/container-interface.md); the host reads them from
the volume and caps each lease at maxPinDays from when it was taken.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path

from devbox import clock, write
from devbox.container import activity
from devbox.container.activity import Lease, Leases
from devbox.errors import UsageError
from devbox.tools import process

# While a command runs, its lease reaches this far ahead and is renewed this often.
HOLD_AHEAD = timedelta(hours=1)
RENEW_SECONDS = 300
# A change to the leases: from the current ones (expired dropped) and now, the new ones.
Edit = Callable[[list[Lease], datetime], list[Lease]]


def _path(home: Path) -> Path:
    return home / activity.LEASES


def current(home: Path) -> list[Lease]:
    """The leases on file (an unreadable file is an error: it is the user's own)."""
    try:
        content = _path(home).read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise UsageError(f"{_path(home)} cannot be read: {exc.strerror}") from exc
    try:
        return activity.parse_leases(content).leases
    except activity.Unreadable as exc:
        raise UsageError(
            f"{_path(home)} is not a lease file: {exc}",
            hint=f"remove it (rm {_path(home)}) and take the lease again",
        ) from exc


def _change(home: Path, edit: Edit) -> list[Lease]:
    """Read, change and write the leases under a lock; expired leases are dropped."""
    directory = write.ensure_directory(home / activity.STATE, mode=0o755)
    with write.locked(directory):
        now = clock.now()
        leases = [lease for lease in current(home) if lease.until > now]
        leases = edit(leases, now)
        write.write_file(_path(home), Leases(version=activity.VERSION, leases=leases).to_json())
    return leases


def take(home: Path, duration: timedelta, reason: str) -> Lease:
    """Take a lease from now for a duration."""
    lease_id = uuid.uuid4().hex[:12]

    def add(leases: list[Lease], now: datetime) -> list[Lease]:
        return [*leases, Lease(id=lease_id, until=now + duration, reason=reason, created_at=now)]

    leases = _change(home, add)
    return next(lease for lease in leases if lease.id == lease_id)


def release(home: Path, lease_id: str) -> int:
    """End a lease ("all": every one); return how many ended."""
    ended = 0

    def remove(leases: list[Lease], _now: datetime) -> list[Lease]:
        nonlocal ended
        kept = [lease for lease in leases if lease_id not in ("all", lease.id)]
        ended = len(leases) - len(kept)
        return kept

    _change(home, remove)
    return ended


def _renew(home: Path, lease_id: str, limit: datetime | None) -> None:
    def renew(leases: list[Lease], now: datetime) -> list[Lease]:
        until = now + HOLD_AHEAD if limit is None else min(now + HOLD_AHEAD, limit)
        return [
            lease.model_copy(update={"until": until}) if lease.id == lease_id else lease
            for lease in leases
        ]

    _change(home, renew)


def hold(home: Path, argv: Sequence[str], reason: str, limit: timedelta | None = None) -> int:
    """Run a command holding a lease, renewed while it runs and ended when it exits.

    With a limit, the lease ends after that long even if the command still runs. Returns the
    command's exit code.
    """
    end = None if limit is None else clock.now() + limit
    first = HOLD_AHEAD if limit is None else min(HOLD_AHEAD, limit)
    lease = take(home, first, reason or " ".join(argv)[:200])
    try:
        return process.run_while(argv, RENEW_SECONDS, lambda: _renew(home, lease.id, end))
    finally:
        release(home, lease.id)
