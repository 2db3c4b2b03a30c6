"""One user's stalling volumes must not hide a fleet host, or stop its cleanup, for the others.

alice's volumes on beta each hold a git repository whose alternates lead to a FIFO: git,
checking for unsaved work before a destroy, waits on it until a time budget kills it. alice
is read first on beta (owners are read in name order), so every second she stalls comes
before bob's container is read. The promises:
- bob's `list` on the control host shows his container on beta with its real state and its
  activity read, in bounded time: alice's stalls use up only her own budget on beta, beta
  answers before the control host gives up, and alice's containers are unknown, never absent;
- the fleet's cleanup still stops bob's idle container on beta: beta's answer arrives
  within the control host's wait, and what it did assess is used.

Real here: git, podman and its volumes on every host, each host's own devbox-ctl run in its
own process (tests/fleet.py says what is stood in). The budgets are a host's own constants;
to keep the tests short, beta's devbox-ctl launcher sets them smaller in its own process
before it starts (the launcher is the test's, as root's PATH on a host is root's), and the
control host's waits are set in this process, all by the same factor, so the relation
between a host's budgets and the control host's wait is the real one.

On 633237b's code both fail: its list had one budget for all users, which alice's stalls
spent, so bob's container was unknown (with the real numbers the control host gave up on
beta after 60 s, while beta could take 300 s); its cleanup answer came after the control
host's wait (600 s, scaled as the others) and was thrown away whole.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from datetime import UTC, datetime

import pytest
from lifecycle.lifecycle_support import as_rootless

from devbox.host import fleet as link
from fleet import Fleet
from host import KEY

pytestmark = pytest.mark.slow  # a fleet of hosts each

LONG_AGO = "2020-01-01T00:00:00Z"
ALICE, BOB = 1001, 1002
STALLING = 5  # alice's containers on beta, each stalling its whole budget


def _budgets(fleet: Fleet, host: str, **values: float) -> None:
    """Start the host's devbox-ctl with these module constants ("listing.X": 3, …) set."""
    launcher = fleet.hosts[host].stand_ins.bin / "devbox-ctl"
    start = "from devbox.cli import main\n"
    text = launcher.read_text()
    assert start in text, "the member's launcher no longer starts devbox.cli's main"
    lines = [
        "from devbox.lifecycle import assessment",
        "from devbox.runtime import cleanup, listing",
    ]
    lines += [f"{name} = {value!r}" for name, value in values.items()]
    launcher.write_text(text.replace(start, "\n".join(lines) + "\n" + start, 1))


def _record(name: str, owner: str, state: str) -> dict[str, str]:
    record = {"name": name, "owner": owner, "host": "beta", "state": state, "created": LONG_AGO}
    return record | ({"stoppedAt": LONG_AGO} if state == "stopped" else {})


def _stalling_volume(fleet: Fleet, name: str) -> None:
    """alice's volume, idle since long ago, with a repository whose alternates are a FIFO.

    The FIFO is the alternates of an alternate object directory out of the walk's way, so
    git itself opens it and waits, until the time budget kills it.
    """
    root = fleet.idle_volume("beta", name, ALICE, since=LONG_AGO)
    project = root / "project"
    project.mkdir()
    git = ["git", "-C", str(project), "-c", "user.name=a", "-c", "user.email=a@example.org"]
    subprocess.run([*git, "init", "-q"], check=True)
    (project / "a.txt").write_text("a\n")
    subprocess.run([*git, "add", "a.txt"], check=True)
    subprocess.run([*git, "commit", "-qm", "a"], check=True)
    hidden = root / ".cache/objects"
    (hidden / "info").mkdir(parents=True)
    os.mkfifo(hidden / "info/alternates")
    (project / ".git/objects/info/alternates").write_text("../../../.cache/objects\n")
    as_rootless(root, ALICE)


def _stalled_beta(fleet: Fleet, bobs_state: str) -> None:
    """alice's stalling containers and bob's idle one on beta; every host deployed.

    No warnings are due first: a stopped container is due its destroy, so its volume is
    checked for unsaved work (git), and an idle running one its stop.
    """
    users = fleet.control.repo / "devbox" / "users.nix"
    policy = "stopWarningHours = [ ]; destroyWarningHours = [ ];"
    users.write_text(users.read_text().replace("containers = {", f"containers = {{ {policy}"))
    names = [f"evil{n}" for n in range(STALLING)]
    fleet.declare(
        [_record("work", "bob", bobs_state), *(_record(n, "alice", "stopped") for n in names)]
    )
    key = fleet.base / "work-key"
    key.write_text(KEY)
    made = fleet.hosts["beta"].podman("secret", "create", "devbox-work-ts-authkey", str(key))
    assert made.returncode == 0, made.stderr
    for name in names:
        _stalling_volume(fleet, name)
    fleet.idle_volume("beta", "work", BOB, since=LONG_AGO)
    for host in fleet.hosts:
        fleet.deploy(host)
    # bob's monitor writes on time, and says no one came since long ago: idle. A started
    # container takes its volume (rootful podman here): bob's again, as rootless podman has it.
    work = fleet.volume_path("beta", "work-data")
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    monitor = {"startedAt": LONG_AGO, "updatedAt": now, "intervalSeconds": 60}
    signals = {"ssh": {"lastSeen": LONG_AGO, "sessions": 0}}
    record = {"version": 1, "container": "work", "monitor": monitor, "signals": signals}
    (work / ".local/state/devbox/activity.json").write_text(json.dumps(record))
    as_rootless(work, BOB)


def test_one_users_stalling_volumes_leave_anothers_list_of_that_host_whole(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One tenth of the real numbers: a container 3 s, an owner 6 s, a list 12 s on beta,
    # and the control host waits a tenth of its 200 s. (Before, beta read each container for
    # up to 120 s and a list for 300 s, while the control host waited 60 s.)
    _budgets(
        fleet,
        "beta",
        **{
            "listing.LIST_CONTAINER_BUDGET_SECONDS": 3,
            "listing.LIST_USER_BUDGET_SECONDS": 6,
            "listing.LIST_BUDGET_SECONDS": 12,
        },
    )
    monkeypatch.setattr(link, "READ_TIMEOUT", 20.0)
    _stalled_beta(fleet, "stopped")

    started = time.monotonic()
    listed = fleet.control.cli("list", "--json", uid=BOB)
    took = time.monotonic() - started

    assert listed.code == 0, listed.out + listed.err
    answer = json.loads(listed.out)
    assert answer["unreachable"] == {}, f"beta was given up on after {took:.0f} s"
    (work,) = answer["containers"]
    assert (work["name"], work["host"], work["actual"]) == ("work", "beta", "missing")
    # bob's activity was read, not counted as now for want of time.
    assert work["lastActivity"] == LONG_AGO, work
    assert work["unknown"] is None, work
    assert took < 20, f"bob's list took {took:.0f} s"

    every = json.loads(fleet.control.cli("list", "--all", "--json").out)["containers"]
    evil = [row for row in every if row["owner"] == "alice"]
    assert len(evil) == STALLING, "alice's containers must be shown, never absent"
    for row in evil:
        assert (row["host"], row["actual"]) == ("beta", "missing"), row
        assert "ran out" in str(row["unknown"]), json.dumps(row)
        assert any("its activity is unknown" in line for line in row["disagreements"]), row


def test_one_users_stalling_volumes_never_stop_the_fleets_cleanup_of_another(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One thirtieth of the real numbers: a container 4 s, an owner 10 s, a run 60 s on beta;
    # the control host waits 80 s for a host's cleanup. (Before, it waited ACT_TIMEOUT, 600 s,
    # a thirtieth of which is 20 s: alice's 5 containers x 4 s passed it.)
    _budgets(
        fleet,
        "beta",
        **{
            "assessment.CONTAINER_BUDGET_SECONDS": 4,
            "cleanup.USER_BUDGET_SECONDS": 10,
            "cleanup.RUN_BUDGET_SECONDS": 60,
        },
    )
    monkeypatch.setattr(link, "ACT_TIMEOUT", 20.0)
    monkeypatch.setattr(link, "CLEANUP_TIMEOUT", 80.0, raising=False)
    _stalled_beta(fleet, "running")

    acted = fleet.control.cli("cleanup", "--json")

    report = json.loads(acted.out)
    assert report["unreachable"] == {}, report
    rows = {row["name"]: row for row in report["containers"]}
    assert rows["work"]["action"] == "stop", json.dumps(rows["work"])
    assert rows["work"]["done"] == "stopped", report
    work = next(r for r in fleet.control.records() if r["name"] == "work")
    assert work["state"] == "stopped"
    for n in range(STALLING):
        assert rows[f"evil{n}"]["action"] not in ("stop", "destroy"), rows[f"evil{n}"]
    assert any("ran out" in " ".join(rows[f"evil{n}"]["reasons"]) for n in range(STALLING))
