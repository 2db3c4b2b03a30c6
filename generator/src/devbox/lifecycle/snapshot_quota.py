"""How much of root's snapshot store each user, and the host, may fill.

users.nix sets four limits in its `containers` block: `maxSnapshotsPerUser` and
`maxSnapshotsGlobal` (how many snapshots), `maxSnapshotBytesPerUser` and
`maxSnapshotBytesGlobal` (how much disk they take). A snapshot counts against its
container's owner. Bytes are what the files take on disk, not their length: a sparse file's
holes are stored as holes (write.SparseFile) and count as nothing. The host's bytes are every
file in the snapshot directory, unfinished ones too, because they take disk all the same.

`room` is asked before a destroy stops or removes anything: it refuses when a count is
reached or no bytes are left. The export is then bounded by the bytes left (`Room.bytes`), so
a snapshot that would not fit is abandoned while it is written, and the destroy stops with the
container's volume, key and declaration where they were.

While a snapshot is written it holds its room in a reservation beside its data file, checked
and made under the snapshot directory's lock; the lock is not held during the export, so one
user's long export never holds up another's destroy, and two exports can never both count on
the same room. A reservation counts only while its data file is flock(2)ed by the process
writing it: one a killed process left holds nothing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from devbox import rules, write
from devbox.errors import UsageError

if TYPE_CHECKING:
    from devbox.host.context import Runtime

# Beside the data file of a snapshot being written: its owner and the room it holds.
RESERVED = ".reserved"
DATA = ".tar"
_REFUSED_HINT = (
    "devbox-ctl snapshots lists the snapshots and their sizes, and devbox-ctl snapshots "
    "--prune ID removes one; destroy --no-snapshot removes without keeping the files; or ask "
    "an admin to raise the limit in users.nix"
)


class Stored(Protocol):
    """A snapshot as a quota counts it (a Snapshot of snapshots.py): whose, and its bytes."""

    @property
    def owner(self) -> str:
        """The user the snapshot counts against."""

    @property
    def stored(self) -> int:
        """Its bytes on disk."""


@dataclass(frozen=True)
class Usage:
    """How many snapshots, taking how many bytes on disk."""

    count: int
    bytes: int


@dataclass(frozen=True)
class Limit:
    """One of the four limits as it stands: who, the field, its value and the use."""

    whose: str
    field: str
    shown: str
    most: int
    used: int

    @property
    def left(self) -> int:
        """What is left under this limit (never below 0)."""
        return max(self.most - self.used, 0)


@dataclass(frozen=True)
class Room:
    """What a new snapshot of an owner's container may take: the tightest byte limit."""

    owner: str
    bound: Limit

    @property
    def bytes(self) -> int:
        """The most bytes the next snapshot may take on disk."""
        return self.bound.left

    def exceeded(self, container: str, volume: str, stored: int) -> UsageError:
        """The refusal for a snapshot that grew past the room while it was written."""
        limit = self.bound
        return UsageError(
            f"the snapshot of {container} takes more than the {size(limit.left)} left of "
            f"{limit.whose} snapshot space ({limit.shown}, containers.{limit.field}; it had "
            f"reached {size(stored)} when it was stopped): it was not kept and nothing was "
            f"removed: the volume {volume}, its key and its declaration stay",
            hint=_REFUSED_HINT,
        )


def size(count: int) -> str:
    """Bytes for people: 512 B, 12.0 KiB, 1.5 GiB."""
    if count < 1024:  # noqa: PLR2004 - one KiB
        return f"{count} B"
    value = count / 1024
    for unit in ("KiB", "MiB"):
        if value < 1024:  # noqa: PLR2004
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


@dataclass(frozen=True)
class Reservation:
    """The room a snapshot being written holds: its owner, the bytes it may take, its file."""

    owner: str
    bytes: int
    data: Path


def reserve(data: Path, owner: str, room: int) -> Path:
    """Hold room for a snapshot being written into data; returns the file to remove after."""
    path = data.with_name(f"{data.stem}{RESERVED}")
    record = {"owner": owner, "bytes": room}
    write.write_new(path, json.dumps(record).encode("utf-8"), mode=0o600)
    return path


def reservations(directory: Path) -> list[Reservation]:
    """The room held by snapshots being written now (those of killed processes do not count)."""
    held = []
    for path in directory.glob(f"*{RESERVED}"):
        data = path.with_name(f"{path.name.removesuffix(RESERVED)}{DATA}")
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            reservation = Reservation(str(record["owner"]), int(record["bytes"]), data)
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if write.in_use(data):
            held.append(reservation)
    return held


def on_disk(directory: Path, skip: Iterable[Path] = ()) -> int:
    """The bytes the files in the snapshot directory take on disk (links not followed)."""
    if not directory.is_dir():
        return 0
    skipped = {path.name for path in skip}
    with os.scandir(directory) as entries:
        return sum(
            write.allocated(entry.stat(follow_symlinks=False))
            for entry in entries
            if entry.is_file(follow_symlinks=False) and entry.name not in skipped
        )


def usage(snapshots: Iterable[Stored], directory: Path) -> tuple[dict[str, Usage], Usage]:
    """Each owner's use, and the host's.

    Finished snapshots count, and so does the room held by those being written (their files
    count as their reservation, not as what they hold so far); for the host, every other
    file in the directory counts for its bytes too.
    """
    owners: dict[str, Usage] = {}
    count = 0
    held = reservations(directory) if directory.is_dir() else []
    taken = [(s.owner, s.stored) for s in snapshots] + [(r.owner, r.bytes) for r in held]
    for owner, stored in taken:
        before = owners.get(owner, Usage(0, 0))
        owners[owner] = Usage(before.count + 1, before.bytes + stored)
        count += 1
    reserved = sum(r.bytes for r in held)
    return owners, Usage(count, on_disk(directory, [r.data for r in held]) + reserved)


def limits(rt: Runtime, owner: str, snapshots: Iterable[Stored]) -> list[Limit]:
    """The four limits for a new snapshot of the owner's: counts first, then bytes."""
    policy = rt.desired.policy
    owners, host = usage(snapshots, rt.config.snapshots_dir)
    mine = owners.get(owner, Usage(0, 0))
    user_bytes = policy.max_snapshot_bytes_per_user
    host_bytes = policy.max_snapshot_bytes_global
    return [
        Limit(
            f"{owner}'s",
            "maxSnapshotsPerUser",
            str(policy.max_snapshots_per_user),
            policy.max_snapshots_per_user,
            mine.count,
        ),
        Limit(
            "the host's",
            "maxSnapshotsGlobal",
            str(policy.max_snapshots_global),
            policy.max_snapshots_global,
            host.count,
        ),
        Limit(
            f"{owner}'s",
            "maxSnapshotBytesPerUser",
            user_bytes,
            rules.memory_bytes(user_bytes) or 0,
            mine.bytes,
        ),
        Limit(
            "the host's",
            "maxSnapshotBytesGlobal",
            host_bytes,
            rules.memory_bytes(host_bytes) or 0,
            host.bytes,
        ),
    ]


def room(
    rt: Runtime,
    owner: str,
    container: str,
    snapshots: Iterable[Stored],
    *,
    need: int = 0,
    subject: str | None = None,
    hint: str = _REFUSED_HINT,
) -> Room:
    """The room for a new snapshot of owner's container, or a UsageError naming the full limit.

    `need`, when known, is what the new file will take on disk (a volume arriving by a move:
    its source said how much): refused at once when a byte limit has less left than that.
    `subject` and `hint` word the refusal for what is being stored.
    """
    subject = subject or f"a snapshot of {container}"
    counts = limits(rt, owner, snapshots)
    for limit in counts:
        if limit.left <= 0:
            what = (
                f"{rules.count(limit.used, 'snapshot')}, the limit of {limit.shown}"
                if limit.field.startswith("maxSnapshots")
                else f"snapshots taking {size(limit.used)}, the limit of {limit.shown}"
            )
            raise UsageError(
                f"{subject} does not fit: {limit.whose} snapshot store "
                f"already holds {what} (containers.{limit.field}); nothing was changed",
                hint=hint,
            )
    for limit in counts[2:]:
        if need > limit.left:
            raise UsageError(
                f"{subject} does not fit: it takes {size(need)} on disk, and {limit.whose} "
                f"snapshot space has {size(limit.left)} left of {limit.shown} "
                f"(containers.{limit.field}, {size(limit.used)} in use); nothing was changed",
                hint=hint,
            )
    return Room(owner, min(counts[2:], key=lambda limit: limit.left))


def _shown(count: Limit, stored: Limit) -> dict[str, int]:
    return {
        "count": count.used,
        "maxCount": count.most,
        "stored": stored.used,
        "maxStored": stored.most,
    }


def summary(rt: Runtime, owners: Iterable[str], snapshots: Iterable[Stored]) -> dict[str, Any]:
    """The owners' and the host's use against the limits, as `devbox-ctl snapshots` shows it."""
    found = list(snapshots)
    users = {}
    for owner in owners:
        user_count, _, user_bytes, _ = limits(rt, owner, found)
        users[owner] = _shown(user_count, user_bytes)
    _, host_count, _, host_bytes = limits(rt, "", found)
    return {"users": users, "host": _shown(host_count, host_bytes)}
