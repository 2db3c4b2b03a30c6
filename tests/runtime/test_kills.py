"""A kill at any moment loses nothing (issue 21): `destroy` and `restore` are SIGKILLed at each
of their steps in turn, then run again. On a host of tests/host.py (real podman, Quadlet, git
and Nix; the stand-ins for the owner's manager, nixos-rebuild and 1Password).

The steps of a verb are the programs it runs (tests/killer.py): a kill before the Nth
program, and one right after it (before the verb has read its outcome), reaches every step
boundary.
"""

from __future__ import annotations

import random
import signal
import tarfile
from pathlib import Path

import pytest

from host import Host
from killer import Killer


def names(host: Host, *args: str) -> list[str]:
    return host.podman(*args, "--format", "{{.Name}}").stdout.split()


def complete_snapshots(host: Host) -> list[Path]:
    """The data files of the snapshots whose description was written (finished ones)."""
    return [
        path.with_name(path.name.removesuffix(".json") + ".tar")
        for path in sorted((host.state / "snapshots").glob("*.json"))
        if path.with_name(path.name.removesuffix(".json") + ".tar").is_file()
    ]


def holds(snapshot: Path, marker: str) -> bool:
    with tarfile.open(snapshot) as archive:
        member = next((m for m in archive if m.name.endswith("notes")), None)
        return member is not None and marker.encode() in archive.extractfile(member).read()  # type: ignore[union-attr]


def declared(host: Host) -> list[str]:
    return [str(r["name"]) for r in host.records()]


def with_volume(host: Host, name: str, marker: str) -> None:
    """Declare NAME (alice's, not applied: no unit runs it) with a volume that holds marker."""
    made = host.cli("create", name, "--owner", "alice", "--no-apply")
    assert made.code == 0, made.err
    host.podman("volume", "create", f"{name}-data", check=True)
    mountpoint = host.podman("volume", "inspect", f"{name}-data", "--format", "{{.Mountpoint}}")
    Path(mountpoint.stdout.strip(), "notes").write_text(marker)


def assert_nothing_lost(host: Host, name: str, marker: str) -> None:
    """The volume is there, or a finished snapshot holds its files; nothing undeclared stays."""
    volume, secret = f"{name}-data", f"devbox-{name}-ts-authkey"
    saved = any(holds(snapshot, marker) for snapshot in complete_snapshots(host))
    assert volume in names(host, "volume", "ls") or saved, "the volume is gone, unsaved"
    if name not in declared(host):
        assert volume not in names(host, "volume", "ls"), "an orphaned volume"
        assert secret not in names(host, "secret", "ls"), "an orphaned secret"


def forget_snapshots(host: Host) -> None:
    """Remove the snapshots a trial has checked (each owner's store holds only a few)."""
    for path in (host.state / "snapshots").iterdir():
        if path.is_file():
            path.unlink()


# destroy's programs, in order (a stopped container with a volume, --no-apply): 1 volume
# exists, 2 stop, 3 rm, 4 volume exists, 5 volume export (the snapshot's description is
# written after it), 6 secret ls, 7 secret rm, 8 volume exists, 9 volume rm, 10-14 git
# (the record is written before 11, committed by 13). The fast suite kills where what is
# left differs most (exported, perhaps undescribed; key gone; volume gone; record gone and
# not committed), the slow one at every other boundary too.
DESTROY_KILLS = ["after 5", "after 7", "after 9", "before 13"]
DESTROY_KILLS_ALSO = ["before 1", "before 2", "before 3", "before 4", "before 5", "before 6"]
DESTROY_KILLS_ALSO += ["before 7", "before 8", "before 9", "before 11", "after 13"]


def destroy_killed(host: Host, killer: Killer, trial: int, at: str | None, delay: float) -> None:
    """Kill a destroy (at a step, or after delay seconds), check, rerun, check again."""
    name, marker = f"kill-{trial:02d}", f"files of trial {trial}"
    with_volume(host, name, marker)
    killer.arm(at)
    if at is None:
        killer.spawn_and_kill(host, delay, "destroy", name, "--yes", "--no-apply")
    else:
        killed = killer.run(host, "destroy", name, "--yes", "--no-apply")
        assert killed.returncode == -signal.SIGKILL, (at, killed.stderr)
    assert_nothing_lost(host, name, marker)
    if name in declared(host):
        again = host.cli("destroy", name, "--yes", "--no-apply")
        assert again.code == 0, (at, delay, again.err)
    assert name not in declared(host), (at, delay)
    assert_nothing_lost(host, name, marker)
    assert any(holds(s, marker) for s in complete_snapshots(host)), (at, delay, "no snapshot")
    forget_snapshots(host)


def test_destroy_killed_at_each_step_loses_nothing_and_a_rerun_finishes(host: Host) -> None:
    killer = Killer.install(host)
    for trial, at in enumerate(DESTROY_KILLS):
        destroy_killed(host, killer, trial, at, 0)


@pytest.mark.slow
def test_destroy_killed_at_every_other_step_and_at_random_times(host: Host) -> None:
    killer = Killer.install(host)
    for trial, at in enumerate(DESTROY_KILLS_ALSO):
        destroy_killed(host, killer, trial, at, 0)
    rng = random.Random(21)
    for trial in range(len(DESTROY_KILLS_ALSO), len(DESTROY_KILLS_ALSO) + 4):
        destroy_killed(host, killer, trial, None, rng.uniform(0.3, 2.5))


# restore's programs, in order (--as a new name, --no-apply): 1 volume exists, 2-6 git (the
# journal is written before 2, the record, stopped, before 3 and committed by 5), 7 volume
# exists, 8 volume create, 9 volume import, 10 secret ls, 11 secret create, 12-16 git (the
# record declared running before 13, committed by 15; the journal goes after 16).
RESTORE_KILLS = ["before 7", "after 9", "after 11", "after 15"]
RESTORE_KILLS_ALSO = ["before 1", "before 2", "before 3", "before 8", "before 9", "before 10"]
RESTORE_KILLS_ALSO += ["before 12", "before 13"]
SOURCE = "the source's files"


def with_snapshot(host: Host) -> Path:
    """alice's container src, destroyed: its one snapshot, which the trials restore."""
    with_volume(host, "src", SOURCE)
    assert host.cli("destroy", "src", "--yes", "--no-apply").code == 0
    (snapshot,) = complete_snapshots(host)
    return snapshot


def volume_file(host: Host, volume: str, name: str) -> str | None:
    found = host.podman("volume", "inspect", volume, "--format", "{{.Mountpoint}}")
    path = Path(found.stdout.strip(), name)
    return path.read_text() if found.returncode == 0 and path.is_file() else None


def restore_killed(host: Host, killer: Killer, trial: int, at: str | None, delay: float) -> None:
    """Kill a restore (at a step, or after delay seconds), check, rerun, check again."""
    name = f"r-{trial:02d}"
    args = ("restore", "src", "--as", name, "--no-apply")
    snapshot = complete_snapshots(host)
    killer.arm(at)
    finished = False
    if at is None:
        finished = killer.spawn_and_kill(host, delay, *args) == 0
    else:
        killed = killer.run(host, *args)
        assert killed.returncode == -signal.SIGKILL, (at, killed.stderr)
    assert complete_snapshots(host) == snapshot, "the snapshot went"
    assert_nothing_lost(host, name, SOURCE)
    # A kill that came after the journal's removal, the restore's last step, found it done.
    journal = host.state / "restores" / f"{name}.json"
    last = [(r["name"], r.get("state")) for r in host.records()[-1:]]
    finished |= not journal.exists() and last == [(name, "running")]
    again = host.cli(*args)
    if finished:
        # The restore ended before the kill came: done, so a rerun says the name is taken.
        assert again.code == 2, again.err
        assert f"a container named {name} exists" in again.err
        assert host.records()[-1]["name"] == name
        return
    assert again.code == 0, (at, delay, again.err)
    if name in declared(host) and at not in ("before 1", "before 2"):
        assert "continuing" in again.out or at is None, (at, again.out)
    assert host.records()[-1]["name"] == name
    assert host.records()[-1]["state"] == "running"
    assert volume_file(host, f"{name}-data", "notes") == SOURCE, at
    assert f"devbox-{name}-ts-authkey" in names(host, "secret", "ls")
    assert not (host.state / "restores" / f"{name}.json").exists(), "the journal stayed"
    gone = host.cli("destroy", name, "--yes", "--no-snapshot", "--no-apply")
    assert gone.code == 0, gone.err


def test_restore_killed_at_each_step_loses_nothing_and_a_rerun_finishes(host: Host) -> None:
    killer = Killer.install(host)
    with_snapshot(host)
    for trial, at in enumerate(RESTORE_KILLS):
        restore_killed(host, killer, trial, at, 0)


@pytest.mark.slow
def test_restore_killed_at_every_other_step_and_at_random_times(host: Host) -> None:
    killer = Killer.install(host)
    with_snapshot(host)
    for trial, at in enumerate(RESTORE_KILLS_ALSO):
        restore_killed(host, killer, trial, at, 0)
    rng = random.Random(21)
    for trial in range(len(RESTORE_KILLS_ALSO), len(RESTORE_KILLS_ALSO) + 4):
        restore_killed(host, killer, trial, None, rng.uniform(0.3, 3.0))
