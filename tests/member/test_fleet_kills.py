"""A kill at any moment loses nothing (issue 21): the control host's `move` and cleanup run
are SIGKILLed at each of their steps in turn, then run again. On a simulated fleet
(tests/fleet.py: real podman, Quadlet, git, Nix and OpenSSH; the colmena stand-in).

The control host's devbox-ctl runs in a process of its own here (tests/killer.py), in the
control host's environment (tests/fleet.py: the test process's), with counting wrappers in
front of the programs through which it changes anything: `ssh` (every step on a member: the
sizes, the quota check, the copy's two ends, the key, the status, the purge), `colmena` (each
deploy) and `git` (each change of the declaration; the record is written between the second
and the fourth git call of a change, and committed by the fourth).
"""

from __future__ import annotations

import random
import signal
from pathlib import Path

import pytest

from fleet import Fleet
from host import KEY, Host
from killer import Killer

TIMEOUT = ("--timeout", "60")
MARKER = "work in progress\n"
FLEET_STEPPED = ("ssh", "colmena", "git")

# A move's programs, in order (web running on the source): ssh export --sizes and import
# --check (the journal is written after them); git (the record declared stopped: written
# before the 2nd git call, committed by the 4th); colmena on the source (stops it); ssh
# export --sizes, then the copy (ssh import and export, the 2nd import and the 3rd export);
# ssh set-key; git (the record's host switched: the 9th git call commits it); colmena on
# both hosts; git (declared running); colmena on the target (starts it); ssh status until it
# has joined; ssh purge on the source (the journal goes after it). A kill is armed at the
# Nth call whose command line holds a text (tests/killer.py): polls do not shift it. The
# fast suite kills where what is left differs most (declared stopped but still running;
# copied and keyed, not switched; the source's copy purged, the journal kept); the slow one
# at every other boundary too.
MOVE_KILLS = ["before 1 colmena", "after 1 set-key", "after 1 purge"]
MOVE_KILLS_ALSO = ["before 1 ssh", "before 1 git", "before 4 git", "after 1 colmena"]
MOVE_KILLS_ALSO += ["before 2 fleet-host import", "before 3 fleet-host export"]
MOVE_KILLS_ALSO += ["after 3 fleet-host export", "before 9 git", "after 9 git"]
MOVE_KILLS_ALSO += ["after 2 colmena", "after 3 colmena", "after 4 colmena", "before 1 purge"]


@pytest.fixture
def duo(fleet_of) -> Fleet:  # type: ignore[no-untyped-def]
    """alpha and beta, deployed; alice's container web running on alpha, files on its volume."""
    duo: Fleet = fleet_of(("alpha", "beta"))
    duo.declare([])
    for name in duo.hosts:
        duo.deploy(name)
    duo.control.set_op_item("alice", KEY)
    made = duo.control.cli("create", "web", "--owner", "alice", "--host", "alpha", *TIMEOUT)
    assert made.code == 0, made.err
    (duo.volume_path("alpha", "web-data") / "notes").write_text(MARKER)
    return duo


def names(host: Host, *args: str) -> list[str]:
    return host.podman(*args, "--format", "{{.Name}}").stdout.split()


def notes(fleet: Fleet, host: str) -> str | None:
    """The files' marker on the host's volume of web, or None (no volume, or not there)."""
    found = fleet.hosts[host].podman("volume", "inspect", "web-data", "--format", "{{.Mountpoint}}")
    if found.returncode != 0:
        return None
    try:
        return Path(found.stdout.strip(), "notes").read_text()
    except OSError:
        return None


def record(fleet: Fleet) -> dict[str, object]:
    (web,) = fleet.control.records()
    return web


def copied_only_when_stopped(calls: list[str], source: str) -> bool:
    """The copy's export ran only after the source was deployed with web stopped.

    `calls` are the killed run's completed calls and the rerun's, in order. A stop that was
    declared but not deployed leaves the container running: copying then misses what it
    writes until the record switches, and that is lost when the source's copy is purged.
    """
    stopped = False
    for call in calls:
        if f"colmena apply --on {source}" in call:
            stopped = True
        if (
            f"{source}.fleet.test devbox-ctl fleet-host export web" in call
            and "--sizes" not in call
        ):
            return stopped
    return True


def completed(calls: list[str], at: str | None) -> list[str]:
    """The calls a killed run saw through: all but the one killed before it ran."""
    if at is None or not at.startswith("before"):
        return calls
    return calls[:-1]


def move_killed(fleet: Fleet, killer: Killer, at: str | None, delay: float) -> None:
    """Move web to the other host, killed at a step (or after delay s); rerun; check."""
    source = str(record(fleet)["host"])
    (target,) = [name for name in fleet.hosts if name != source]
    args = ("move", "web", "--to", target)
    killer.arm(at)
    if at is None:
        killer.spawn_and_kill(fleet.control, delay, *args)
    else:
        killed = killer.run(fleet.control, *args)
        assert killed.returncode == -signal.SIGKILL, (at, killer.calls(), killed.stderr)
    before = completed(killer.calls(), at)
    # Nothing lost: the declared host's volume holds the files.
    declared = str(record(fleet)["host"])
    assert notes(fleet, declared) == MARKER, (at, delay, declared, "the files are not there")
    journal = fleet.control.state / "moves" / "web.json"
    killer.arm(None)
    again = killer.run(fleet.control, *args)
    assert again.returncode == 0, (at, delay, again.stderr)
    if journal.exists() or "Resuming" in again.stdout:
        assert f"Resuming the move of web from {source} to {target}." in again.stdout
    assert copied_only_when_stopped(before + killer.calls(), source), (at, before, killer.calls())
    assert (record(fleet)["host"], record(fleet).get("state", "running")) == (target, "running")
    assert notes(fleet, target) == MARKER, (at, delay)
    assert fleet.hosts[target].running() == ["web"], at
    assert "devbox-web-ts-authkey" in names(fleet.hosts[target], "secret", "ls"), at
    # Nothing orphaned: the source's volume, key and container are gone, the journal too.
    assert "web-data" not in names(fleet.hosts[source], "volume", "ls"), (at, delay)
    assert "devbox-web-ts-authkey" not in names(fleet.hosts[source], "secret", "ls"), at
    assert fleet.hosts[source].podman("ps", "--all", "--format", "{{.Names}}").stdout == "", at
    assert not journal.exists(), (at, delay, "the journal stayed")


def test_move_killed_at_each_step_loses_nothing_and_a_rerun_finishes(duo: Fleet) -> None:
    killer = Killer.install(duo.control, FLEET_STEPPED)
    for at in MOVE_KILLS:
        move_killed(duo, killer, at, 0)


@pytest.mark.slow
def test_move_killed_at_every_other_step_and_at_random_times(duo: Fleet) -> None:
    killer = Killer.install(duo.control, FLEET_STEPPED)
    for at in MOVE_KILLS_ALSO:
        move_killed(duo, killer, at, 0)
    rng = random.Random(21)
    for _ in range(4):
        move_killed(duo, killer, None, rng.uniform(0.5, 10.0))
