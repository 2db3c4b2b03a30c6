"""Attacks on a fleet's move: filling the target host's disk with a volume that costs nothing.

A user's volume may hold a file of any length that takes no disk (`truncate -s 10T`). A move
(or an admin's drain) copies the volume to another host; if the copy wrote every zero, the
target's disk would fill for everyone. The promise: the move takes the volume sparse (holes
stay holes on the target), it counts against the owner's snapshot quota on the target (the
same limits a snapshot there counts against), and a volume that does not fit is refused with
exit 2, naming the host, the size, the limit and the fix, with nothing changed on either
host: the container declared and running or stopped where it was, no volume, no partial
file and no journal left.

On a simulated fleet (tests/fleet.py): real podman, volumes, containers and devbox-ctl on each
host; Debian's OpenSSH between them (an sshd per host), and the colmena stand-in.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from lifecycle.lifecycle_support import as_rootless

from fleet import Fleet
from host import KEY

MiB = 1 << 20
GiB = 1 << 30
QUOTA = 'maxSnapshotBytesPerUser = "64M";'


@pytest.fixture
def quota_fleet(fleet: Fleet) -> Fleet:
    """alpha, beta, gamma; alice's snapshots (and what a move brings her) bounded at 64M."""
    users = fleet.control.repo / "devbox" / "users.nix"
    text = users.read_text()
    assert 'containers = { opVault = "DevBox"; nixDaemon = false; };' in text
    users.write_text(
        text.replace(
            'containers = { opVault = "DevBox"; nixDaemon = false; };',
            f'containers = {{ opVault = "DevBox"; nixDaemon = false; {QUOTA} }};',
        )
    )
    return fleet


def _declare_stopped(fleet: Fleet, *names: str) -> None:
    fleet.declare(
        [{"name": name, "owner": "alice", "host": "alpha", "state": "stopped"} for name in names]
    )
    for host in fleet.hosts:
        fleet.deploy(host)


def _volume(fleet: Fleet, host: str, name: str) -> Path:
    created = fleet.hosts[host].podman(
        "volume",
        "create",
        "--label=devbox.managed=true",
        f"--label=devbox.container={name}",
        f"{name}-data",
    )
    assert created.returncode == 0, created.stderr
    return fleet.volume_path(host, f"{name}-data")


def _on_disk(directory: Path) -> int:
    """The bytes every file below directory takes on disk."""
    return sum(path.lstat().st_blocks * 512 for path in directory.rglob("*"))


def _records(fleet: Fleet) -> dict[str, dict[str, object]]:
    return {r["name"]: r for r in fleet.control.records()}


def _snapshot_store(fleet: Fleet, host: str) -> list[str]:
    directory = fleet.hosts[host].state / "snapshots"
    return sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []


def _nothing_changed_on_the_target(fleet: Fleet, name: str, target: str) -> None:
    assert fleet.hosts[target].podman("volume", "exists", f"{name}-data").returncode == 1
    assert _snapshot_store(fleet, target) == [], "no staged or partial file is left"
    assert not (fleet.control.state / "moves" / f"{name}.json").exists(), "no journal is left"


def test_a_sparse_file_moves_sparse_and_costs_the_target_no_disk(quota_fleet: Fleet) -> None:
    fleet = quota_fleet
    _declare_stopped(fleet, "web")
    home = _volume(fleet, "alpha", "web")
    # 4 GiB long, 64 times alice's quota on the target; on disk: two blocks of real data.
    with (home / "big").open("wb") as file:
        file.write(b"my work\n")
        file.seek(2 * GiB)
        file.write(b"middle")
        file.truncate(4 * GiB)
    (home / "notes.md").write_text("work in progress\n")
    as_rootless(home)
    assert _on_disk(home) < MiB
    mtime = int((home / "big").stat().st_mtime)

    moved = fleet.control.cli("move", "web", "--to", "beta")

    assert moved.code == 0, moved.out + moved.err
    assert _records(fleet)["web"]["host"] == "beta"
    new_home = fleet.volume_path("beta", "web-data")
    big = new_home / "big"
    assert big.stat().st_size == 4 * GiB
    # The holes stayed holes (before: 4 GiB of zeros written on beta).
    assert _on_disk(new_home) < MiB
    with big.open("rb") as file:
        assert file.read(8) == b"my work\n"
        file.seek(2 * GiB)
        assert file.read(6) == b"middle"
        file.seek(2 * GiB - 4096)
        assert file.read(4096) == bytes(4096)
    assert (new_home / "notes.md").read_text() == "work in progress\n"
    # The file keeps its owner and time, as podman's import gives every other file.
    assert big.stat().st_uid == (new_home / "notes.md").stat().st_uid
    assert int(big.stat().st_mtime) == mtime
    assert _snapshot_store(fleet, "beta") == [], "the staged stream is gone once imported"
    assert fleet.hosts["alpha"].podman("volume", "exists", "web-data").returncode == 1


def _real_data(home: Path, size: int) -> str:
    data = os.urandom(size)  # incompressible and without a zero block: all of it is disk
    (home / "work.bin").write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def _refused(result_err: str, size_shown: str) -> None:
    assert "on beta:" in result_err
    assert size_shown in result_err
    assert "containers.maxSnapshotBytesPerUser" in result_err
    assert "64M" in result_err
    assert "nothing was moved" in result_err
    assert "devbox-ctl snapshots --prune ID" in result_err


def test_a_volume_over_the_targets_quota_is_refused_before_anything_stops(
    quota_fleet: Fleet,
) -> None:
    fleet = quota_fleet
    _declare_stopped(fleet, "web")
    home = _volume(fleet, "alpha", "web")
    digest = _real_data(home, 80 * MiB)
    as_rootless(home)
    before = fleet.control.git_log()

    refused = fleet.control.cli("move", "web", "--to", "beta")

    assert refused.code == 2, refused.out + refused.err
    _refused(refused.err, "80.")
    assert _records(fleet)["web"]["host"] == "alpha"
    assert _records(fleet)["web"]["state"] == "stopped"
    assert fleet.control.git_log() == before, "the declaration was not touched"
    assert hashlib.sha256((home / "work.bin").read_bytes()).hexdigest() == digest
    _nothing_changed_on_the_target(fleet, "web", "beta")


def test_a_running_volume_that_grows_past_the_quota_is_refused_while_copied(
    quota_fleet: Fleet,
) -> None:
    """The source cannot measure this volume (it is not laid out as its owner's podman has
    it): the target bounds the stream as it comes, refuses it there, and the move is called
    off: the container runs again on its host, and the target keeps nothing."""
    fleet = quota_fleet
    fleet.declare([])
    for host in fleet.hosts:
        fleet.deploy(host)
    fleet.control.set_op_item("alice", KEY)
    created = fleet.control.cli(
        "create", "web", "--owner", "alice", "--host", "alpha", "--timeout", "60"
    )
    assert created.code == 0, created.err
    home = fleet.volume_path("alpha", "web-data")
    digest = _real_data(home, 80 * MiB)

    refused = fleet.control.cli("move", "web", "--to", "beta")

    assert refused.code == 2, refused.out + refused.err
    _refused(refused.err, "it had reached")
    assert "Starting web again on alpha" in refused.out
    record = _records(fleet)["web"]
    assert (record["host"], record["state"]) == ("alpha", "running")
    running = fleet.hosts["alpha"].podman("ps", "--format", "{{.Names}}").stdout.split()
    assert running == ["web"]
    assert hashlib.sha256((home / "work.bin").read_bytes()).hexdigest() == digest
    _nothing_changed_on_the_target(fleet, "web", "beta")


def test_a_drain_takes_the_same_refusal_and_moves_the_rest(quota_fleet: Fleet) -> None:
    fleet = quota_fleet
    _declare_stopped(fleet, "big", "small")
    _real_data(as_rootless(_volume(fleet, "alpha", "big")), 80 * MiB)
    (as_rootless(_volume(fleet, "alpha", "small")) / "notes.md").write_text("small\n")

    drained = fleet.control.cli("drain", "alpha")

    assert drained.code == 3, drained.out + drained.err
    placed = {name: record["host"] for name, record in _records(fleet).items()}
    assert placed["big"] == "alpha"
    assert placed["small"] != "alpha"
    said = drained.out + drained.err
    assert "containers.maxSnapshotBytesPerUser" in said
    for host in ("beta", "gamma"):
        assert fleet.hosts[host].podman("volume", "exists", "big-data").returncode == 1
        assert _snapshot_store(fleet, host) == []
    assert json.loads(fleet.control.cli("status", "big", "--json").out)["host"] == "alpha"
