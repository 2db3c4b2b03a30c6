"""Volume snapshots: the export of a container's /home/dev taken before anything deletes it.

A destroy (by a person or by cleanup) calls `take` before the volume is removed; if the
export fails, the destroy fails and the volume stays. Each snapshot is two files in
`<stateDir>/snapshots/` (root's, mode 0700): the tar stream `podman volume export` wrote,
and a JSON description beside it (container, owner, settings, volume, sha256, size), written
last, so a snapshot without its description is one that did not finish. Cleanup prunes
snapshots older than `snapshotRetentionDays`; `devbox-ctl restore` brings one back as a new
container.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from devbox import activity, clock, declare, deploy, resolve, rules, write
from devbox.context import Runtime
from devbox.errors import NoVolumeError, ToolError, UsageError
from devbox.identity import authorize
from devbox.resolve import Container

VERSION = 1
TAR = ".tar"
DESCRIPTION = ".json"
_CHUNK = 1 << 20


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

    def description(self) -> dict[str, Any]:
        """The JSON written beside the data (and printed by --json outputs)."""
        return {
            "version": VERSION,
            "id": self.id,
            "container": self.container,
            "owner": self.owner,
            "created": resolve.timestamp(self.created),
            "volume": self.volume,
            "sha256": self.sha256,
            "size": self.size,
            "settings": self.settings,
            "file": self.path.name,
        }


def snapshot_id(container: str, at: datetime) -> str:
    """A snapshot's name: the container and the time, e.g. web-20261126T120000Z."""
    return f"{container}-{at.strftime('%Y%m%dT%H%M%SZ')}"


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

    Raises NoVolumeError when the volume does not exist (nothing to keep) and ToolError when
    the export fails: either way nothing may be deleted on the strength of this snapshot.
    """
    podman = rt.podman(container.owner)
    if not podman.volume_exists(container.volume):
        raise NoVolumeError(
            f"{container.name} has no volume {container.volume}: there is nothing to snapshot",
            hint="check `podman volume ls` as the owner; destroy --keep-volume skips the snapshot",
        )
    directory = write.ensure_directory(rt.config.snapshots_dir, mode=0o700)
    created = clock.now()
    name = snapshot_id(container.name, created)
    data = directory / f"{name}{TAR}"
    with write.streamed(data, mode=0o600) as into:
        podman.export_volume(container.volume, into)
    _check_tar(data)
    sha256, size = digest(data)
    snapshot = Snapshot(
        id=name,
        container=container.name,
        owner=container.owner,
        created=created,
        volume=container.volume,
        sha256=sha256,
        size=size,
        settings={
            "cpu": container.cpu,
            "memory": container.memory,
            "syncthing": container.syncthing,
        },
        path=data,
    )
    text = json.dumps(snapshot.description(), indent=2, sort_keys=True) + "\n"
    write.write_file(directory / f"{name}{DESCRIPTION}", text.encode("utf-8"), mode=0o600)
    return data


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
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return snapshot if data.parent == description.parent and data.is_file() else None


def every(rt: Runtime) -> list[Snapshot]:
    """Every finished snapshot, oldest first."""
    directory = rt.config.snapshots_dir
    if not directory.is_dir():
        return []
    found = [_load(path) for path in directory.glob(f"*{DESCRIPTION}")]
    return sorted((s for s in found if s is not None), key=lambda s: (s.created, s.id))


def find(rt: Runtime, container: str, snapshot: str | None = None) -> Snapshot:
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


def prune(rt: Runtime, now: datetime) -> list[Snapshot]:
    """Remove expired snapshots (description first, so none is ever half there)."""
    gone = expired(rt, now)
    for snapshot in gone:
        write.remove_file(snapshot.path.with_name(f"{snapshot.id}{DESCRIPTION}"))
        write.remove_file(snapshot.path)
    return gone


# Restoring


@dataclass
class Restored:
    """What restore did."""

    container: Container
    snapshot: Snapshot
    applied: bool = False
    joined: bool = False


# Not restored: the Tailscale state belongs to the destroyed node (a restored container
# enrolls as a new one with a fresh key, so a copy never fights the original for its
# identity), and a login notice belongs to the old container's warnings.
DROPPED = (".local/share/tailscale", activity.NOTICE.as_posix())


def _dropped(member: str) -> bool:
    name = member.removeprefix("./").rstrip("/")
    return any(name == path or name.startswith(path + "/") for path in DROPPED)


def _filtered(source: Path, into: BinaryIO) -> None:
    """Copy a snapshot's tar stream without the dropped paths."""
    with (
        tarfile.open(source, "r:") as archive,
        tarfile.open(fileobj=into, mode="w|", format=tarfile.PAX_FORMAT) as copy,
    ):
        for member in archive:
            if _dropped(member.name):
                continue
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


def restore(
    rt: Runtime,
    name: str,
    *,
    snapshot_id: str | None = None,
    as_name: str | None = None,
    apply: bool = True,
    timeout: float = 300,
    progress: Callable[[str], None] = print,
) -> Restored:
    """Bring a snapshot back as a new container with that data."""
    from devbox import operations  # noqa: PLC0415 - the runtime verbs import this module

    snapshot = find(rt, name, snapshot_id)
    authorize(rt.caller, snapshot.owner, snapshot.container, "restore")
    target = as_name or name
    issue = rules.container_name(target)
    if issue:
        raise UsageError(f"{issue[0]}; {issue[1]}")
    if target in rt.desired.by_name():
        raise UsageError(
            f"a container named {target} exists",
            hint=f"restore it under another name: devbox-ctl restore {name} --as NEWNAME",
        )
    if rt.podman(snapshot.owner).volume_exists(f"{target}-data"):
        raise UsageError(
            f"the volume {target}-data exists (kept by destroy --keep-volume?)",
            hint=f"remove it (podman volume rm {target}-data, as {snapshot.owner}) or restore "
            f"--as another name",
        )
    verify(snapshot)
    progress(f"Restoring {target} from snapshot {snapshot.id} ({snapshot.size} bytes)")
    container = _declare(rt, snapshot, target)
    import_snapshot(rt, snapshot, container)
    progress(f"Filled the volume {container.volume} from {snapshot.path}")
    operations.provision_key(rt, container)
    container = _start(rt, snapshot, container)
    rt.event(
        "restore",
        target,
        owner=container.owner,
        snapshot=snapshot.id,
        fromContainer=snapshot.container,
        sha256=snapshot.sha256,
    )
    done = Restored(container, snapshot)
    if not apply:
        progress(f"Not applied (--no-apply). To apply: sudo {deploy.command_line(rt.config)}")
        return done
    progress(f"Applying: {deploy.command_line(rt.config)}")
    deploy.rebuild(rt.config, lambda line: progress(f"  {line}"))
    done.applied = True
    operations.wait_until_joined(rt, container, timeout, progress)
    operations.neutralise_key(rt, container)
    done.joined = True
    return done


def _declare(rt: Runtime, snapshot: Snapshot, target: str) -> Container:
    """Record the restored container, stopped until its volume is full; return it.

    The name is checked again here, under the config lock: checked only before, a name another
    user took in between would get this snapshot's files in their volume.
    """

    def change(records: declare.Records) -> str:
        existing = declare.find(records, target)
        if existing is not None:
            raise UsageError(
                f"a container named {target} exists (owner {existing.get('owner')})",
                hint=f"restore it under another name: devbox-ctl restore {snapshot.container} "
                "--as NEWNAME",
            )
        record: dict[str, Any] = {"name": target, "owner": snapshot.owner}
        settings = snapshot.settings
        record |= {"cpu": settings["cpu"]} if "cpu" in settings else {}
        record |= {"memory": settings["memory"]} if "memory" in settings else {}
        record |= {"syncthing": True} if settings.get("syncthing") else {}
        record |= {"state": "stopped", "created": resolve.timestamp(clock.now())}
        records.append(record)
        return f"devbox: {rt.caller.name} is restoring {target} from snapshot {snapshot.id}"

    return rt.change(change).by_name()[target]


def _start(rt: Runtime, snapshot: Snapshot, container: Container) -> Container:
    """Declare the restored container running, if its record is still the one restore made."""

    def change(records: declare.Records) -> str:
        declare.required(records, container)["state"] = "running"
        return f"devbox: {rt.caller.name} restored {container.name} from snapshot {snapshot.id}"

    return rt.change(change).by_name()[container.name]
