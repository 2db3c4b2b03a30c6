"""Helpers for the snapshot attack tests: a hostile user's volume, the clock, crafted archives.

The tests run on a whole test host (tests/host.py: real git, Nix, generator, Quadlet and
podman; stand-ins for the user's systemd manager, nixos-rebuild, 1Password and Tailscale).
A user acts through the privileged path (host.cli(..., uid=BOB)), as sudo would run it.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from attack_volume_support import dev_uid, give

from devbox import clock
from devbox.container import monitor
from host import Host

ALICE, BOB = 1001, 1002
GiB = 1 << 30
# What a node's Tailscale identity looks like on the volume: it must never be restored.
NODE_STATE = b'{"_machinekey": "privkey:ATTACKER-NODE-IDENTITY"}'


class Clock:
    """The injectable clock (devbox.clock.now): tests set it, move it, step it back."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def freeze(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """Replace devbox's clock with one that stands still until the test moves it."""
    fixed = Clock(datetime(2026, 11, 2, 9, 0, tzinfo=UTC))
    monkeypatch.setattr(clock, "now", fixed)
    return fixed


def set_users_nix(host: Host, containers_block: str) -> None:
    """Give users.nix's `containers` block these settings (an admin's edit, committed)."""
    users = host.repo / "devbox/users.nix"
    users.write_text(
        users.read_text().replace(
            'containers = { opVault = "DevBox"; nixDaemon = false; };',
            f'containers = {{ opVault = "DevBox"; nixDaemon = false; {containers_block} }};',
        )
    )


def mountpoint(host: Host, volume: str) -> Path:
    """Where a volume's files are (the user's /home/dev)."""
    out = host.podman("volume", "inspect", volume, "--format", "{{.Mountpoint}}", check=True)
    return Path(out.stdout.strip())


def declare_box(host: Host, name: str, uid: int) -> Path:
    """The user creates a container (recorded, not applied) and its volume appears, as the
    volume unit makes it on the next start; returns the volume's directory."""
    result = host.cli("create", name, "--no-apply", uid=uid)
    assert result.code == 0, result.err
    labels = ["--label=devbox.managed=true", f"--label=devbox.container={name}"]
    host.podman("volume", "create", *labels, f"{name}-data", check=True)
    root = mountpoint(host, f"{name}-data")
    # As the owner's rootless podman has it: the container's dev is the owner's mapped uid.
    (root / ".local/state/devbox").mkdir(parents=True, exist_ok=True)
    give(root, dev_uid(uid))
    return root


def quiet_monitor(home: Path, name: str, scratch: Path) -> None:
    """One write of the container's activity monitor, with no process running in it, as the
    container's dev (the owner of the volume's directory)."""
    proc = scratch / "proc"
    proc.mkdir(exist_ok=True)
    monitor.Monitor(home, name, proc=proc).tick()
    owner = home.stat().st_uid
    give(home, owner)


def sparse_file(path: Path, size: int, head: bytes = b"") -> None:
    """A file of `size` bytes that takes (almost) no disk: `head`, then a hole."""
    with path.open("wb") as file:
        file.write(head)
        file.truncate(size)


def on_disk(directory: Path) -> int:
    """The bytes every file below directory takes on disk."""
    return sum(path.lstat().st_blocks * 512 for path in directory.rglob("*"))


def snapshot_files(host: Host) -> list[str]:
    """Every name in the snapshot directory (finished or not, hidden ones too)."""
    directory = host.state / "snapshots"
    return sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []


@dataclass
class Member:
    """One member of a crafted archive: a file, directory, symlink or hard link."""

    name: str
    kind: bytes = tarfile.REGTYPE
    data: bytes = b""
    link: str = ""
    pax: dict[str, str] | None = None


def archive(members: list[Member]) -> bytes:
    """A tar stream with exactly these members, names as given (not normalised)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for m in members:
            info = tarfile.TarInfo(m.name)
            info.type = m.kind
            info.mode = 0o755 if m.kind == tarfile.DIRTYPE else 0o644
            info.linkname = m.link
            info.size = len(m.data) if m.kind == tarfile.REGTYPE else 0
            info.mtime = 1_700_000_000
            if m.pax:
                info.pax_headers = dict(m.pax)
            tar.addfile(info, io.BytesIO(m.data) if m.kind == tarfile.REGTYPE else None)
    return out.getvalue()


def plant_snapshot(host: Host, container: str, owner: str, data: bytes) -> str:
    """Put a finished snapshot of this archive into root's snapshot directory; its id.

    It stands for a snapshot whose archive holds names podman's export would not write
    today: restore must stay safe whatever names an archive holds.
    """
    directory = host.state / "snapshots"
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    ident = f"{container}-20261101T090000Z-planted0"
    (directory / f"{ident}.tar").write_bytes(data)
    description: dict[str, Any] = {
        "version": 1,
        "id": ident,
        "container": container,
        "owner": owner,
        "created": "2026-11-01T09:00:00Z",
        "volume": f"{container}-data",
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "settings": {"cpu": 2, "memory": "4G", "syncthing": False},
        "file": f"{ident}.tar",
    }
    (directory / f"{ident}.json").write_text(json.dumps(description))
    return ident
