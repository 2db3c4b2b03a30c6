"""Every .nix file in the repository parses with the real Nix parser."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from support import REPO

SKIP_DIRS = {".git", ".venv", ".tools", "node_modules", "result"}
NIX_FILES = sorted(p for p in REPO.rglob("*.nix") if not SKIP_DIRS & set(p.relative_to(REPO).parts))


def test_the_repository_has_nix_files() -> None:
    names = {str(p.relative_to(REPO)) for p in NIX_FILES}
    assert "examples/basic/users.nix" in names


@pytest.mark.parametrize("path", NIX_FILES, ids=[str(p.relative_to(REPO)) for p in NIX_FILES])
def test_parses(path: Path, nix: str) -> None:
    result = subprocess.run(
        [nix, "--parse", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
