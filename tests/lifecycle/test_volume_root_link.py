"""A volume's own directory may be a link: root must not follow it (found by the host test).

In rootless podman a volume's directory (`…/storage/volumes/<name>/_data`) lies in the owner's
home, so the owner can replace it, or any directory above it, with a symbolic link to a place
only root may read or write. Root reads the activity record and the repositories there and
writes the login notice there (status, cleanup): each must refuse the link, not follow it.
"""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devbox import activity, work, write

BAIT = "2001-02-03T04:05:06Z"


@pytest.fixture
def linked_volume(tmp_path: Path) -> tuple[Path, Path]:
    """A volume directory that is a link to a root-only directory with a record in it."""
    target = tmp_path / "root-only"
    state = target / ".local" / "state" / "devbox"
    state.mkdir(parents=True)
    record = {
        "version": 1,
        "container": "web",
        "monitor": {"startedAt": BAIT, "updatedAt": BAIT, "intervalSeconds": 60},
        "signals": {"ssh": {"lastSeen": BAIT, "sessions": 1}},
    }
    (state / "activity.json").write_text(json.dumps(record))
    repo = target / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "unsaved.txt").write_text("work that only root may see\n")
    volume = tmp_path / "volumes" / "web-data"
    volume.mkdir(parents=True)
    (volume / "_data").symlink_to(target)
    return volume / "_data", target


@pytest.fixture
def linked_parent(tmp_path: Path) -> tuple[Path, Path]:
    """A directory above the volume's directory is the link."""
    target = tmp_path / "elsewhere"
    (target / "_data" / ".local" / "state" / "devbox").mkdir(parents=True)
    (tmp_path / "volumes").mkdir()
    (tmp_path / "volumes" / "web-data").symlink_to(target)
    return tmp_path / "volumes" / "web-data" / "_data", target / "_data"


@pytest.mark.parametrize("layout", ["linked_volume", "linked_parent"])
def test_the_notice_is_not_written_through_a_link(
    layout: str, request: pytest.FixtureRequest
) -> None:
    root, target = request.getfixturevalue(layout)
    # ELOOP or ENOTDIR, whichever the kernel says first.
    with pytest.raises(OSError):
        write.write_inside(root, ".local/state/devbox/notice", b"warning")
    assert not (target / ".local" / "state" / "devbox" / "notice").exists()


def test_the_activity_record_is_not_read_through_a_link(linked_volume: tuple[Path, Path]) -> None:
    root, _ = linked_volume
    seen = activity.observe(
        root,
        container="web",
        running=True,
        now=datetime(2026, 11, 28, tzinfo=UTC),
        max_lease=timedelta(days=14),
    )
    assert BAIT not in json.dumps(seen.signals, default=str)
    assert seen.last_activity is None


def test_repositories_are_not_searched_through_a_link(linked_volume: tuple[Path, Path]) -> None:
    root, _ = linked_volume
    found = work.inspect(root)
    assert not found.found
    assert found.unknown, "a linked volume directory must be a doubt, not a clean volume"
