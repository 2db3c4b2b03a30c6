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
import tarfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from devbox import clock, resolve, write
from devbox.context import Runtime
from devbox.errors import NoVolumeError, ToolError
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
