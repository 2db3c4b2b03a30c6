"""carol swaps her volume's own directory for a link: to bob's home, to a root-owned directory.

The volume's directory (`_data`) is hers to replace, and she can race root: between the check
of her volume and its use, or between reading her activity and the unsaved-work check. Root
must never write into the link's target, never create directories there, never walk it (a
repository name from bob's 0700 home reaching carol's output), and bob's container must still
be warned in the same run. tests/attacks/attack_volume_support.py says what is real here.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from attack_volume_support import (
    BOB,
    CAROL,
    DAY0,
    attack_clock,
    declare,
    dev_uid,
    give,
    idle_witness,
    record,
    stop_declared,
    volume_path,
    witness_warned,
    write_state,
)

from devbox.container import activity
from devbox.lifecycle import notices

pytestmark = pytest.mark.slow  # a whole host each

__all__ = ["attack_clock"]  # a fixture, used by name

WARN_STOP = DAY0 + timedelta(days=6, minutes=1)  # an idle running container is warned
WARN_DESTROY = DAY0 + timedelta(days=11, hours=1)  # a stopped one is warned, work checked


def bobs_home(tmp_path: Path) -> Path:
    """bob's home: his alone (0700), with a repository holding work saved nowhere else."""
    home = tmp_path / "home-bob"
    project = home / "secret-project"
    project.mkdir(parents=True)
    git = ["git", "-C", str(project), "-c", "user.name=bob", "-c", "user.email=bob@example.org"]
    subprocess.run([*git, "init", "-q"], check=True)
    (project / "plan.txt").write_text("bob's plan\n")
    subprocess.run([*git, "add", "plan.txt"], check=True)
    subprocess.run([*git, "commit", "-qm", "plan"], check=True)
    give(home, BOB)
    home.chmod(0o700)
    return home


def root_owned(tmp_path: Path) -> Path:
    """A directory of root's, which nobody else may write to."""
    directory = tmp_path / "root-only"
    directory.mkdir(mode=0o755)
    return directory


TARGETS: dict[str, Callable[[Path], Path]] = {
    "bob's home": bobs_home,
    "a root-owned directory": root_owned,
}


def swap_for_link(volume: Path, target: Path) -> None:
    """What carol does: her volume's directory becomes a link to target."""
    volume.rename(volume.with_name("_data-moved"))
    volume.symlink_to(target)


def after(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str, then: Callable[[], None]) -> None:
    """Run `then` right after owner.name returns the first time: carol's timing."""
    original = getattr(owner, name)
    done: list[bool] = []

    def hooked(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        if not done:
            done.append(True)
            then()
        return result

    monkeypatch.setattr(owner, name, hooked)


@pytest.mark.parametrize("target_kind", sorted(TARGETS))
def test_a_volume_swapped_for_a_link_after_the_check_gets_no_notice_through_it(
    host, attack_clock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target_kind: str
) -> None:
    evil = declare(host, "evil", "carol", CAROL)
    work = idle_witness(host, WARN_STOP)
    write_state(evil, "activity.json", json.dumps(record("evil", DAY0, WARN_STOP)).encode(), CAROL)
    target = TARGETS[target_kind](tmp_path)
    before = sorted(target.iterdir())
    attack_clock.now = WARN_STOP
    # Once cleanup has read her volume and composed her warning, carol swaps it.
    after(monkeypatch, notices, "compose", lambda: swap_for_link(evil, target))

    result = host.cli("cleanup")

    assert result.code != 70, result.err
    assert sorted(target.iterdir()) == before, "root wrote into the link's target"
    assert not (target / ".local").exists()
    witness_warned(host, work)


def test_the_work_check_never_walks_where_a_link_swapped_in_after_the_read_leads(
    host, attack_clock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    evil = declare(host, "evil", "carol", CAROL)
    idle_witness(host, WARN_DESTROY)
    write_state(evil, "activity.json", json.dumps(record("evil", DAY0, DAY0)).encode(), CAROL)
    stop_declared(host, "evil", DAY0)
    home = bobs_home(tmp_path)
    attack_clock.now = WARN_DESTROY
    # Right after her activity is read, before the unsaved-work check, carol swaps her volume.
    after(monkeypatch, activity, "observe", lambda: swap_for_link(evil, home))

    result = host.cli("cleanup", "--dry-run", uid=CAROL)

    assert result.code != 70, result.err
    assert "evil (carol, stopped): warn: destroyed at" in result.out
    assert "secret-project" not in result.out, "bob's repository reached carol's output"


def test_a_volume_that_is_a_link_from_the_start_is_unknown_and_reveals_nothing(
    host, attack_clock, tmp_path: Path
) -> None:
    evil = declare(host, "evil", "carol", CAROL)
    work = idle_witness(host, WARN_STOP)
    bobs = volume_path(host, "work")
    # carol points her volume at bob's: his activity record names his container.
    swap_for_link(evil, bobs)
    attack_clock.now = WARN_STOP

    shown = host.cli("status", "evil", "--why", uid=CAROL)
    assert "work" not in shown.out.replace("evil", ""), "bob's record reached carol's output"
    result = host.cli("cleanup")

    assert result.code != 70, result.err
    assert "evil (carol, running): nothing to do" in result.out
    witness_warned(host, work)
    notice = (work / ".local/state/devbox/notice").read_text()
    assert "evil" not in notice, "carol's warning reached bob's volume"


def test_a_file_system_mounted_on_the_volume_is_not_read(host, attack_clock) -> None:
    """A user may mount a FUSE file system on a directory of theirs; it would answer root's
    reads with whatever it likes, or never. A tmpfs with carol's ownership stands in for it."""
    evil = declare(host, "evil", "carol", CAROL)
    work = idle_witness(host, WARN_STOP)
    mapped = f"uid={dev_uid(CAROL)},gid={dev_uid(CAROL)},mode=0755"
    subprocess.run(["mount", "-t", "tmpfs", "-o", mapped, "devbox-test", str(evil)], check=True)
    try:
        (evil / ".local/state/devbox").mkdir(parents=True)
        write_state(
            evil, "activity.json", json.dumps(record("evil", DAY0, WARN_STOP)).encode(), CAROL
        )
        give(evil, dev_uid(CAROL))
        attack_clock.now = WARN_STOP

        result = host.cli("cleanup")

        assert result.code != 70, result.err
        assert "evil (carol, running): nothing to do" in result.out
        assert not (evil / ".local/state/devbox/notice").exists()
        witness_warned(host, work)
    finally:
        subprocess.run(["umount", str(evil)], check=True)


def test_list_reads_a_linked_volume_no_more_than_status_does(
    host, attack_clock, tmp_path: Path
) -> None:
    """list takes each volume's directory from the owner's `podman volume ls` (Podman.holdings)
    and opens it through volume.py as status does: carol's link to bob's volume is unknown
    (counted as activity now, no idle stop, shown as "unknown"), never bob's record."""
    evil = declare(host, "evil", "carol", CAROL)
    idle_witness(host, WARN_STOP)
    swap_for_link(evil, volume_path(host, "work"))
    attack_clock.now = WARN_STOP

    listed = host.cli("list", "--all", "--json", uid=1001)

    assert listed.code == 0, listed.err
    rows = {row["name"]: row for row in listed.json()}
    assert rows["work"]["lastActivity"] == "2026-11-02T09:00:00Z"  # bob's own record
    assert rows["evil"]["lastActivity"] == "unknown"  # neither bob's time nor a made-up now
    assert rows["evil"]["idleStopAt"] is None
