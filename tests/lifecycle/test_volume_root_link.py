"""A volume's own directory may be a link: root must not follow it (found by the host test).

In rootless podman a volume's directory (`…/storage/volumes/<name>/_data`) lies in the owner's
home, so the owner can replace it, or any directory above it, with a symbolic link to a place
only root may read or write. Root reads the activity record and the repositories there and
writes the login notice there (status, cleanup): each goes through volume.open_tree, which
must refuse the link, not follow it.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from devbox import volume
from support import require_root

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
def test_a_volume_reached_through_a_link_is_not_opened(
    layout: str, request: pytest.FixtureRequest
) -> None:
    root, target = request.getfixturevalue(layout)
    before = sorted(str(p.relative_to(target)) for p in target.rglob("*"))
    with pytest.raises(volume.Unreadable):
        volume.open_tree(
            root,
            uid=1001,
            owners=frozenset({0, 1001}),
            gid=1001,
            what="the volume web-data",
            budget=volume.Budget.of(10, "the test's 10 s"),
        )
    assert sorted(str(p.relative_to(target)) for p in target.rglob("*")) == before


def test_the_same_volume_without_the_link_is_opened(tmp_path: Path) -> None:
    """The refusal above is the link's doing: the same layout as a directory opens."""
    # Every directory on the way must be root's or the owner's, as on a host; in a Nix
    # build, / belongs to an unmapped uid.
    require_root("the directories above the volume must be root's")
    root = tmp_path / "volumes" / "web-data" / "_data"
    (root / ".local" / "state" / "devbox").mkdir(parents=True)
    with volume.open_tree(
        root,
        uid=1001,
        owners=frozenset({0, 1001}),
        gid=1001,
        what="the volume web-data",
        budget=volume.Budget.of(10, "the test's 10 s"),
    ) as tree:
        assert tree.fd >= 0
