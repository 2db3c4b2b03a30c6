"""A kill at any moment loses nothing (issue 21): the single host's cleanup run is SIGKILLed
at each of its steps in turn (tests/killer.py), then run again. On a host of tests/host.py.

The run here records the stop time of a container declared stopped without one, and
destroys one stopped long ago: the stop time's record (git), the destroy's snapshot (podman
`volume export` through the owner's systemd-run; its description is written after it), the
key's and the volume's removal (systemd-run), the record's removal (git), then the one
rebuild of the run (nixos-rebuild).
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import tarfile
from pathlib import Path

import pytest
from lifecycle.lifecycle_support import as_rootless

from host import Host
from killer import Killer

LONG_AGO = "2020-01-01T00:00:00Z"
MARKER = "files of a long-stopped container\n"


def names(host: Host, *args: str) -> list[str]:
    return host.podman(*args, "--format", "{{.Name}}").stdout.split()


def snapshots_holding(host: Host, marker: str) -> int:
    """Finished snapshots (their description written) of old that hold its files."""
    found = 0
    for description in (host.state / "snapshots").glob("*.json"):
        data = description.with_name(description.name.removesuffix(".json") + ".tar")
        if not data.is_file():
            continue
        with tarfile.open(data) as archive:
            member = next((m for m in archive if m.name.endswith("notes")), None)
            if member is not None and marker.encode() in archive.extractfile(member).read():  # type: ignore[union-attr]
                found += 1
    return found


def declare(host: Host, trial: int) -> tuple[str, str]:
    """old-NN stopped long ago (its volume idle since), new-NN stopped with no stop time."""
    old, new = f"old-{trial:02d}", f"new-{trial:02d}"
    for name in (old, new):
        assert host.cli("create", name, "--owner", "alice", "--no-apply").code == 0
        assert host.cli("stop", name, "--no-apply").code == 0
    path = host.repo / "devbox" / "containers.json"
    document = json.loads(path.read_text())
    for record in document["containers"]:
        if record["name"] in (old, new):
            record["created"] = LONG_AGO
            record.pop("stoppedAt", None)
        if record["name"] == old:
            record["stoppedAt"] = LONG_AGO
    path.write_text(json.dumps(document, indent=2) + "\n")
    git = ["git", "-C", str(host.repo), "-c", "user.name=admin", "-c", "user.email=admin@host"]
    subprocess.run([*git, "commit", "-qam", "test: long ago"], check=True)
    assert host.podman("volume", "create", f"{old}-data").returncode == 0
    found = host.podman("volume", "inspect", f"{old}-data", "--format", "{{.Mountpoint}}")
    home = Path(found.stdout.strip())
    (home / "notes").write_text(MARKER + old)
    state = home / ".local" / "state" / "devbox"
    state.mkdir(parents=True)
    monitor = {"startedAt": LONG_AGO, "updatedAt": LONG_AGO, "intervalSeconds": 60}
    activity = {"version": 1, "container": old, "monitor": monitor, "signals": {}}
    (state / "activity.json").write_text(json.dumps(activity))
    as_rootless(home, 1001)
    return old, new


@pytest.fixture
def quiet(host: Host) -> Host:
    """No warning lead times: a container stopped long ago is destroyed by the next run."""
    users = host.repo / "devbox" / "users.nix"
    users.write_text(
        users.read_text().replace(
            "containers = {", "containers = {\n    destroyWarningHours = [ ];", 1
        )
    )
    git = ["git", "-C", str(host.repo), "-c", "user.name=admin", "-c", "user.email=admin@host"]
    subprocess.run([*git, "commit", "-qam", "test: no warnings"], check=True)
    return host


def cleanup_killed(host: Host, killer: Killer, trial: int, at: str | None, delay: float) -> None:
    old, new = declare(host, trial)
    marker = MARKER + old
    killer.arm(at)
    if at is None:
        killer.spawn_and_kill(host, delay, "cleanup")
    else:
        killed = killer.run(host, "cleanup")
        assert killed.returncode == -signal.SIGKILL, (at, killer.calls(), killed.stderr)
    declared = [r["name"] for r in host.records()]
    saved = snapshots_holding(host, marker)
    assert f"{old}-data" in names(host, "volume", "ls") or saved, (
        at,
        "the volume is gone, unsaved",
    )
    if old not in declared:
        assert f"{old}-data" not in names(host, "volume", "ls"), (at, "an orphaned volume")
    killer.arm(None)
    again = killer.run(host, "cleanup")
    assert again.returncode == 0, (at, delay, again.stdout, again.stderr)
    records = {r["name"]: r for r in host.records()}
    assert old not in records, (at, delay)
    assert records[new].get("stoppedAt"), (at, delay)
    assert f"{old}-data" not in names(host, "volume", "ls"), (at, delay, "an orphaned volume")
    assert f"devbox-{old}-ts-authkey" not in names(host, "secret", "ls"), (at, "an orphaned key")
    assert snapshots_holding(host, marker) >= 1, (at, delay, "no snapshot")
    # The run's changes are deployed: the rebuild ran after the last of them.
    deployed = host.deployed / "manifest.json"
    assert deployed.is_file(), (at, delay, "the run's changes were never deployed")
    assert old not in json.loads(deployed.read_text())["containers"], (at, delay, "not deployed")
    assert host.cli("destroy", new, "--yes", "--no-snapshot", "--no-apply").code == 0


# The run's programs (tests/killer.py arms a kill at the Nth call holding a text): git
# commits new's stop time (the 1st commit); old's destroy runs podman through systemd-run
# (the snapshot's export, its description written after it; the key's removal; the
# volume's removal), then git commits the removal of its record (the 2nd commit); then the
# run's one nixos-rebuild. The fast suite kills where what is left differs most (exported,
# perhaps undescribed; the volume gone, the record kept; the record gone, not deployed);
# the slow one at every other boundary too.
CLEANUP_KILLS = ["after 1 volume export", "after 1 volume rm", "before 1 nixos-rebuild"]
CLEANUP_KILLS_ALSO = ["before 1 commit", "after 1 commit", "before 1 volume export"]
CLEANUP_KILLS_ALSO += ["after 1 secret rm", "before 1 volume rm", "before 2 commit"]
CLEANUP_KILLS_ALSO += ["after 2 commit"]


@pytest.mark.parametrize("at", CLEANUP_KILLS)
def test_cleanup_killed_at_a_step_loses_nothing_and_a_rerun_finishes(quiet: Host, at: str) -> None:
    cleanup_killed(quiet, Killer.install(quiet), 0, at, 0)


@pytest.mark.slow
@pytest.mark.parametrize("at", CLEANUP_KILLS_ALSO)
def test_cleanup_killed_at_every_other_step(quiet: Host, at: str) -> None:
    cleanup_killed(quiet, Killer.install(quiet), 0, at, 0)


@pytest.mark.slow
def test_cleanup_killed_at_random_times(quiet: Host) -> None:
    killer = Killer.install(quiet)
    rng = random.Random(21)
    for trial in range(4):
        cleanup_killed(quiet, killer, trial, None, rng.uniform(0.3, 4.0))
