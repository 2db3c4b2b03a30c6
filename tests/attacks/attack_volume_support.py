"""Helpers for the attack tests: a host with containers whose volumes their users control.

Everything runs on a whole test host (tests/host.py: real git, Nix, podman volumes in the
test's own storage; stand-ins for the user's systemd manager, nixos-rebuild, 1Password).
Containers are declared without being applied or started (`create --no-apply`), and their
volumes are made with the real podman and filled from the host, as the container's user
would fill them from inside. podman runs rootful here, as root; in the owner's rootless
podman a volume belongs to the container's dev as the owner's subordinate range maps it
(uid x 65536 + 999, docs/manifest.md), so the helpers give every volume that owner.

The attacker is carol (uid 1003), a normal user. bob (uid 1002) is the other user whose
container must still be warned, stopped or destroyed whatever carol does.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from devbox import clock
from support import require_root

CAROL, BOB = 1003, 1002
DAY0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
STATE = Path(".local/state/devbox")


def dev_uid(owner_uid: int) -> int:
    """The host uid of the container's dev (uid 1000 inside) in the owner's rootless podman."""
    return owner_uid * 65536 + 999


class Clock:
    """devbox.clock.now for the test: a time the test moves."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def attack_clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """The clock, at day 0 (2026-11-02 09:00 UTC)."""
    fixed = Clock(DAY0)
    monkeypatch.setattr(clock, "now", fixed)
    return fixed


def stamp(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def volume_path(host: Any, name: str) -> Path:
    """Where podman keeps a container's volume."""
    out = host.podman("volume", "inspect", f"{name}-data", "--format", "{{.Mountpoint}}")
    assert out.returncode == 0, out.stderr
    return Path(out.stdout.strip())


def give(path: Path, uid: int) -> None:
    """Give a directory and everything in it to uid (links themselves, never their targets)."""
    require_root("gives the volume's files to another uid (chown)")
    os.chown(path, uid, uid, follow_symlinks=False)
    for directory, subdirectories, files in os.walk(path):
        for name in subdirectories + files:
            os.chown(Path(directory) / name, uid, uid, follow_symlinks=False)


def declare(host: Any, name: str, owner: str, uid: int) -> Path:
    """Declare a container (not applied), make its volume as its owner has it; return it."""
    created = host.cli("create", name, "--owner", owner, "--no-apply")
    assert created.code == 0, created.out + created.err
    made = host.podman("volume", "create", f"{name}-data")
    assert made.returncode == 0, made.stderr
    root = volume_path(host, name)
    (root / STATE).mkdir(parents=True)
    give(root, dev_uid(uid))
    return root


def stop_declared(host: Any, name: str, stopped_at: datetime) -> None:
    """Record a container as stopped since a time, as `devbox-ctl stop` would have."""
    path = host.repo / "devbox/containers.json"
    records = json.loads(path.read_text())
    for record in records["containers"]:
        if record["name"] == name:
            record["state"] = "stopped"
            record["stoppedAt"] = stamp(stopped_at)
    path.write_text(json.dumps(records, indent=2) + "\n")


def record(name: str, last_seen: datetime, updated: datetime) -> dict[str, Any]:
    """An activity record as the container's monitor writes it: SSH last seen at a time."""
    return {
        "version": 1,
        "container": name,
        "monitor": {
            "startedAt": stamp(DAY0),
            "updatedAt": stamp(updated),
            "intervalSeconds": 60,
        },
        "signals": {"ssh": {"lastSeen": stamp(last_seen), "sessions": 0}},
    }


def write_state(root: Path, file: str, content: bytes, uid: int) -> Path:
    """Write a file of the monitor's state directory, as the container's dev."""
    path = root / STATE / file
    path.write_bytes(content)
    require_root("gives the file to the container's dev (chown)")
    os.chown(path, dev_uid(uid), dev_uid(uid))
    return path


def idle_witness(host: Any, now: datetime, name: str = "work") -> Path:
    """bob's running container, idle since day 0: cleanup warns it once day 6 comes."""
    root = declare(host, name, "bob", BOB)
    write_state(root, "activity.json", json.dumps(record(name, DAY0, now)).encode(), BOB)
    return root


def witness_warned(host: Any, root: Path, name: str = "work") -> None:
    """bob's container was warned: its login notice is on its volume, the event is logged."""
    notice = root / STATE / "notice"
    assert notice.exists(), "bob's container was not warned"
    assert f"devbox will STOP the container {name} (owner bob)" in notice.read_text()
    warnings = [
        event
        for event in host.cli("events", "--json").json()
        if event["action"] == "warning" and event["container"] == name
    ]
    assert warnings, "no warning of bob's container in the event log"
