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
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devbox import rules, write
from devbox.errors import UsageError

if TYPE_CHECKING:
    from devbox.context import Runtime
    from devbox.snapshots import Snapshot

_REFUSED_HINT = (
    "devbox-ctl snapshots lists the snapshots and their sizes, and devbox-ctl snapshots "
    "--prune ID removes one; destroy --no-snapshot removes without keeping the files; or ask "
    "an admin to raise the limit in users.nix"
)


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


def on_disk(directory: Path) -> int:
    """The bytes every file in the snapshot directory takes on disk (links not followed)."""
    if not directory.is_dir():
        return 0
    with os.scandir(directory) as entries:
        return sum(
            write.allocated(entry.stat(follow_symlinks=False))
            for entry in entries
            if entry.is_file(follow_symlinks=False)
        )


def usage(snapshots: Iterable[Snapshot], directory: Path) -> tuple[dict[str, Usage], Usage]:
    """Each owner's use, and the host's (every file in the directory counts for its bytes)."""
    owners: dict[str, Usage] = {}
    count = 0
    for snapshot in snapshots:
        before = owners.get(snapshot.owner, Usage(0, 0))
        owners[snapshot.owner] = Usage(before.count + 1, before.bytes + snapshot.stored)
        count += 1
    return owners, Usage(count, on_disk(directory))


def limits(rt: Runtime, owner: str, snapshots: Iterable[Snapshot]) -> list[Limit]:
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


def room(rt: Runtime, owner: str, container: str, snapshots: Iterable[Snapshot]) -> Room:
    """The room for a new snapshot of owner's container, or a UsageError naming the full limit."""
    counts = limits(rt, owner, snapshots)
    for limit in counts:
        if limit.left <= 0:
            what = (
                f"{rules.count(limit.used, 'snapshot')}, the limit of {limit.shown}"
                if limit.field.startswith("maxSnapshots")
                else f"snapshots taking {size(limit.used)}, the limit of {limit.shown}"
            )
            raise UsageError(
                f"a snapshot of {container} does not fit: {limit.whose} snapshot store "
                f"already holds {what} (containers.{limit.field}); nothing was changed",
                hint=_REFUSED_HINT,
            )
    return Room(owner, min(counts[2:], key=lambda limit: limit.left))


def _shown(count: Limit, stored: Limit) -> dict[str, int]:
    return {
        "count": count.used,
        "maxCount": count.most,
        "stored": stored.used,
        "maxStored": stored.most,
    }


def summary(rt: Runtime, owners: Iterable[str], snapshots: Iterable[Snapshot]) -> dict[str, Any]:
    """The owners' and the host's use against the limits, as `devbox-ctl snapshots` shows it."""
    found = list(snapshots)
    users = {}
    for owner in owners:
        user_count, _, user_bytes, _ = limits(rt, owner, found)
        users[owner] = _shown(user_count, user_bytes)
    _, host_count, _, host_bytes = limits(rt, "", found)
    return {"users": users, "host": _shown(host_count, host_bytes)}
