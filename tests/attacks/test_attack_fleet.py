"""Attacks on the fleet's verbs through what a user types: labels, hosts, times, names.

A user runs the fleet's verbs on the control host through the privileged path; root then
runs ssh to a host, whose login shell parses the remote command line (tests/fleet.py: each
host runs its own OpenSSH sshd, and root's shell there runs the line). A value
that reached that line unquoted would run as root on the host; one that reached ssh's own
options (a host named `-oProxyCommand=…`) would run on the control host. The promise: every
such value is refused before anything runs, or arrives as the one word it was typed as; and a
user acts only on their own containers, checked before any host is asked.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from devbox.runtime import fleet_views
from fleet import Fleet
from host import KEY

TIMEOUT = ("--timeout", "60")
WEB = {"name": "web", "owner": "alice", "host": "alpha", "state": "stopped"}


@pytest.fixture
def declared(fleet: Fleet) -> Fleet:
    """alpha, beta, gamma; alice's web declared (stopped) and deployed on alpha."""
    fleet.declare([WEB])
    for name in fleet.hosts:
        fleet.deploy(name)
    return fleet


def _calls(fleet: Fleet, program: str) -> list[list[str]]:
    return [call["argv"] for call in fleet.control.stand_ins.calls(program)]


@pytest.mark.parametrize(
    "option",
    [
        ["--label", "$(touch {mark})"],
        ["--label", "gpu;touch {mark}"],
        ["--host", "-oProxyCommand=touch {mark}"],
        ["--host", "alpha;touch {mark}"],
    ],
    ids=["label-substitution", "label-separator", "host-option", "host-separator"],
)
def test_a_hostile_label_or_host_is_refused_before_any_host_is_asked(
    declared: Fleet, tmp_path: Path, option: list[str]
) -> None:
    mark = tmp_path / "mark"
    before = declared.control.records()
    ssh_before, deploys_before = declared.connections(), len(_calls(declared, "colmena"))
    word = option[1].format(mark=mark)
    result = declared.control.cli("create", "box", option[0], word, uid=1001)
    assert result.code == 2, result.err
    assert "Traceback" not in result.err
    assert declared.control.records() == before
    assert declared.connections() == ssh_before
    assert len(_calls(declared, "colmena")) == deploys_before
    assert not mark.exists()


def test_a_hostile_time_reaches_the_host_as_one_word(declared: Fleet, tmp_path: Path) -> None:
    """`--since` goes to the host's devbox-ctl: quoted, it never meets a shell as code."""
    mark = tmp_path / "mark"
    since = f"1h'; touch {mark}; echo '$(touch {mark})"
    declared.control.cli("logs", "web", "--since", since, uid=1001)
    assert not mark.exists()
    # What the host's devbox-ctl was given once its shell had parsed the line: one word.
    (argv,) = [a for a in declared.remote_argvs() if "logs" in a]
    assert argv[-2:] == ["--since", since]


def test_a_user_acts_only_on_their_own_containers_and_no_host_is_asked(declared: Fleet) -> None:
    ssh_before = declared.connections()
    for argv in (
        ["status", "web"],
        ["logs", "web"],
        ["stop", "web"],
        ["start", "web"],
        ["destroy", "web", "--yes"],
        ["move", "web", "--to", "beta"],
        ["rotate-key", "web"],
    ):
        result = declared.control.cli(*argv, uid=1002)
        assert result.code == 4, (argv, result.err)
    assert declared.control.cli("drain", "alpha", "--dry-run", uid=1002).code == 2
    assert declared.control.cli("deploy", uid=1002).code == 2
    assert declared.connections() == ssh_before
    assert [r["host"] for r in declared.control.records()] == ["alpha"]


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        (["--cpu", "nan"], "--cpu: nan is not a positive number of CPUs"),
        (["--cpu", "inf"], "--cpu: inf is not a positive number of CPUs"),
        (["--cpu", "-inf"], "--cpu: -inf is not a positive number of CPUs"),
        (["--cpu", "0"], "--cpu: 0 is not a positive number of CPUs"),
        (["--memory", "8GB"], '--memory: "8GB" is not a memory size'),
    ],
    ids=["nan", "inf", "minus-inf", "zero", "memory-unit"],
)
def test_a_number_that_is_not_one_is_refused_by_its_option(
    declared: Fleet, option: list[str], expected: str
) -> None:
    """A NaN or an infinity reached placement's arithmetic, an internal error (exit 70)."""
    before = declared.control.records()
    ssh_before = declared.connections()
    result = declared.control.cli("create", "box", *option, uid=1001)
    assert result.code == 2, result.err
    assert result.err.startswith(f"error: {expected}"), result.err
    assert "Traceback" not in result.err
    assert declared.control.records() == before
    assert declared.connections() == ssh_before


def test_a_destroyed_containers_move_journal_never_steers_a_namesake(declared: Fleet) -> None:
    """An interrupted move, then a destroy: the journal went with the container. A namesake of
    another user then moves freely, and a drain plans it by room, not by the old journal."""
    fleet = declared
    assert (
        fleet.control.cli("create", "box", "--owner", "alice", "--host", "alpha", *TIMEOUT).code
        == 0
    )
    fleet.down("beta")
    assert fleet.control.cli("move", "box", "--to", "beta").code == 3
    fleet.down("beta", down=False)
    journal = fleet.control.state / "moves" / "box.json"
    assert journal.is_file()
    destroyed = fleet.control.cli("destroy", "box", "--yes")
    assert destroyed.code == 0, destroyed.err
    assert not journal.exists()
    assert (
        fleet.control.cli("create", "box", "--owner", "bob", "--host", "alpha", *TIMEOUT).code == 0
    )
    plan = fleet.control.cli("drain", "alpha", "--dry-run")
    assert plan.code == 0, plan.err
    moved = fleet.control.cli("move", "box", "--to", "gamma")
    assert moved.code == 0, moved.err
    assert {r["name"]: r["host"] for r in fleet.control.records()}["box"] == "gamma"


def test_a_journal_left_by_another_container_is_set_aside_not_obeyed(declared: Fleet) -> None:
    """A journal from before destroys removed them (or put back by hand) names another
    container of that name: it is kept aside, and neither a move nor a drain follows it."""
    fleet = declared
    assert (
        fleet.control.cli("create", "box", "--owner", "bob", "--host", "alpha", *TIMEOUT).code == 0
    )
    moves = fleet.control.state / "moves"
    moves.mkdir(mode=0o700, exist_ok=True)
    stale = {
        "name": "box",
        "owner": "alice",
        "created": "2020-01-01T00:00:00Z",
        "source": "alpha",
        "target": "beta",
        "wasRunning": True,
    }
    by_room = fleet.control.cli("drain", "alpha", "--dry-run")
    assert by_room.code == 0, by_room.err
    (moves / "box.json").write_text(json.dumps(stale))
    plan = fleet.control.cli("drain", "alpha", "--dry-run")
    assert plan.code == 0, plan.err
    assert plan.out == by_room.out
    moved = fleet.control.cli("move", "box", "--to", "gamma")
    assert moved.code == 0, moved.err
    assert "set aside" in moved.out
    (kept,) = moves.glob("box.*.json")
    assert json.loads(kept.read_text()) == stale


LONG_AGO = "2020-01-01T00:00:00Z"


def _long_stopped(fleet: Fleet, host: str) -> None:
    """carol's old on alpha and alice's web on HOST, stopped since 2020 with no destroy
    warning due: cleanup destroys both, old first. Deployed, with idle volumes, and the
    users' keys in 1Password."""
    users = fleet.control.repo / "devbox" / "users.nix"
    users.write_text(
        users.read_text().replace(
            "containers = {", "containers = {\n    destroyWarningHours = [ ];"
        )
    )
    old = {"name": "old", "owner": "carol", "host": "alpha", "state": "stopped"}
    fleet.declare(
        [
            {**record, "created": LONG_AGO, "stoppedAt": LONG_AGO}
            for record in (old, {**WEB, "host": host})
        ]
    )
    for name in fleet.hosts:
        fleet.deploy(name)
    fleet.idle_volume("alpha", "old", 1003, since=LONG_AGO)
    fleet.idle_volume(host, "web", 1001, since=LONG_AGO)
    fleet.control.set_op_item("alice", KEY)
    fleet.control.set_op_item("bob", KEY)


def test_a_cleanup_row_never_destroys_the_namesake_created_since(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The review's attack 1 (stale read). Between the hosts' assessments and the control
    host's act, alice destroys her long-stopped web, and bob creates a web on the same host
    and stops it. The row assessed alice's web: bob's is left alone, with its volume. (The
    run acts on carol's old first, which reads the declaration again, as every act does.)"""
    _long_stopped(fleet, "beta")
    real_ask_all = fleet_views.link.ask_all

    def assess_then_race(*args: Any, **kwargs: Any) -> Any:
        answers = real_ask_all(*args, **kwargs)
        if list(args[2][:1]) == ["cleanup"]:
            assert fleet.control.cli("destroy", "web", "--yes", uid=1001).code == 0
            created = fleet.control.cli(
                "create", "web", "--owner", "bob", "--host", "beta", *TIMEOUT, uid=1002
            )
            assert created.code == 0, created.err
            assert fleet.control.cli("stop", "web", uid=1002).code == 0
        return answers

    monkeypatch.setattr(fleet_views.link, "ask_all", assess_then_race)
    acted = fleet.control.cli("cleanup", "--json")
    assert acted.code == 0, acted.err
    old, row = json.loads(acted.out)["containers"]
    assert old["name"] == "old"
    assert old["done"].startswith("destroyed"), old
    assert (row["name"], row["owner"], row["action"]) == ("web", "alice", "destroy")
    assert row["done"].startswith("left alone: web is not the container its host assessed")
    (bobs,) = fleet.control.records()
    assert (bobs["owner"], bobs["state"]) == ("bob", "stopped")
    assert fleet.hosts["beta"].podman("volume", "exists", "web-data").returncode == 0


def test_a_host_purges_only_the_container_the_control_host_names(declared: Fleet) -> None:
    """Right before it removes anything, under its own lock, the host checks that the
    container it holds under that name is the one the control host means (its creation
    time), whatever the control host read before: another one of that name keeps its data."""
    fleet = declared
    created = "2026-01-01T00:00:00Z"
    fleet.declare([{**WEB, "created": created}])
    fleet.deploy("alpha")
    alpha = fleet.hosts["alpha"]
    assert alpha.podman("volume", "create", "web-data").returncode == 0
    stale = "2020-01-01T00:00:00Z"
    refused = fleet.ssh(
        "alpha", "fleet-host", "purge", "web", "--owner", "alice", "--created", stale
    )
    assert refused.returncode == 2, refused
    assert "web on this host is another container" in refused.stderr
    assert alpha.podman("volume", "exists", "web-data").returncode == 0
    meant = fleet.ssh(
        "alpha", "fleet-host", "purge", "web", "--owner", "alice", "--created", created
    )
    assert meant.returncode == 0, meant
    assert alpha.podman("volume", "exists", "web-data").returncode == 1
