"""protectUnpushedWork: real git repositories in a volume's directory, inspected as the host does.

Each repository is made with the real git; the remote is a bare repository beside the volume.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from lifecycle_support import git, open_as_volume, repository

from devbox.lifecycle import work


def inspect(home: Path) -> work.Work:
    """The git check of a directory made the volume of alice's container."""
    with open_as_volume(home) as tree:
        return work.unsaved(tree)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "home").mkdir()
    return tmp_path / "home"


def test_a_volume_without_repositories_or_with_everything_pushed_is_clear(
    home: Path, tmp_path: Path
) -> None:
    (home / "notes.txt").write_text("not in git\n")
    assert inspect(home).clear
    repository(home, "src/pushed", tmp_path / "pushed.git")
    result = inspect(home)
    assert result.clear, result


def test_uncommitted_unpushed_stashed_and_remoteless_work_is_found(
    home: Path, tmp_path: Path
) -> None:
    dirty = repository(home, "dirty", tmp_path / "dirty.git")
    (dirty / "README").write_text("changed\n")
    (dirty / "new.py").write_text("print()\n")
    ahead = repository(home, "projects/ahead", tmp_path / "ahead.git")
    (ahead / "b").write_text("b\n")
    git(ahead, "add", "b")
    git(ahead, "commit", "-qm", "second")
    stashed = repository(home, "stashed", tmp_path / "stashed.git")
    (stashed / "README").write_text("wip\n")
    git(stashed, "stash", "-q")
    repository(home, "local-only", None)

    result = inspect(home)

    assert sorted(result.found) == [
        "~/dirty: uncommitted changes (2 files)",
        "~/local-only: 1 commit on no remote (a branch not pushed, or a stash)",
        "~/projects/ahead: 1 commit on no remote (a branch not pushed, or a stash)",
        "~/stashed: 2 commits on no remote (a branch not pushed, or a stash)",
    ]
    assert result.unknown == []


def test_a_repository_configuration_never_makes_the_host_run_a_program(
    home: Path, tmp_path: Path
) -> None:
    proof = home / "ran"  # where the volume's owner, who git runs as, could write
    evil = repository(home, "evil", tmp_path / "evil.git")
    hook = f"#!/bin/sh\ntouch {proof}\n"
    (evil / "fsmonitor.sh").write_text(hook)
    (evil / "fsmonitor.sh").chmod(0o755)
    git(evil, "config", "core.fsmonitor", str(evil / "fsmonitor.sh"))
    git(evil, "config", "filter.evil.clean", f"touch {proof}; cat")
    (evil / ".gitattributes").write_text("* filter=evil\n")
    git(evil, "config", "include.path", str(evil / "more.cfg"))
    (evil / "more.cfg").write_text(f"[core]\n\tfsmonitor = {evil / 'fsmonitor.sh'}\n")
    # Racy timestamps make git compare contents, which is when it would run a clean filter.
    os.utime(evil / "README", (0, 0))

    result = inspect(home)

    assert not proof.exists(), "git ran a program the repository configured"
    assert result.unknown == []
    assert [item.split(":")[0] for item in result.found] == ["~/evil"]
    # Nothing was written into the repository either (no index refresh, no lock files).
    assert not (evil / ".git" / "index.lock").exists()


def test_links_out_of_the_volume_and_broken_repositories_are_doubts(
    home: Path, tmp_path: Path
) -> None:
    outside = repository(tmp_path, "outside", None)
    (home / "linked").mkdir()
    (home / "linked" / ".git").write_text(f"gitdir: {outside / '.git'}\n")
    (home / "broken").mkdir()
    (home / "broken" / ".git").mkdir()
    (home / "broken" / ".git" / "HEAD").write_text("garbage\n")
    result = inspect(home)
    assert result.found == []
    assert sorted(item.split(":")[0] for item in result.unknown) == ["~/broken", "~/linked"]
    assert "leads outside the volume" in " ".join(result.unknown)
    assert not result.clear


def test_caches_are_skipped_and_too_many_directories_is_a_doubt(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repository(home, "node_modules/pkg", None)
    repository(home, ".cache/thing", None)
    assert inspect(home).clear
    monkeypatch.setattr(work, "MAX_DIRECTORIES", 3)
    for n in range(5):
        (home / f"d{n}").mkdir()
    result = inspect(home)
    assert result.unknown == ["more than 3 directories: too many to look through"]


def test_a_git_directory_part_that_is_a_link_is_a_doubt(home: Path, tmp_path: Path) -> None:
    linked = repository(home, "linked-refs", None)
    (tmp_path / "refs").mkdir()
    (linked / ".git" / "refs").rename(tmp_path / "real-refs")
    (linked / ".git" / "refs").symlink_to(tmp_path / "real-refs")
    assert inspect(home).unknown == ["~/linked-refs: .git/refs is a link"]
