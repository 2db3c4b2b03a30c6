"""Volume snapshots: the export of a container's /home/dev taken before anything deletes it.

A destroy (by a person or by cleanup) calls `take` before the volume is removed; if the
export fails or does not fit the owner's or the host's snapshot quota (snapshot_quota.py),
the destroy fails and the volume stays. Each snapshot is two files in
`<stateDir>/snapshots/` (root's, mode 0700): the tar stream `podman volume export` wrote,
stored sparse (runs of zeros, such as a sparse file's holes, take no disk), and a JSON
description beside it (container, owner, settings, volume, sha256, size), written last, so a
snapshot without its description is one that did not finish.

A snapshot's id is the container, the time and a random part, and its files are created
exclusively: two destroys of the same name in one second, or after the clock stepped back,
leave two snapshots, and no write ever replaces an existing one. Taking, pruning and
removing hold the directory's lock, so the quota is checked against what is really there.

Cleanup prunes snapshots older than `snapshotRetentionDays`; `devbox-ctl snapshots` lists and
removes one's own; `devbox-ctl restore` (runtime/restore.py) brings one back as a new container.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import posixpath
import secrets
import stat
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from devbox import clock, write
from devbox.container import activity
from devbox.declare.resolve import Container
from devbox.errors import NoVolumeError, ToolError, UsageError
from devbox.host.context import Runtime
from devbox.host.identity import authorize
from devbox.lifecycle import snapshot_quota

VERSION = 1
TAR = snapshot_quota.DATA
DESCRIPTION = ".json"
_CHUNK = 1 << 20
_TEMPORARY_AGE = 3600


@dataclass(frozen=True)
class Snapshot:
    """One finished snapshot: its description and where its data is."""

    id: str
    container: str
    owner: str
    created: datetime
    volume: str
    sha256: str
    size: int
    settings: dict[str, Any]
    path: Path
    # What the data takes on disk (holes are free) and when it was written: read from the
    # file itself, so a description cannot understate it.
    stored: int = 0
    written_ns: int = 0

    def description(self) -> dict[str, Any]:
        """The JSON written beside the data (and printed by --json outputs)."""
        return {
            "version": VERSION,
            "id": self.id,
            "container": self.container,
            "owner": self.owner,
            "created": clock.timestamp(self.created),
            "volume": self.volume,
            "sha256": self.sha256,
            "size": self.size,
            "stored": self.stored,
            "settings": self.settings,
            "file": self.path.name,
        }


def snapshot_id(container: str, at: datetime) -> str:
    """A new snapshot's name: the container, the time and a random part.

    E.g. web-20261126T120000Z-3f9a1c2b. The random part keeps two snapshots of one container
    taken in the same second (or after the clock stepped back) apart; the exclusive create in
    `take` makes sure that even a repeated one never replaces a file.
    """
    return f"{container}-{at.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(4)}"


def digest(path: Path) -> tuple[str, int]:
    """The sha256 and the size of a file."""
    sha, size = hashlib.sha256(), 0
    with path.open("rb") as file:
        while chunk := file.read(_CHUNK):
            sha.update(chunk)
            size += len(chunk)
    return sha.hexdigest(), size


def _check_tar(path: Path) -> None:
    """Read the whole archive back: a truncated or corrupt export must not count as a snapshot."""
    try:
        with tarfile.open(path, "r:") as archive:
            for _ in archive:
                pass
    except (tarfile.TarError, OSError) as exc:
        raise ToolError(f"the export of {path.name} is not a readable tar archive: {exc}") from exc


def take(rt: Runtime, container: Container) -> Path:
    """Export the container's volume into the snapshot directory; return the data file's path.

    Raises NoVolumeError when the volume does not exist (nothing to keep), UsageError when
    the snapshot does not fit the quota (checked before the export, and again on every piece
    of it), and ToolError when the export fails: in each case no file of it is left, and
    nothing may be deleted on the strength of this snapshot.
    """
    podman = rt.podman(container.owner)
    if not podman.volume_exists(container.volume):
        raise NoVolumeError(
            f"{container.name} has no volume {container.volume}: there is nothing to snapshot",
            hint="check `podman volume ls` as the owner; destroy --keep-volume skips the snapshot",
        )
    directory = write.ensure_directory(rt.config.snapshots_dir, mode=0o700)
    created = clock.now()
    sha256 = hashlib.sha256()
    with contextlib.ExitStack() as held:
        # The room is checked and reserved under the lock; the export runs without it.
        with write.locked(directory):
            room = snapshot_quota.room(rt, container.owner, container.name, every(rt))
            data, out = held.enter_context(_new_data_file(directory, container.name, created))
            held.callback(
                write.remove_file, snapshot_quota.reserve(data, container.owner, room.bytes)
            )

        def keep(chunk: bytes) -> None:
            sha256.update(chunk)
            out.write(chunk)
            if out.stored > room.bytes:
                raise room.exceeded(container.name, container.volume, out.stored)

        podman.export_volume(container.volume, keep)
        out.finish()
        stored = write.allocated(data.stat())
        if stored > room.bytes:
            raise room.exceeded(container.name, container.volume, stored)
        _check_tar(data)
        snapshot = Snapshot(
            id=data.name.removesuffix(TAR),
            container=container.name,
            owner=container.owner,
            created=created,
            volume=container.volume,
            sha256=sha256.hexdigest(),
            size=out.length,
            settings={
                "cpu": container.cpu,
                "memory": container.memory,
                "syncthing": container.syncthing,
            },
            path=data,
            stored=stored,
        )
        text = json.dumps(snapshot.description(), indent=2, sort_keys=True) + "\n"
        # Written before the reservation goes, so the room is never counted as free between.
        write.write_new(directory / f"{snapshot.id}{DESCRIPTION}", text.encode("utf-8"), mode=0o600)
    return data


@contextlib.contextmanager
def _new_data_file(
    directory: Path, container: str, created: datetime
) -> Iterator[tuple[Path, write.SparseFile]]:
    """A new data file under a fresh id; a ToolError, never a replaced file, if none is free."""
    try:
        with write.new_sparse_file(
            directory, lambda: f"{snapshot_id(container, created)}{TAR}"
        ) as (
            data,
            out,
        ):
            yield data, out
    except FileExistsError as exc:
        raise ToolError(
            f"no free snapshot id for {container} in {directory}: every one tried exists",
            hint="nothing was replaced or removed; run the destroy again",
        ) from exc


def check_room(rt: Runtime, container: Container) -> None:
    """Refuse (UsageError) a snapshot of this container that no quota has room for.

    Asked by a destroy before it stops or removes anything; `take` asks again under the lock.
    """
    snapshot_quota.room(rt, container.owner, container.name, every(rt))


# Finding, checking and pruning snapshots


def _load(description: Path) -> Snapshot | None:
    """A snapshot from its description; None for one that is not a finished snapshot."""
    try:
        raw = json.loads(description.read_text(encoding="utf-8"))
        data = description.with_name(str(raw["file"]))
        snapshot = Snapshot(
            id=str(raw["id"]),
            container=str(raw["container"]),
            owner=str(raw["owner"]),
            created=datetime.fromisoformat(str(raw["created"])),
            volume=str(raw["volume"]),
            sha256=str(raw["sha256"]),
            size=int(raw["size"]),
            settings=dict(raw.get("settings") or {}),
            path=data,
        )
        if data.parent != description.parent:
            return None
        info = data.lstat()
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not stat.S_ISREG(info.st_mode):
        return None
    return replace(snapshot, stored=write.allocated(info), written_ns=info.st_mtime_ns)


def every(rt: Runtime) -> list[Snapshot]:
    """Every finished snapshot, oldest first (by time, then by when its data was written)."""
    directory = rt.config.snapshots_dir
    if not directory.is_dir():
        return []
    found = [_load(path) for path in directory.glob(f"*{DESCRIPTION}")]
    return sorted(
        (s for s in found if s is not None), key=lambda s: (s.created, s.written_ns, s.id)
    )


def of_caller(rt: Runtime) -> list[Snapshot]:
    """The snapshots the caller may see and remove: their own; admins and the system all."""
    return [s for s in every(rt) if rt.caller.may_act_on(s.owner)]


def choose(rt: Runtime, container: str, snapshot: str | None = None) -> Snapshot:
    """A container's snapshot by id, or its latest; UsageError naming what there is."""
    mine = [s for s in every(rt) if s.container == container]
    if snapshot is not None:
        chosen = next((s for s in mine if s.id == snapshot), None)
    else:
        chosen = mine[-1] if mine else None
    if chosen is None:
        there = ", ".join(s.id for s in mine) or "none"
        raise UsageError(
            f"no snapshot {snapshot or 'at all'} of {container} (snapshots of it: {there})",
            hint="devbox-ctl restore --list shows every snapshot you may restore",
        )
    return chosen


def verify(snapshot: Snapshot) -> None:
    """Refuse a snapshot whose data is not what was exported."""
    sha256, size = digest(snapshot.path)
    if (sha256, size) != (snapshot.sha256, snapshot.size):
        raise ToolError(
            f"snapshot {snapshot.id} is damaged: its data does not match its sha256",
            hint="restore an older snapshot with --from (devbox-ctl restore --list)",
        )


def expired(rt: Runtime, now: datetime) -> list[Snapshot]:
    """Snapshots older than snapshotRetentionDays."""
    keep = timedelta(days=rt.desired.policy.snapshot_retention_days)
    return [s for s in every(rt) if s.created + keep < now]


def _remove(snapshot: Snapshot) -> None:
    """Remove a snapshot: description first, so none is ever half there."""
    write.remove_file(snapshot.path.with_name(f"{snapshot.id}{DESCRIPTION}"))
    write.remove_file(snapshot.path)


def _left_behind(path: Path, described: set[str], now: float) -> bool:
    """Whether a file is what a killed `take` left (one still being written never is)."""
    name = path.name
    if name.endswith(TAR) and name.removesuffix(TAR) not in described:
        return not write.in_use(path)
    if name.endswith(snapshot_quota.RESERVED):
        return not write.in_use(path.with_name(name.removesuffix(snapshot_quota.RESERVED) + TAR))
    # A temporary file lives for the moment between its write and its link.
    return ".devbox-tmp-" in name and path.lstat().st_mtime < now - _TEMPORARY_AGE


def _sweep(directory: Path) -> None:
    """Remove what killed exports left: data without a description, reservations, temporaries."""
    described = {path.name.removesuffix(DESCRIPTION) for path in directory.glob(f"*{DESCRIPTION}")}
    now = time.time()
    for path in directory.iterdir():
        if not path.is_dir() and _left_behind(path, described, now):
            write.remove_file(path)


def prune(rt: Runtime, now: datetime) -> list[Snapshot]:
    """Remove expired snapshots, and what killed exports left behind."""
    directory = rt.config.snapshots_dir
    if not directory.is_dir():
        return []
    with write.locked(directory):
        gone = expired(rt, now)
        for snapshot in gone:
            _remove(snapshot)
        _sweep(directory)
    return gone


def remove(rt: Runtime, ids: list[str]) -> list[Snapshot]:
    """Remove the caller's snapshots by id (admins: anyone's); all are checked before any goes.

    UsageError for an id that is not a snapshot, NotAllowedError for someone else's.
    """
    known = {s.id: s for s in every(rt)}
    chosen = []
    for wanted in dict.fromkeys(ids):
        snapshot = known.get(wanted)
        if snapshot is None:
            raise UsageError(
                f"no snapshot is named {wanted!r}",
                hint="devbox-ctl snapshots lists the snapshots you may remove",
            )
        authorize(rt.caller, snapshot.owner, f"snapshot {snapshot.id}", "remove")
        chosen.append(snapshot)
    if not chosen:
        return []
    with write.locked(rt.config.snapshots_dir):
        for snapshot in chosen:
            _remove(snapshot)
            rt.event(
                "remove-snapshot",
                snapshot.container,
                owner=snapshot.owner,
                snapshot=snapshot.id,
                stored=snapshot.stored,
            )
    return chosen


# Restoring


# Not restored: the Tailscale state belongs to the destroyed node (a restored container
# enrolls as a new one with a fresh key, so a copy never fights the original for its
# identity), and a login notice belongs to the old container's warnings.
DROPPED = (".local/share/tailscale", activity.NOTICE.as_posix())


def _inside(name: str) -> str | None:
    """A member's path relative to the volume, normalised; None for one that leaves it.

    `./.local/share/./tailscale`, `/.local/share/tailscale/` and
    `a/../.local/share/tailscale` are all `.local/share/tailscale`; `../x` is None.
    """
    path = posixpath.normpath(name.lstrip("/") or ".")
    return None if path == ".." or path.startswith("../") else path


def _under(path: str, top: str) -> bool:
    """Whether path is top or below it (normalised paths; "." is the volume itself)."""
    return top in (".", path) or path.startswith(top + "/")


def _dropped(member: str) -> bool:
    """Whether a member name is a dropped path or below one, or leaves the volume."""
    name = _inside(member)
    return name is None or any(_under(name, path) for path in DROPPED)


class _Filter:
    """Which members of a snapshot go into the restored volume, in archive order.

    Left out: the dropped paths and everything below them; a member that would leave the
    volume; anything that is not a directory where a dropped path's parent directory
    belongs (a link there would lead the path elsewhere); anything below a link (extracting
    it would follow the link); a hard link to a member that was left out or never came.
    Names are compared normalised, so `./`, `.` and `..` components cannot walk around it.
    """

    def __init__(self) -> None:
        self.files: set[str] = set()
        self.links: set[str] = set()

    def admit(self, member: tarfile.TarInfo) -> bool:
        """Whether the member is restored; if so its names are rewritten normalised."""
        name = _inside(member.name)
        if name is None or _dropped(name):
            return False
        if not member.isdir() and any(_under(path, name) for path in DROPPED):
            return False
        if any(_under(name, link) for link in self.links):
            return False
        if member.islnk():
            target = _inside(member.linkname)
            if target is None or target not in self.files:
                return False
            member.linkname = target
        member.name = name
        # A PAX header's path wins over the name when the member is written again.
        member.pax_headers = {
            key: value
            for key, value in member.pax_headers.items()
            if key not in ("path", "linkpath")
        }
        if member.issym() or member.islnk():
            self.links.add(name)
        elif member.isreg():
            self.files.add(name)
        return True


def _filtered(source: Path, into: BinaryIO) -> None:
    """Copy a snapshot's tar stream without the dropped paths (see _Filter)."""
    admitted = _Filter()
    with (
        tarfile.open(source, "r:") as archive,
        tarfile.open(fileobj=into, mode="w|", format=tarfile.PAX_FORMAT) as copy,
    ):
        for member in archive:
            if admitted.admit(member):
                copy.addfile(member, archive.extractfile(member) if member.isreg() else None)


def import_snapshot(rt: Runtime, snapshot: Snapshot, container: Container) -> None:
    """Fill the container's (new, empty) volume with the snapshot's files."""
    podman = rt.podman(container.owner)
    podman.create_volume(
        container.volume,
        {
            "devbox.managed": "true",
            "devbox.container": container.name,
            "devbox.owner": container.owner,
        },
    )
    read_end, write_end = os.pipe()
    failure: list[BaseException] = []

    def feed() -> None:
        try:
            with os.fdopen(write_end, "wb") as into:
                _filtered(snapshot.path, into)
        except BaseException as exc:  # noqa: BLE001 - reported by the caller below
            failure.append(exc)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    with os.fdopen(read_end, "rb") as source:
        podman.import_volume(container.volume, source)
    feeder.join()
    if failure:
        raise ToolError(f"reading snapshot {snapshot.id} failed: {failure[0]}")
