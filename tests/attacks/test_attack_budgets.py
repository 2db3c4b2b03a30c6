"""carol makes root's work on her files unbounded: FIFOs for git, huge unit files, links out.

- git alternates that are a FIFO (directly, or through an alternate's own alternates) must
  not hold the cleanup: the first is refused before git runs, the second is cut off by the
  container's time budget, and carol's container is then reported as unknown (a doubt that
  refuses its destroy) while bob's is still warned;
- the whole run has a budget too: once spent, the containers left are unknown;
- `status` reads carol's own Quadlet directory bounded, and never through a link.

tests/attacks/attack_volume_support.py says what is real here.
"""

from __future__ import annotations

import json
import os
import pwd
import resource
import subprocess
import time
from datetime import timedelta
from pathlib import Path

import pytest
from attack_volume_support import (
    CAROL,
    DAY0,
    attack_clock,
    declare,
    dev_uid,
    give,
    idle_witness,
    record,
    stop_declared,
    witness_warned,
    write_state,
)

from devbox.lifecycle import assessment
from devbox.runtime import cleanup

pytestmark = pytest.mark.slow  # a whole host each

__all__ = ["attack_clock"]  # a fixture, used by name

WARN_DESTROY = DAY0 + timedelta(days=11, hours=1)  # carol's stopped container: work checked
# Well under git's own timeouts (the old code's 120 s a command), well over a normal run.
BOUND = 60


def repository(root: Path, name: str) -> Path:
    """A repository with one commit on no remote, made as carol would inside her container."""
    project = root / name
    project.mkdir(parents=True)
    git = ["git", "-C", str(project), "-c", "user.name=c", "-c", "user.email=c@example.org"]
    subprocess.run([*git, "init", "-q"], check=True)
    (project / "a.txt").write_text("a\n")
    subprocess.run([*git, "add", "a.txt"], check=True)
    subprocess.run([*git, "commit", "-qm", "a"], check=True)
    return project


def stopped_evil(host, attack_clock) -> Path:
    """carol's stopped container, due its first destroy warning (so its work is checked)."""
    evil = declare(host, "evil", "carol", CAROL)
    write_state(evil, "activity.json", json.dumps(record("evil", DAY0, DAY0)).encode(), CAROL)
    stop_declared(host, "evil", DAY0)
    return evil


def timed_cleanup(host, *args: str):
    started = time.monotonic()
    result = host.cli("cleanup", *args)
    return result, time.monotonic() - started


def test_git_alternates_that_are_a_fifo_never_hold_the_cleanup(host, attack_clock) -> None:
    evil = stopped_evil(host, attack_clock)
    work = idle_witness(host, WARN_DESTROY)
    project = repository(evil, "project")
    os.mkfifo(project / ".git/objects/info/alternates")
    give(evil, dev_uid(CAROL))
    attack_clock.now = WARN_DESTROY

    result, took = timed_cleanup(host)

    assert took < BOUND, f"cleanup took {took:.0f} s"
    assert result.code == 0, result.out + result.err
    assert "cannot tell whether there is work on the volume: ~/project:" in result.out
    witness_warned(host, work)


def test_a_fifo_behind_an_alternate_is_cut_off_by_the_containers_budget(
    host, attack_clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(assessment, "CONTAINER_BUDGET_SECONDS", 5)
    evil = stopped_evil(host, attack_clock)
    work = idle_witness(host, WARN_DESTROY)
    project = repository(evil, "project")
    # An alternate object directory out of the walk's way, whose own alternates is a FIFO.
    hidden = evil / ".cache/objects"
    (hidden / "info").mkdir(parents=True)
    os.mkfifo(hidden / "info/alternates")
    (project / ".git/objects/info/alternates").write_text("../../../.cache/objects\n")
    give(evil, dev_uid(CAROL))
    attack_clock.now = WARN_DESTROY

    result, took = timed_cleanup(host)

    assert took < BOUND, f"cleanup took {took:.0f} s"
    assert result.code == 0, result.out + result.err
    assert "cannot tell whether there is work on the volume" in result.out
    assert "time budget of 5 s ran out" in result.out
    witness_warned(host, work)


def test_once_the_runs_budget_is_spent_the_rest_is_unknown(
    host, attack_clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(assessment, "CONTAINER_BUDGET_SECONDS", 30)
    monkeypatch.setattr(cleanup, "RUN_BUDGET_SECONDS", 3)
    evil = stopped_evil(host, attack_clock)
    idle_witness(host, WARN_DESTROY)
    # Owners are read in name order (bob's before carol's), each within their own budget;
    # carol's second container comes after her first has spent the whole run's.
    later = declare(host, "later", "carol", CAROL)
    write_state(
        later, "activity.json", json.dumps(record("later", DAY0, WARN_DESTROY)).encode(), CAROL
    )
    project = repository(evil, "project")
    hidden = evil / ".cache/objects"
    (hidden / "info").mkdir(parents=True)
    os.mkfifo(hidden / "info/alternates")
    (project / ".git/objects/info/alternates").write_text("../../../.cache/objects\n")
    give(evil, dev_uid(CAROL))
    attack_clock.now = WARN_DESTROY

    result, took = timed_cleanup(host, "--dry-run", "--json")

    assert took < BOUND, f"cleanup took {took:.0f} s"
    rows = {row["name"]: row for row in result.json()["containers"]}
    assert "the cleanup run's time budget of 3 s ran out" in " ".join(rows["evil"]["reasons"])
    # carol's next container: nothing was read, so it is unknown, not idle.
    assert rows["later"]["action"] == "none"
    assert "the cleanup run's time budget of 3 s ran out" in " ".join(rows["later"]["reasons"])
    # bob's, read before carol's, in its own time: idle, so warned.
    assert rows["work"]["action"] == "warn-stop"


@pytest.fixture
def carols_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """carol's home on the host (hers, 0700), with the Quadlet directory she may fill."""
    home = tmp_path / "home-carol"
    (home / ".config/containers").mkdir(parents=True)
    give(home, CAROL)
    home.chmod(0o700)
    real = pwd.getpwnam

    def getpwnam(name: str) -> pwd.struct_passwd:
        if name == "carol":
            return pwd.struct_passwd(("carol", "x", CAROL, CAROL, "", str(home), "/bin/sh"))
        return real(name)

    monkeypatch.setattr(pwd, "getpwnam", getpwnam)
    return home


def test_status_reads_a_huge_sparse_unit_file_bounded(host, attack_clock, carols_home) -> None:
    declare(host, "evil", "carol", CAROL)
    own = carols_home / ".config/containers/systemd"
    own.mkdir()
    huge = own / "big.container"
    with huge.open("wb") as file:
        file.truncate(256 << 20)  # sparse: no disk, all the memory a reader gives it
    give(carols_home, CAROL)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    result = host.cli("status", "evil", uid=CAROL)

    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak
    assert result.code in (0, 1), result.err
    assert grown < 64 << 10, f"status grew by {grown // 1024} MiB reading carol's unit file"


def test_status_never_follows_a_link_out_of_the_users_tree(
    host, attack_clock, carols_home, tmp_path: Path
) -> None:
    declare(host, "evil", "carol", CAROL)
    private = tmp_path / "root-only"
    private.mkdir(mode=0o700)
    (private / "devbox-evil.container").write_text("[Container]\nImage=x\n")
    (private / "secret.container").write_text("[Container]\nServiceName=container-evil\n")
    (carols_home / ".config/containers/systemd").symlink_to(private)

    result = host.cli("status", "evil", uid=CAROL)

    assert "root-only" not in result.out, "status followed carol's link into root's tree"
    assert "secret.container" not in result.out
