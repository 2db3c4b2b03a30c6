"""Every .nix file git tracks parses with the real Nix parser.

Only tracked files: a user's scratch file under the git-ignored build/ is theirs, not the
project's, and must not break the suite.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from support import REPO


def tracked_nix_files() -> list[Path]:
    """The .nix files git tracks in the repository (present in the work tree).

    Without a git directory (the flake's build of the tests, whose source is already the
    tracked files the flake selects) every .nix file there is the project's.
    """
    if not (REPO / ".git").exists():
        return sorted(REPO.rglob("*.nix"))
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--", "*.nix"], cwd=REPO, capture_output=True, check=True
    ).stdout.decode()
    return sorted(REPO / p for p in filter(None, listed.split("\0")) if (REPO / p).is_file())


NIX_FILES = tracked_nix_files()


def test_the_repository_has_nix_files() -> None:
    names = {str(p.relative_to(REPO)) for p in NIX_FILES}
    assert {"examples/basic/users.nix", "flake.nix", "nixos/orchestrator.nix"} <= names


def test_a_scratch_file_under_build_is_not_the_projects() -> None:
    if not (REPO / ".git").exists():
        pytest.skip("no git directory: the flake's build holds only the tracked files")
    scratch = REPO / "build" / "scratch-test-nix-files.nix"
    scratch.parent.mkdir(exist_ok=True)
    scratch.write_text("{ this is not nix")
    try:
        assert scratch not in tracked_nix_files()
    finally:
        scratch.unlink()


@pytest.mark.parametrize("path", NIX_FILES, ids=[str(p.relative_to(REPO)) for p in NIX_FILES])
def test_parses(path: Path, nix: str) -> None:
    result = subprocess.run(
        [nix, "--parse", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
