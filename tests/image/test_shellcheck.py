"""Every shell file in the repository is shellcheck-clean.

Shell files are the *.sh files and the files without that suffix whose first line
is a sh or bash #! line (scripts such as .ci/run). /etc/profile and /etc/bashrc of
the image are *.sh files that name their dialect with a `# shellcheck shell=`
directive.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SKIP_DIRS = {".git", ".venv", ".tools", "node_modules", "result", ".pytest_cache"}
SHEBANG = re.compile(r"^#!.*(/|env )(ba)?sh\b")


def shell_files() -> list[Path]:
    found = []
    for path in sorted(REPO.rglob("*")):
        relative = path.relative_to(REPO)
        if SKIP_DIRS & set(relative.parts) or not path.is_file():
            continue
        if path.suffix == ".sh":
            found.append(path)
            continue
        with path.open("rb") as file:
            first = file.readline(200)
        if SHEBANG.match(first.decode("utf-8", errors="replace")):
            found.append(path)
    return found


SHELL_FILES = shell_files()


def shellcheck() -> str:
    found = shutil.which("shellcheck")
    if found:
        return found
    message = "shellcheck is not installed (apt-get install shellcheck)"
    if os.environ.get("DEVBOX_REQUIRE_TOOLS") == "1":
        pytest.fail(message + "; DEVBOX_REQUIRE_TOOLS=1 makes this a failure")
    pytest.skip(message)
    raise AssertionError  # unreachable: skip raises


def test_the_image_scripts_are_among_them() -> None:
    names = {str(p.relative_to(REPO)) for p in SHELL_FILES}
    assert {
        "containers/devcontainer/entrypoint.sh",
        "containers/devcontainer/update-zed-pin.sh",
        "containers/devcontainer/profile.sh",
        "containers/devcontainer/bashrc.sh",
    } <= names


@pytest.mark.parametrize("path", SHELL_FILES, ids=[str(p.relative_to(REPO)) for p in SHELL_FILES])
def test_shellcheck_clean(path: Path) -> None:
    result = subprocess.run(
        [shellcheck(), "--external-sources", str(path)],
        capture_output=True,
        text=True,
        check=False,
        cwd=path.parent,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_shellcheck_finds_a_defect() -> None:
    # The check above can fail: shellcheck reports an unquoted expansion here.
    result = subprocess.run(
        [shellcheck(), "-"],
        input="#!/bin/bash\nrm $1\n",
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "SC2086" in result.stdout
