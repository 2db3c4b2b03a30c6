"""The fleet's verbs on the control host, end to end on a simulated fleet (tests/fleet.py).

Real on every host: podman (volumes, secrets, containers), Quadlet, the generator, git and
Nix on the control host, each host's own devbox-ctl. Stood in: OpenSSH and colmena (they
record their argv and run the target host's devbox-ctl, or its activation, in that host's
environment), and on each host what tests/host.py stands in for (the user's systemd manager,
1Password, Tailscale's control plane).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hostile_text import FORGED, HOSTILE_NODE, RAW
from unit_programs import cleanup_programs

from devbox.tools import process
from fleet import Fleet
from host import KEY, Host

TIMEOUT = ("--timeout", "60")
TAILSCALE_STATE = ".local/share/tailscale/test-state"


@pytest.fixture
def trio(fleet: Fleet) -> Fleet:
    """alpha, beta and gamma, each deployed with its (empty) slice; alice's key in 1Password."""
    fleet.declare([])
    for name in fleet.hosts:
        fleet.deploy(name)
    fleet.control.set_op_item("alice", KEY)
    fleet.control.set_op_item("bob", KEY)
    return fleet


def records(fleet: Fleet) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in fleet.control.records()}


def deployed_containers(fleet: Fleet, host: str) -> dict[str, Any]:
    manifest = fleet.hosts[host].deployed / "manifest.json"
    return json.loads(manifest.read_text())["containers"] if manifest.is_file() else {}


def running(fleet: Fleet, host: str) -> list[str]:
    out = fleet.hosts[host].podman("ps", "--format", "{{.Names}}").stdout
    return sorted(out.split())


def deploys(fleet: Fleet) -> list[list[str]]:
    return [call["argv"] for call in fleet.control.stand_ins.calls("colmena")]


def test_create_places_on_the_freest_host_provisions_there_and_joins(trio: Fleet) -> None:
    before = len(deploys(trio))
    result = trio.control.cli("create", "web", "--owner", "alice", *TIMEOUT)
    assert result.code == 0, result.err
    # Three equal, empty hosts: the tie goes to the first name.
    assert records(trio)["web"]["host"] == "alpha"
    assert "web is on the tailnet, on alpha." in result.out
    assert "ssh dev@web" in result.out
    assert running(trio, "alpha") == ["web"]
    assert running(trio, "beta") == running(trio, "gamma") == []
    # Only the host whose slice changed was deployed.
    assert deploys(trio)[before:] == [["apply", "--on", "alpha"]]
    # The key reached alpha's podman secret through ssh's stdin: no devbox-ctl on any host
    # was given it as an argument (each records its arguments; tests/fleet.py).
    assert any("set-key" in argv for argv in trio.remote_argvs("alpha"))
    assert KEY not in json.dumps(trio.remote_argvs())
    second = trio.control.cli("create", "api", "--owner", "bob", *TIMEOUT)
    assert second.code == 0, second.err
    assert records(trio)["api"]["host"] == "beta"


def test_create_with_host_and_label_and_the_refusal_that_names_each_host(trio: Fleet) -> None:
    refused = trio.control.cli("create", "ml-train", "--owner", "alice", "--label", "gpu", *TIMEOUT)
    assert refused.code == 2, refused.err
    for host in ("alpha", "beta", "gamma"):
        assert f"{host}: lacks label gpu" in refused.err
    assert records(trio) == {}
    placed = trio.control.cli("create", "web", "--owner", "alice", "--host", "gamma", *TIMEOUT)
    assert placed.code == 0, placed.err
    assert records(trio)["web"]["host"] == "gamma"
    too_big = trio.control.cli(
        "create", "big", "--owner", "alice", "--cpu", "16", "--host", "gamma"
    )
    assert too_big.code == 2
    assert "gamma" in too_big.err
    assert "CPU" in too_big.err


def test_list_shows_every_host_and_an_unreachable_one_as_such(trio: Fleet) -> None:
    assert trio.control.cli("create", "web", "--owner", "alice", *TIMEOUT).code == 0
    assert trio.control.cli("create", "api", "--owner", "bob", *TIMEOUT).code == 0
    listed = trio.control.cli("list", "--all", "--json")
    assert listed.code == 0, listed.err
    rows = {row["name"]: row for row in json.loads(listed.out)["containers"]}
    assert (rows["web"]["host"], rows["web"]["actual"]) == ("alpha", "running")
    assert (rows["api"]["host"], rows["api"]["actual"]) == ("beta", "running")
    trio.down("beta")
    silent = trio.control.cli("list", "--all")
    assert silent.code == 3
    assert "host beta is unreachable" in silent.err
    line = next(line for line in silent.out.splitlines() if " api " in f" {line} ")
    assert line.split()[:5] == ["beta", "api", "bob", "running", "unreachable"]
    status = trio.control.cli("status", "api")
    assert status.code == 3
    assert "beta" in status.err
    assert "unreachable" in status.err


def test_stop_and_start_deploy_the_host_whose_switch_acts(trio: Fleet) -> None:
    assert trio.control.cli("create", "web", "--owner", "alice", *TIMEOUT).code == 0
    stopped = trio.control.cli("stop", "web")
    assert stopped.code == 0, stopped.err
    assert records(trio)["web"]["state"] == "stopped"
    assert deployed_containers(trio, "alpha")["web"]["state"] == "stopped"
    assert running(trio, "alpha") == []
    started = trio.control.cli("start", "web")
    assert started.code == 0, started.err
    assert running(trio, "alpha") == ["web"]
    status = json.loads(trio.control.cli("status", "web", "--json").out)
    assert (status["host"], status["actual"]) == ("alpha", "running")


def _write_home(fleet: Fleet, host: str, volume: str) -> Path:
    home = fleet.volume_path(host, volume)
    (home / "project").mkdir(exist_ok=True)
    (home / "project" / "notes.md").write_text("work in progress\n")
    return home


def test_move_takes_the_data_and_the_identity_and_frees_the_source(trio: Fleet) -> None:
    assert trio.control.cli("create", "web", "--owner", "alice", *TIMEOUT).code == 0
    home = _write_home(trio, "alpha", "web-data")
    # The Tailscale stand-in's node state (tests/stand_ins/image/entrypoint): without it, and
    # with the neutralised key the target gets, the container could not join.
    state = (home / TAILSCALE_STATE).read_bytes()
    keys_read = len(trio.control.stand_ins.calls("op"))
    moved = trio.control.cli("move", "web", "--to", "gamma")
    assert moved.code == 0, moved.err
    assert records(trio)["web"]["host"] == "gamma"
    assert running(trio, "gamma") == ["web"]
    assert running(trio, "alpha") == []
    new_home = trio.volume_path("gamma", "web-data")
    assert (new_home / "project/notes.md").read_text() == "work in progress\n"
    # Tailscale's state came along: the same node, joined without a key from 1Password.
    assert (new_home / TAILSCALE_STATE).read_bytes() == state
    assert len(trio.control.stand_ins.calls("op")) == keys_read
    status = json.loads(trio.control.cli("status", "web", "--json").out)
    assert (status["host"], status["actual"], status["tailscale"]["state"]) == (
        "gamma",
        "running",
        "Running",
    )
    assert trio.hosts["alpha"].podman("volume", "exists", "web-data").returncode == 1
    assert not (trio.control.state / "moves" / "web.json").exists()


def test_an_interrupted_move_keeps_the_data_and_a_rerun_finishes_it(trio: Fleet) -> None:
    assert trio.control.cli("create", "web", "--owner", "alice", *TIMEOUT).code == 0
    _write_home(trio, "alpha", "web-data")
    trio.down("beta")
    broken = trio.control.cli("move", "web", "--to", "beta")
    assert broken.code == 3
    assert "beta" in broken.err
    # Nothing is lost: still declared on alpha, the data still there.
    assert records(trio)["web"]["host"] == "alpha"
    assert (trio.volume_path("alpha", "web-data") / "project/notes.md").is_file()
    other = trio.control.cli("move", "web", "--to", "gamma")
    assert other.code == 2
    assert "a move of web to beta is under way" in other.err
    trio.down("beta", down=False)
    trio.fail_deploy("beta")
    failed = trio.control.cli("move", "web", "--to", "beta")
    assert failed.code == 3
    assert "devbox-ctl deploy beta" in failed.err
    # The record switched, the data is on beta, and alpha's copy is still kept.
    assert records(trio)["web"]["host"] == "beta"
    assert trio.hosts["alpha"].podman("volume", "exists", "web-data").returncode == 0
    trio.fail_deploy("beta", fail=False)
    finished = trio.control.cli("move", "web", "--to", "beta")
    assert finished.code == 0, finished.err
    assert "Resuming the move of web from alpha to beta." in finished.out
    assert running(trio, "beta") == ["web"]
    assert (trio.volume_path("beta", "web-data") / "project/notes.md").is_file()
    assert trio.hosts["alpha"].podman("volume", "exists", "web-data").returncode == 1


def test_drain_moves_everything_off_a_host(trio: Fleet) -> None:
    for name in ("one", "two"):
        assert (
            trio.control.cli("create", name, "--owner", "alice", "--host", "alpha", *TIMEOUT).code
            == 0
        )
    plan = trio.control.cli("drain", "alpha", "--dry-run")
    assert plan.code == 0, plan.err
    assert "one -> beta" in plan.out
    assert "two -> gamma" in plan.out
    assert {r["host"] for r in records(trio).values()} == {"alpha"}
    drained = trio.control.cli("drain", "alpha")
    assert drained.code == 0, drained.err
    assert {name: r["host"] for name, r in records(trio).items()} == {
        "one": "beta",
        "two": "gamma",
    }
    assert running(trio, "alpha") == []
    assert running(trio, "beta") == ["one"]
    assert running(trio, "gamma") == ["two"]


def test_deploy_goes_on_past_a_failed_host_and_names_the_retry(trio: Fleet) -> None:
    users = trio.control.repo / "devbox" / "users.nix"
    users.write_text(users.read_text().replace("carol = { uid = 1003; };", ""))
    trio.declare([])  # every slice changes: carol is gone from all of them
    trio.fail_deploy("beta")
    result = trio.control.cli("deploy")
    assert result.code == 3
    assert "deploying beta failed" in result.err
    assert "devbox-ctl deploy beta" in result.err
    assert "Deployed alpha, gamma." in result.out
    for host in ("alpha", "gamma"):
        assert (
            "carol"
            not in json.loads((trio.hosts[host].deployed / "manifest.json").read_text())["users"]
        )
    assert (
        "carol" in json.loads((trio.hosts["beta"].deployed / "manifest.json").read_text())["users"]
    )
    trio.fail_deploy("beta", fail=False)
    retried = trio.control.cli("deploy")
    assert retried.code == 0, retried.err
    assert "Deployed beta." in retried.out
    assert trio.control.cli("deploy").out.strip().endswith("nothing to deploy.")


def test_destroy_snapshots_on_the_host_and_forgets_the_record(trio: Fleet) -> None:
    assert trio.control.cli("create", "web", "--owner", "alice", *TIMEOUT).code == 0
    _write_home(trio, "alpha", "web-data")
    destroyed = trio.control.cli("destroy", "web", "--yes")
    assert destroyed.code == 0, destroyed.err
    assert records(trio) == {}
    assert "web" not in deployed_containers(trio, "alpha")
    assert trio.hosts["alpha"].podman("volume", "exists", "web-data").returncode == 1
    snapshots = list((trio.hosts["alpha"].state / "snapshots").rglob("*web*"))
    assert snapshots, "the volume was saved on its host before it was removed"


def test_cleanup_dry_run_asks_every_host(trio: Fleet) -> None:
    assert trio.control.cli("create", "web", "--owner", "alice", *TIMEOUT).code == 0
    report = trio.control.cli("cleanup", "--dry-run", "--json")
    assert report.code == 0, report.err
    rows = json.loads(report.out)["containers"]
    assert [(r["host"], r["name"], r["action"]) for r in rows] == [("alpha", "web", "none")]
    trio.down("gamma")
    silent = trio.control.cli("cleanup", "--dry-run")
    assert silent.code == 3
    assert "host gamma is unreachable" in silent.out


def test_a_user_sees_their_own_containers_across_the_fleet(trio: Fleet) -> None:
    assert trio.control.cli("create", "web", "--owner", "alice", *TIMEOUT).code == 0
    assert trio.control.cli("create", "api", "--owner", "bob", *TIMEOUT).code == 0
    mine = trio.control.cli("list", "--json", uid=1002)
    assert mine.code == 0, mine.err
    assert [row["name"] for row in json.loads(mine.out)["containers"]] == ["api"]
    assert trio.control.cli("stop", "web", uid=1002).code == 4


def test_rotate_key_sends_a_fresh_key_to_the_host_and_re_enrolls_there(trio: Fleet) -> None:
    assert trio.control.cli("create", "web", "--owner", "alice", *TIMEOUT).code == 0
    keys_read = len(trio.control.stand_ins.calls("op"))
    rotated = trio.control.cli("rotate-key", "web", *TIMEOUT)
    assert rotated.code == 0, rotated.err
    assert "web is on the tailnet again" in rotated.out
    assert len(trio.control.stand_ins.calls("op")) == keys_read + 1
    relogins = [argv for argv in trio.remote_argvs() if "relogin" in argv]
    assert len(relogins) == 1
    assert KEY not in json.dumps(trio.remote_argvs())


def test_a_pin_reaches_the_containers_host_at_once(trio: Fleet) -> None:
    assert trio.control.cli("create", "web", "--owner", "alice", *TIMEOUT).code == 0
    until = (datetime.now(UTC).date() + timedelta(days=30)).isoformat()
    pinned = trio.control.cli("pin", "web", "--until", until, "--reason", "demo week")
    assert pinned.code == 0, pinned.err
    assert deployed_containers(trio, "alpha")["web"]["pin"] == {
        "until": until,
        "reason": "demo week",
    }
    assert trio.control.cli("unpin", "web").code == 0
    assert deployed_containers(trio, "alpha")["web"]["pin"] is None


def test_the_verbs_on_one_hosts_snapshots_say_where_to_run_them(trio: Fleet) -> None:
    listed = trio.control.cli("snapshots")
    assert listed.code == 2
    assert "run it on the container's host" in listed.err
    # restore is the fleet's own verb (tests/member/test_fleet_restore.py).
    restored = trio.control.cli("restore", "web")
    assert restored.code == 2
    assert "no snapshot of web on any host of the fleet" in restored.err


def test_the_control_hosts_cleanup_destroys_what_a_host_assessed(
    trio: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long-stopped container: its host assesses it, the control host destroys it there.

    It runs no program by name that unit_programs.py does not list for the daily unit, whose
    PATH tests/nix/test_unit_paths.py checks against that list.
    """
    found: set[str] = set()
    real_find = process.find

    def recording_find(program: str) -> str:
        found.add(program)
        return real_find(program)

    monkeypatch.setattr(process, "find", recording_find)
    long_ago = "2020-01-01T00:00:00Z"
    users = trio.control.repo / "devbox" / "users.nix"
    users.write_text(
        users.read_text().replace(
            "containers = {", "containers = {\n    destroyWarningHours = [ ];"
        )
    )
    record = {"name": "old", "owner": "alice", "host": "beta", "state": "stopped"}
    trio.declare([{**record, "created": long_ago, "stoppedAt": long_ago}])
    trio.deploy("beta")
    beta = trio.hosts["beta"]
    trio.idle_volume("beta", "old", 1001, since=long_ago)
    dry = json.loads(trio.control.cli("cleanup", "--dry-run", "--json").out)
    assert [(r["host"], r["name"], r["action"]) for r in dry["containers"]] == [
        ("beta", "old", "destroy")
    ]
    assert records(trio) != {}
    acted = trio.control.cli("cleanup", "--json")
    assert acted.code == 0, acted.err
    (row,) = json.loads(acted.out)["containers"]
    assert row["done"].startswith("destroyed (snapshot ")
    assert records(trio) == {}
    assert beta.podman("volume", "exists", "old-data").returncode == 1
    config = trio.config()
    assert {config.ssh_command[0], config.deploy_command[0]} <= found
    assert found <= cleanup_programs(config), sorted(found - cleanup_programs(config))
    assert list((beta.state / "snapshots").rglob("*old*"))


def test_a_fleet_declaration_on_a_host_set_up_as_single_says_what_to_set(host: Host) -> None:
    users = host.repo / "devbox" / "users.nix"
    users.write_text(
        users.read_text().replace(
            "  containers = {",
            '  hosts = { alpha = { reach = "root@alpha"; capacity = { cpus = 4; memory = "8G"; '
            "containers = 2; }; }; };\n  containers = {",
        )
    )
    result = host.cli("list", "--all")
    assert result.code == 2
    assert "users.nix declares hosts (a fleet), but this host is set up as a single host" in (
        result.err
    )
    assert "services.devbox.fleet.control = true" in result.err


def test_a_containers_tailnet_answer_reaches_the_control_hosts_terminal_escaped(
    trio: Fleet,
) -> None:
    """Its owner decides what the container's tailscaled says; an admin's `status` on the
    control host and the progress of a wait show it escaped (the review's attack 3)."""
    assert trio.control.cli("create", "web", "--owner", "alice", *TIMEOUT).code == 0
    host = records(trio)["web"]["host"]
    answer = trio.volume_path(host, "web-data") / ".local/share/tailscale/status-answer"
    answer.parent.mkdir(parents=True, exist_ok=True)
    answer.write_text(json.dumps(HOSTILE_NODE, ensure_ascii=False))
    status = trio.control.cli("status", "web")
    assert status.code in (0, 1), status.err
    assert "tailscale:" in status.out
    waited = trio.control.cli("rotate-key", "web", "--timeout", "3")
    assert waited.code == 3, waited.out + waited.err
    for text in (status.out + status.err, waited.out + waited.err):
        assert not [c for c in RAW if c in text], repr(text)
        assert FORGED not in text.splitlines(), text


def test_the_control_hosts_cleanup_deploys_each_host_once_per_run(trio: Fleet) -> None:
    """Two idle containers stopped on alpha and one old one destroyed on beta: one deploy
    of alpha and one of beta, after every change of the run is committed (not one each)."""
    long_ago = "2020-01-01T00:00:00Z"
    users = trio.control.repo / "devbox" / "users.nix"
    users.write_text(
        users.read_text().replace(
            "containers = {",
            "containers = {\n    destroyWarningHours = [ ];\n    stopWarningHours = [ ];",
        )
    )
    since = {"created": long_ago}
    trio.declare(
        [
            {"name": "web", "owner": "alice", "host": "alpha", **since},
            {"name": "api", "owner": "bob", "host": "alpha", **since},
            {
                "name": "old",
                "owner": "carol",
                "host": "beta",
                "state": "stopped",
                "stoppedAt": long_ago,
                **since,
            },
        ]
    )
    trio.idle_volume("beta", "old", 1003, since=long_ago)
    for name, owner in (("web", "alice"), ("api", "bob")):
        key = trio.ssh("alpha", "fleet-host", "set-key", name, "--owner", owner, stdin=KEY)
        assert key.returncode == 0, key
    for host in ("alpha", "beta"):
        trio.deploy(host)
    for name, uid in (("web", 1001), ("api", 1002)):
        # Its container runs now (it took the volume's root): its monitor's record says idle.
        trio.hosts["alpha"].podman("stop", "--time", "0", name)
        trio.hosts["alpha"].podman("volume", "rm", "--force", f"{name}-data")
        home = trio.idle_volume("alpha", name, uid, since=long_ago)
        record = home / ".local" / "state" / "devbox" / "activity.json"
        running_record = json.loads(record.read_text())
        running_record["monitor"]["updatedAt"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        running_record["signals"] = {"ssh": {"lastSeen": long_ago, "sessions": 0}}
        record.write_text(json.dumps(running_record))
    dry = json.loads(trio.control.cli("cleanup", "--dry-run", "--json").out)
    assert sorted((r["name"], r["action"]) for r in dry["containers"]) == [
        ("api", "stop"),
        ("old", "destroy"),
        ("web", "stop"),
    ], [r["reasons"] for r in dry["containers"]]
    before = len(deploys(trio))
    acted = trio.control.cli("cleanup", "--json")
    assert acted.code == 0, acted.err
    done = {r["name"]: r["done"] for r in json.loads(acted.out)["containers"]}
    assert (done["web"], done["api"]) == ("stopped", "stopped")
    assert done["old"].startswith("destroyed")
    assert sorted(deploys(trio)[before:]) == [["apply", "--on", "alpha"], ["apply", "--on", "beta"]]
    assert {n: r["state"] for n, r in records(trio).items()} == {"web": "stopped", "api": "stopped"}
    assert deployed_containers(trio, "alpha")["web"]["state"] == "stopped"
    assert "old" not in deployed_containers(trio, "beta")
