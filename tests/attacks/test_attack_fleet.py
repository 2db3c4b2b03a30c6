"""Attacks on the fleet's verbs through what a user types: labels, hosts, times, names.

A user runs the fleet's verbs on the control host through the privileged path; root then
runs ssh to a host, whose login shell parses the remote command line (tests/fleet.py: the
ssh stand-in joins the words and runs them with `sh -c`, as OpenSSH's sshd does). A value
that reached that line unquoted would run as root on the host; one that reached ssh's own
options (a host named `-oProxyCommand=…`) would run on the control host. The promise: every
such value is refused before anything runs, or arrives as the one word it was typed as; and a
user acts only on their own containers, checked before any host is asked.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from fleet import Fleet

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
    ssh_before, deploys_before = len(_calls(declared, "ssh")), len(_calls(declared, "colmena"))
    word = option[1].format(mark=mark)
    result = declared.control.cli("create", "box", option[0], word, uid=1001)
    assert result.code == 2, result.err
    assert "Traceback" not in result.err
    assert declared.control.records() == before
    assert len(_calls(declared, "ssh")) == ssh_before
    assert len(_calls(declared, "colmena")) == deploys_before
    assert not mark.exists()


def test_a_hostile_time_reaches_the_host_as_one_word(declared: Fleet, tmp_path: Path) -> None:
    """`--since` goes to the host's devbox-ctl: quoted, it never meets a shell as code."""
    mark = tmp_path / "mark"
    since = f"1h'; touch {mark}; echo '$(touch {mark})"
    declared.control.cli("logs", "web", "--since", since, uid=1001)
    assert not mark.exists()
    (argv,) = [a for a in _calls(declared, "ssh") if "logs" in " ".join(a)]
    # The stand-in records ssh's own argv: the remote words, each quoted for the remote shell.
    assert argv[-2:] == ["--since", shlex.quote(since)]


def test_a_user_acts_only_on_their_own_containers_and_no_host_is_asked(declared: Fleet) -> None:
    ssh_before = len(_calls(declared, "ssh"))
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
    assert len(_calls(declared, "ssh")) == ssh_before
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
    ssh_before = len(_calls(declared, "ssh"))
    result = declared.control.cli("create", "box", *option, uid=1001)
    assert result.code == 2, result.err
    assert result.err.startswith(f"error: {expected}"), result.err
    assert "Traceback" not in result.err
    assert declared.control.records() == before
    assert len(_calls(declared, "ssh")) == ssh_before


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
