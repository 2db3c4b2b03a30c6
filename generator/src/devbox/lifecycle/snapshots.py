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
import copy
import errno
import hashlib
import json
import os
import posixpath
import secrets
import stat
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from devbox import clock, volume, write
from devbox.container import activity
from devbox.declare.resolve import Container
from devbox.errors import NoVolumeError, ToolError, UsageError
from devbox.host.context import Runtime
from devbox.host.identity import authorize
from devbox.lifecycle import snapshot_quota
from devbox.tools.podman import Podman

VERSION = 1
TAR = snapshot_quota.DATA
DESCRIPTION = ".json"
_CHUNK = 1 << 20
_TEMPORARY_AGE = 3600
# Opening a new volume is a few podman and system calls; beyond this something is wrong.
_FILL_SECONDS = 120


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
    sha256 = hashlib.sha256()

    def export(keep: Callable[[bytes], None]) -> None:
        def both(chunk: bytes) -> None:
            sha256.update(chunk)
            keep(chunk)

        podman.export_volume(container.volume, both)

    def exceeded(room: snapshot_quota.Room, stored: int) -> UsageError:
        return room.exceeded(container.name, container.volume, stored)

    with _stored(rt, container.owner, container.name, export, exceeded, keep=True) as stored:
        snapshot = Snapshot(
            id=stored.path.name.removesuffix(TAR),
            container=container.name,
            owner=container.owner,
            created=stored.created,
            volume=container.volume,
            sha256=sha256.hexdigest(),
            size=stored.length,
            settings={
                "cpu": container.cpu,
                "memory": container.memory,
                "syncthing": container.syncthing,
            },
            path=stored.path,
            stored=stored.stored,
        )
        text = json.dumps(snapshot.description(), indent=2, sort_keys=True) + "\n"
        # Written before the reservation goes, so the room is never counted as free between.
        write.write_new(
            stored.path.with_name(f"{snapshot.id}{DESCRIPTION}"), text.encode("utf-8"), mode=0o600
        )
    return stored.path


@dataclass(frozen=True)
class Stored:
    """A tar stream written into the snapshot store: its file, length and bytes on disk."""

    path: Path
    created: datetime
    length: int
    stored: int


Feed = Callable[[Callable[[bytes], None]], None]


def stage(
    rt: Runtime,
    owner: str,
    name: str,
    feed: Feed,
    exceeded: Callable[[snapshot_quota.Room, int], UsageError],
    *,
    need: int = 0,
    subject: str,
    hint: str,
) -> contextlib.AbstractContextManager[Stored]:
    """A tar stream held in the snapshot store, sparse and under owner's quota, while in use.

    What a move brings to this host goes through here before any volume is touched: it
    counts against the same limits as a snapshot (`need`, what its source says it takes on
    disk, is checked first; then every piece as it arrives), its holes stay holes, and it
    is read back whole. The file and its reservation are removed when the block ends; one a
    killed process left is swept by cleanup's prune, as a killed snapshot's is.
    """
    return _stored(
        rt, owner, name, feed, exceeded, keep=False, need=need, subject=subject, hint=hint
    )


@contextlib.contextmanager
def _stored(
    rt: Runtime,
    owner: str,
    name: str,
    feed: Feed,
    exceeded: Callable[[snapshot_quota.Room, int], UsageError],
    *,
    keep: bool,
    need: int = 0,
    subject: str | None = None,
    hint: str | None = None,
) -> Iterator[Stored]:
    """Write feed's stream into a new sparse data file of the store, bounded by owner's room.

    The room is checked and reserved under the directory's lock; the stream is written
    without it. The file is removed if anything fails, and at the end unless `keep`.
    """
    directory = write.ensure_directory(rt.config.snapshots_dir, mode=0o700)
    created = clock.now()
    wording: dict[str, Any] = {"subject": subject} if subject else {}
    if hint is not None:
        wording["hint"] = hint
    with contextlib.ExitStack() as held:
        with write.locked(directory):
            room = snapshot_quota.room(rt, owner, name, every(rt), need=need, **wording)
            data, out = held.enter_context(_new_data_file(directory, name, created))
            if not keep:
                held.callback(write.remove_file, data)
            held.callback(write.remove_file, snapshot_quota.reserve(data, owner, room.bytes))

        def put(chunk: bytes) -> None:
            out.write(chunk)
            if out.stored > room.bytes:
                raise exceeded(room, out.stored)

        feed(put)
        out.finish()
        stored = write.allocated(data.stat())
        if stored > room.bytes:
            raise exceeded(room, stored)
        _check_tar(data)
        yield Stored(data, created, out.length, stored)


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


def _holed(fd: int, start: int, length: int) -> bool:
    """Whether the store's file has a hole in [start, start + length): zeros it did not write."""
    try:
        return os.lseek(fd, start, os.SEEK_HOLE) < start + length
    except OSError:
        return False


def _copy(
    source: Path,
    into: BinaryIO,
    admit: Callable[[tarfile.TarInfo], bool] | None,
    holed: dict[str, tarfile.TarInfo],
) -> None:
    """Copy a stored tar stream for podman's import, keeping its holes out of it.

    A member the filter leaves out is not copied (restore's _Filter; a move admits all). A
    regular file with a hole in the store goes to podman empty, and is recorded in `holed`
    for _fill, which writes only its data: podman's import writes every byte it is given,
    and a 1 TiB sparse file would be 1 TiB on disk. A later member of the same name takes
    its place, as it takes the file's place in podman's import.
    """
    with (
        tarfile.open(source, "r:") as archive,
        source.open("rb") as raw,
        tarfile.open(fileobj=into, mode="w|", format=tarfile.PAX_FORMAT) as out,
    ):
        for member in archive:
            if admit is not None and not admit(member):
                continue
            name = _inside(member.name)
            if name is not None:
                holed.pop(name, None)
                if holed and not member.isdir():
                    # What podman wrote below a directory this member replaces is gone.
                    for below in [key for key in holed if _under(key, name)]:
                        del holed[below]
            sparse = member.isreg() and member.sparse is None and name not in (None, ".")
            if sparse and _holed(raw.fileno(), member.offset_data, member.size):
                out.addfile(_empty(member))
                holed[str(name)] = member
                continue
            out.addfile(member, archive.extractfile(member) if member.isreg() else None)


def _empty(member: tarfile.TarInfo) -> tarfile.TarInfo:
    """The member as an empty file: its size 0, in its header and in a PAX `size` alike."""
    empty = copy.copy(member)
    empty.size = 0
    empty.pax_headers = {key: value for key, value in member.pax_headers.items() if key != "size"}
    return empty


def _in_range(owner_uid: int, uid: int) -> bool:
    """Whether uid is the owner's or one of the owner's subordinate ids (volume.py)."""
    start = volume.subordinate_start(owner_uid)
    return uid == owner_uid or start <= uid < start + volume.SUBUID_COUNT


def _open_holed(tree: volume.Tree, name: str, owner_uid: int) -> int:
    """The empty file podman's import just made for name, opened for writing as _fill needs.

    Reached from the volume's descriptor one component at a time, never through a link, and
    only if it still is what podman made: a regular file, empty, on the volume's file system,
    belonging to the owner or the owner's subordinate ids (their rootless podman may write it
    any time: writing it is nothing the owner could not do), or to root in a volume that is
    root's (a rootful podman's, which maps no ids). Anything else is a ToolError.
    """
    *parents, last = volume.parts_of(name)
    directory = volume.open_below(tree.fd, tuple(parents)) if parents else os.dup(tree.fd)
    try:
        flags = os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        fd = os.open(last, flags, dir_fd=directory)
    finally:
        os.close(directory)
    info, top = os.fstat(fd), os.fstat(tree.fd)
    if not (
        stat.S_ISREG(info.st_mode)
        and info.st_size == 0
        and info.st_dev == top.st_dev
        and (_in_range(owner_uid, info.st_uid) or info.st_uid == top.st_uid == 0)
    ):
        os.close(fd)
        raise ToolError(
            f"{name} in the new volume is not the empty file podman made of it (uid "
            f"{info.st_uid}, {info.st_size} bytes, mode {stat.filemode(info.st_mode)})"
        )
    return fd


def _write_data(source: int, start: int, length: int, into: int) -> None:
    """Copy [start, start + length) of the store's file into `into`, holes left holes."""
    position, end = start, start + length
    while position < end:
        try:
            data_at = os.lseek(source, position, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # nothing but a hole to the end of the file
                break
            raise
        if data_at >= end:
            break
        hole_at = min(os.lseek(source, data_at, os.SEEK_HOLE), end)
        while data_at < hole_at:
            chunk = os.pread(source, min(_CHUNK, hole_at - data_at), data_at)
            if not chunk:
                raise ToolError("the stored stream ended inside a file")
            view = memoryview(chunk)
            offset = data_at - start
            while view:
                written = os.pwrite(into, view, offset)
                view, offset = view[written:], offset + written
            data_at += len(chunk)
        position = hole_at
    os.ftruncate(into, length)


def _fill(
    podman: Podman, volume_name: str, source: Path, holed: dict[str, tarfile.TarInfo]
) -> None:
    """Write the data of the files _copy sent empty into the volume, at their offsets."""
    if not holed:
        return
    budget = volume.Budget.of(_FILL_SECONDS, f"the {_FILL_SECONDS} s to open the volume")
    try:
        tree = volume.open_volume(podman, volume_name, budget, new=True)
    except volume.Unreadable as exc:
        raise ToolError(f"the volume {volume_name} cannot be filled: {exc}") from exc
    if tree is None:
        raise ToolError(f"the volume {volume_name} is gone while it was being filled")
    with tree, source.open("rb") as raw:
        for name, member in holed.items():
            try:
                fd = _open_holed(tree, name, podman.uid)
            except (OSError, volume.Unreadable) as exc:
                raise ToolError(f"{name} in the volume {volume_name}: {exc}") from exc
            try:
                _write_data(raw.fileno(), member.offset_data, member.size, fd)
                os.utime(fd, (member.mtime, member.mtime))
            finally:
                os.close(fd)


def fill_volume(
    rt: Runtime,
    source: Path,
    container: Container,
    admit: Callable[[tarfile.TarInfo], bool] | None = None,
) -> None:
    """Fill the container's volume (created empty here) from a tar stream in the store.

    podman's import does every member (names, links, owners as the owner's rootless podman
    maps them), with the files that have holes empty; _fill then writes their data only, so
    a sparse file takes on the volume what it took in the store. `admit` leaves members out
    (restore's filter).
    """
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
    holed: dict[str, tarfile.TarInfo] = {}

    def feed() -> None:
        try:
            with os.fdopen(write_end, "wb") as into:
                _copy(source, into, admit, holed)
        except BaseException as exc:  # noqa: BLE001 - reported by the caller below
            failure.append(exc)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    with os.fdopen(read_end, "rb") as stream:
        podman.import_volume(container.volume, stream)
    feeder.join()
    if failure:
        raise ToolError(f"reading {source.name} failed: {failure[0]}")
    _fill(podman, container.volume, source, holed)


def _filtered(source: Path, into: BinaryIO) -> None:
    """A snapshot's stream as restore gives it to podman (see _Filter and _copy)."""
    _copy(source, into, _Filter().admit, {})


def import_snapshot(rt: Runtime, snapshot: Snapshot, container: Container) -> None:
    """Fill the container's (new, empty) volume with the snapshot's files, holes kept."""
    fill_volume(rt, snapshot.path, container, _Filter().admit)
