"""Attacks on the snapshot store: filling root's disk, and making snapshots replace each other.

A user with no containers may create one, fill its volume (a 1 GiB sparse file costs them
nothing) and destroy it, in a loop; every destroy keeps a snapshot in root's state directory.
The quotas of users.nix (maxSnapshotsPerUser, maxSnapshotBytesPerUser and the host's) hold
that, sparse files are stored sparse, and a snapshot that does not fit stops the destroy
before anything is removed. Snapshot ids never collide and a snapshot never replaces
another, whatever the clock does.

On a whole test host (attack_snapshot_support.py says what is real); users act through the
privileged path.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
from pathlib import Path

import pytest
from attack_snapshot_support import (
    BOB,
    GiB,
    declare_box,
    freeze,
    mountpoint,
    on_disk,
    quiet_monitor,
    set_users_nix,
    snapshot_files,
    sparse_file,
)

from devbox.host import context
from devbox.lifecycle import snapshots
from host import Host

pytestmark = pytest.mark.slow  # a whole host each


def _intact(host: Host, name: str, content: dict[str, bytes]) -> None:
    """The container's declaration, key, volume and files are all still there."""
    assert name in [r["name"] for r in host.records()]
    assert host.podman("secret", "inspect", f"devbox-{name}-ts-authkey").returncode == 0
    home = mountpoint(host, f"{name}-data")
    for relative, data in content.items():
        assert hashlib.sha256((home / relative).read_bytes()).digest() == (
            hashlib.sha256(data).digest()
        )


def test_destroying_sparse_containers_in_a_loop_cannot_fill_roots_disk(host: Host) -> None:
    kept = []
    for _ in range(5):  # maxSnapshotsPerUser is 5 by default
        home = declare_box(host, "box", BOB)
        sparse_file(home / "big", GiB, head=b"my work\n")
        result = host.cli("destroy", "box", "--yes", "--no-apply", uid=BOB)
        assert result.code == 0, result.err
        kept.append(result)
    # Five snapshots of a 1 GiB file each take (almost) no disk: the holes stay holes.
    assert on_disk(host.state / "snapshots") < 5 * 1024 * 1024
    listed = host.cli("snapshots", "--json", uid=BOB).json()["snapshots"]
    assert len(listed) == 5
    assert all(s["size"] > GiB and s["stored"] < 1024 * 1024 for s in listed)

    # The sixth is refused before anything is removed, with what to do about it.
    home = declare_box(host, "box", BOB)
    sparse_file(home / "big", GiB, head=b"my work\n")
    before = snapshot_files(host)
    refused = host.cli("destroy", "box", "--yes", "--no-apply", uid=BOB)
    assert refused.code == 2
    assert "bob's snapshot store already holds 5 snapshots, the limit of 5" in refused.err
    assert "containers.maxSnapshotsPerUser" in refused.err
    assert "devbox-ctl snapshots --prune ID" in refused.err
    _intact(host, "box", {})
    big = mountpoint(host, "box-data") / "big"
    assert big.stat().st_size == GiB
    assert big.read_bytes()[:8] == b"my work\n"
    assert snapshot_files(host) == before

    # Pruning one of their own makes room for the next.
    oldest = listed[0]["id"]
    pruned = host.cli("snapshots", "--prune", oldest, "--yes", uid=BOB)
    assert pruned.code == 0, pruned.err
    assert host.cli("destroy", "box", "--yes", "--no-apply", uid=BOB).code == 0
    assert "box" not in [r["name"] for r in host.records()]


def test_a_sparse_snapshot_restores_to_the_same_bytes(host: Host) -> None:
    size = GiB // 4
    home = declare_box(host, "box", BOB)
    sparse_file(home / "big", size, head=b"start")
    with (home / "big").open("r+b") as file:
        file.seek(size // 2)
        file.write(b"middle")
    assert host.cli("destroy", "box", "--yes", "--no-apply", uid=BOB).code == 0
    (data,) = (host.state / "snapshots").glob("*.tar")
    assert data.stat().st_size > size
    assert data.stat().st_blocks * 512 < 1024 * 1024
    restored = host.cli("restore", "box", "--no-apply", uid=BOB)
    assert restored.code == 0, restored.err
    big = mountpoint(host, "box-data") / "big"
    assert big.stat().st_size == size
    with big.open("rb") as file:
        assert file.read(5) == b"start"
        file.seek(size // 2)
        assert file.read(6) == b"middle"
        file.seek(size // 2 + 6)
        assert file.read() == bytes(size // 2 - 6)


def test_a_snapshot_over_the_byte_quota_is_refused_and_everything_stays(host: Host) -> None:
    set_users_nix(host, 'maxSnapshotBytesPerUser = "8M";')
    created = host.cli("create", "box", "--timeout", "30", uid=BOB)
    assert created.code == 0, created.err
    work = os.urandom(16 * 1024 * 1024)  # incompressible, not sparse: 16 MiB of disk
    (mountpoint(host, "box-data") / "work.bin").write_bytes(work)

    refused = host.cli("destroy", "box", "--yes", uid=BOB)

    assert refused.code == 2, refused.out + refused.err
    assert "the snapshot of box takes more than the 8.0 MiB left of bob's snapshot space" in (
        refused.err
    )
    assert "containers.maxSnapshotBytesPerUser" in refused.err
    assert "nothing was removed: the volume box-data, its key and its declaration stay" in (
        refused.err
    )
    _intact(host, "box", {"work.bin": work})
    assert host.records()[0]["state"] == "running"
    assert host.running() == ["box"], "a running container is started again"
    # No partial snapshot is left behind, finished or not.
    assert snapshot_files(host) == []
    assert host.git_log()[0].startswith("devbox: bob created box")


def test_a_snapshot_over_the_hosts_quota_is_refused(host: Host) -> None:
    set_users_nix(host, "maxSnapshotsPerUser = 1; maxSnapshotsGlobal = 1;")
    declare_box(host, "one", BOB)
    assert host.cli("destroy", "one", "--yes", "--no-apply", uid=BOB).code == 0
    declare_box(host, "two", 1003)
    refused = host.cli("destroy", "two", "--yes", "--no-apply", uid=1003)
    assert refused.code == 2
    assert "the host's snapshot store already holds 1 snapshot, the limit of 1" in refused.err
    assert "containers.maxSnapshotsGlobal" in refused.err
    _intact(host, "two", {})


def test_cleanup_over_the_quota_stops_the_destroy_and_keeps_the_data(
    host: Host, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    now = freeze(monkeypatch)
    set_users_nix(host, "maxSnapshotsPerUser = 1; protectUnpushedWork = false;")
    declare_box(host, "old", BOB)
    assert host.cli("destroy", "old", "--yes", "--no-apply", uid=BOB).code == 0
    home = declare_box(host, "box", BOB)
    (home / "notes").write_bytes(b"keep me\n")
    quiet_monitor(home, "box", tmp_path)
    assert host.cli("stop", "box", "--no-apply", uid=BOB).code == 0
    # Nothing reads as activity: cleanup's destroy is due 14 days after the stop, after its
    # warnings 72 and 24 hours ahead.
    for day in (13, 15):
        now.now = now.now.replace(day=day)
        host.cli("cleanup")
    now.now = now.now.replace(day=17)
    result = host.cli("cleanup", "--json")
    assert result.code == 3, result.out + result.err
    (row,) = [r for r in result.json()["containers"] if r["name"] == "box"]
    assert row["action"] == "destroy"
    assert "containers.maxSnapshotsPerUser" in row["error"]
    _intact(host, "box", {"notes": b"keep me\n"})
    assert "box" in [r["name"] for r in host.records()]
    assert len([n for n in snapshot_files(host) if n.endswith(".tar")]) == 1


def _snapshot_contents(host: Host) -> dict[str, bytes]:
    """Each finished snapshot's id and the `which` file in it."""
    found = {}
    for description in (host.state / "snapshots").glob("*.json"):
        raw = json.loads(description.read_text())
        with tarfile.open(description.with_name(raw["file"])) as archive:
            member = archive.extractfile("which")
            assert member is not None
            found[raw["id"]] = member.read()
    return found


def _destroy_with(host: Host, content: bytes) -> None:
    home = declare_box(host, "box", BOB)
    (home / "which").write_bytes(content)
    result = host.cli("destroy", "box", "--yes", "--no-apply", uid=BOB)
    assert result.code == 0, result.err


def test_two_destroys_of_one_name_in_one_second_leave_two_snapshots(
    host: Host, monkeypatch: pytest.MonkeyPatch
) -> None:
    freeze(monkeypatch)  # both destroys happen in the same second
    _destroy_with(host, b"first")
    _destroy_with(host, b"second")
    contents = _snapshot_contents(host)
    assert sorted(contents.values()) == [b"first", b"second"]
    listed = host.cli("restore", "--list", "--json", uid=BOB).json()
    assert len({s["id"] for s in listed}) == 2
    rt = context.build(privileged=False, sudo_uid=None, config_path=host.config_path)
    for snapshot in snapshots.every(rt):
        snapshots.verify(snapshot)


def test_a_clock_stepped_back_never_replaces_a_snapshot(
    host: Host, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = freeze(monkeypatch)
    _destroy_with(host, b"first")
    now.advance(hours=1)
    _destroy_with(host, b"second")
    now.advance(hours=-1)  # the clock steps back to the first destroy's second
    _destroy_with(host, b"third")
    assert sorted(_snapshot_contents(host).values()) == [b"first", b"second", b"third"]


def test_a_taken_snapshot_name_is_never_replaced(
    host: Host, monkeypatch: pytest.MonkeyPatch
) -> None:
    # However the id is chosen, a file that exists is never written over: with every id
    # the same, the second destroy fails and leaves the first snapshot and its own data.
    freeze(monkeypatch)
    monkeypatch.setattr(snapshots, "snapshot_id", lambda container, at: f"{container}-same")
    _destroy_with(host, b"first")
    home = declare_box(host, "box", BOB)
    (home / "which").write_bytes(b"second")
    result = host.cli("destroy", "box", "--yes", "--no-apply", uid=BOB)
    assert result.code == 3
    assert "nothing was replaced or removed" in result.err
    assert _snapshot_contents(host) == {"box-same": b"first"}
    _intact(host, "box", {"which": b"second"})
