"""restore in a fleet: on the host that holds the snapshot, through that host's own restore.

The control host asks every host for its snapshots (fleet-host snapshots), declares the new
container on the snapshot's host under the config lock, and that host's restore checks and
fills the volume (fleet-host restore, runtime/restore.py); then the key, the deploy, the
wait, as create. Simulated fleet of tests/fleet.py (real podman, Quadlet, Nix, git and each
host's devbox-ctl).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fleet import Fleet
from host import KEY

TIMEOUT = ("--timeout", "60")
NOTES = "work in progress\n"
BOB = 1002


@pytest.fixture
def pair(fleet_of) -> Fleet:  # type: ignore[no-untyped-def]
    """alpha and beta, deployed; alice's web was on beta, destroyed: its snapshot is there."""
    fleet: Fleet = fleet_of(("alpha", "beta"))
    fleet.declare([])
    for name in fleet.hosts:
        fleet.deploy(name)
    fleet.control.set_op_item("alice", KEY)
    fleet.control.set_op_item("bob", KEY)
    made = fleet.control.cli("create", "web", "--owner", "alice", "--host", "beta", *TIMEOUT)
    assert made.code == 0, made.err
    home = fleet.volume_path("beta", "web-data")
    (home / "project").mkdir()
    (home / "project" / "notes.md").write_text(NOTES)
    destroyed = fleet.control.cli("destroy", "web", "--yes")
    assert destroyed.code == 0, destroyed.err
    assert records(fleet) == {}
    return fleet


def records(fleet: Fleet) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in fleet.control.records()}


def running(fleet: Fleet, host: str) -> list[str]:
    return sorted(fleet.hosts[host].podman("ps", "--format", "{{.Names}}").stdout.split())


def notes(fleet: Fleet, host: str, volume: str) -> str:
    return (fleet.volume_path(host, volume) / "project" / "notes.md").read_text()


def snapshot_ids(fleet: Fleet) -> list[str]:
    listed = fleet.control.cli("restore", "--list", "--json")
    assert listed.code == 0, listed.err
    return [row["id"] for row in json.loads(listed.out)["snapshots"]]


def test_restore_brings_the_data_back_on_the_host_that_holds_it(pair: Fleet) -> None:
    listed = pair.control.cli("restore", "--list")
    assert listed.code == 0, listed.err
    assert "web (alice)" in listed.out
    assert listed.out.rstrip().endswith("on beta")
    restored = pair.control.cli("restore", "web", *TIMEOUT)
    assert restored.code == 0, restored.err
    assert "Restored web (owner alice) on beta" in restored.out
    record = records(pair)["web"]
    assert (record["host"], record["owner"], record["state"]) == ("beta", "alice", "running")
    assert running(pair, "beta") == ["web"]
    assert running(pair, "alpha") == []
    assert notes(pair, "beta", "web-data") == NOTES
    # The key went over ssh's standard input, never argv (each member's devbox-ctl records
    # the arguments it was run with); it was neutralised once joined.
    assert any("set-key" in argv for argv in pair.remote_argvs("beta"))
    assert KEY not in json.dumps(pair.remote_argvs())
    beta_events = (pair.hosts["beta"].state / "events.jsonl").read_text()
    assert '"fleet-restore"' in beta_events
    # The same snapshot again, under another name: beta again, its own volume.
    again = pair.control.cli("restore", "web", "--as", "web2", "--json", *TIMEOUT)
    assert again.code == 0, again.err
    done = json.loads(again.out)
    assert (done["name"], done["host"], done["joined"]) == ("web2", "beta", True)
    assert notes(pair, "beta", "web2-data") == NOTES


def test_a_snapshot_on_no_host_is_exit_2_and_changes_nothing(pair: Fleet) -> None:
    log = pair.control.git_log()
    missing = pair.control.cli("restore", "ghost")
    assert missing.code == 2, missing.err
    assert "no snapshot of ghost on any host of the fleet" in missing.err
    wrong = pair.control.cli("restore", "web", "--from", "web-20200101T000000Z-00000000")
    assert wrong.code == 2, wrong.err
    assert "no snapshot web-20200101T000000Z-00000000 of web" in wrong.err
    assert records(pair) == {}
    assert pair.control.git_log() == log


def test_a_user_cannot_restore_another_users_snapshot(pair: Fleet) -> None:
    log = pair.control.git_log()
    (snapshot,) = snapshot_ids(pair)
    mine = pair.control.cli("restore", "--list", "--json", uid=BOB)
    assert mine.code == 0, mine.err
    assert json.loads(mine.out)["snapshots"] == []
    for argv in (["restore", "web", "--as", "bobs"], ["restore", "web", "--from", snapshot]):
        refused = pair.control.cli(*argv, uid=BOB)
        assert refused.code == 4, refused.err
        assert "bob may not restore web: it belongs to alice" in refused.err
    assert records(pair) == {}
    assert pair.control.git_log() == log
    assert pair.hosts["beta"].podman("volume", "exists", "bobs-data").returncode == 1


def test_a_silent_host_makes_the_latest_unknown_not_absent(pair: Fleet) -> None:
    pair.down("beta")
    silent = pair.control.cli("restore", "web")
    assert silent.code == 3, silent.err
    assert "beta" in silent.err
    assert records(pair) == {}


def test_an_existing_name_or_a_kept_volume_is_refused_with_nothing_declared(
    pair: Fleet,
) -> None:
    made = pair.control.cli("create", "web", "--owner", "alice", "--host", "alpha", *TIMEOUT)
    assert made.code == 0, made.err
    taken = pair.control.cli("restore", "web")
    assert taken.code == 2, taken.err
    assert "a container named web exists" in taken.err
    # A volume on beta of that name (kept by destroy --keep-volume): beta's own check refuses.
    kept = pair.hosts["beta"].podman("volume", "create", "old-data")
    assert kept.returncode == 0, kept.stderr
    refused = pair.control.cli("restore", "web", "--as", "old")
    assert refused.code == 2, refused.err
    assert "on beta: " in refused.err
    assert "the volume old-data exists" in refused.err
    assert sorted(records(pair)) == ["web"]


def test_an_interrupted_restore_is_resumed_by_running_it_again(pair: Fleet, tmp_path: Path) -> None:
    # As a restore killed after it declared web on beta, while it was filling the volume: the
    # record (stopped, never run) is committed, beta is not deployed with it, and a half
    # volume is there.
    declared = {"name": "web", "owner": "alice", "host": "beta", "state": "stopped"}
    pair.declare([{**declared, "created": "2026-01-01T00:00:00Z"}])
    half = pair.hosts["beta"].podman("volume", "create", "web-data")
    assert half.returncode == 0, half.stderr
    (pair.volume_path("beta", "web-data") / "partial").write_text("half\n")
    resumed = pair.control.cli("restore", "web", "--json", *TIMEOUT)
    assert resumed.code == 0, resumed.err
    done = json.loads(resumed.out)
    assert (done["resumed"], done["host"], done["joined"]) == (True, "beta", True)
    assert records(pair)["web"]["created"] == "2026-01-01T00:00:00Z"
    assert records(pair)["web"]["state"] == "running"
    assert notes(pair, "beta", "web-data") == NOTES
    assert not (pair.volume_path("beta", "web-data") / "partial").exists()
