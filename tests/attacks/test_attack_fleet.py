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

import shlex
from pathlib import Path

import pytest

from fleet import Fleet

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
