"""The set-up scripts a new user runs first: scripts/quickstart.sh and scripts/wait-for-apt.sh."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support import REPO

WAIT = REPO / "scripts" / "wait-for-apt.sh"

_HOLD = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.lockf(fd, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


def _hold(lock: Path, seconds: float) -> subprocess.Popen[str]:
    """Hold an fcntl lock on `lock` the way apt and dpkg do, for `seconds`."""
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(lock), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None
    assert holder.stdout.readline() == "held\n"
    return holder


def test_wait_for_apt_waits_for_a_held_lock_and_says_so(tmp_path: Path) -> None:
    free, held = tmp_path / "lock-frontend", tmp_path / "lock"
    free.touch()
    holder = _hold(held, 3)
    started = time.monotonic()
    result = subprocess.run(
        ["bash", str(WAIT), "60", str(free), str(held)], capture_output=True, text=True, check=False
    )
    holder.wait()
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started >= 2
    assert result.stderr == (
        f"==> waiting for another package manager to finish (it holds {held}; up to 60 s)\n"
    )


def test_wait_for_apt_gives_up_with_what_to_do(tmp_path: Path) -> None:
    held = tmp_path / "lock"
    holder = _hold(held, 30)
    try:
        result = subprocess.run(
            ["bash", str(WAIT), "1", str(held)], capture_output=True, text=True, check=False
        )
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode == 1
    assert f"error: {held} is still held after 1 s" in result.stderr


def test_wait_for_apt_passes_free_and_missing_locks_silently(tmp_path: Path) -> None:
    (tmp_path / "free").touch()
    result = subprocess.run(
        ["bash", str(WAIT), "5", str(tmp_path / "free"), str(tmp_path / "missing")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (result.returncode, result.stderr) == (0, "")


def _tracked_copy(destination: Path) -> None:
    """The files git tracks, with their times kept (so setup.sh sees an installed .venv)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.decode()
    for relative in filter(None, listed.split("\0")):
        source = REPO / relative
        if source.is_file():
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


@pytest.mark.slow
def test_quickstart_leaves_the_example_it_tells_the_user_to_cd_into(tmp_path: Path) -> None:
    """On Debian 12, setup.sh fetches Quadlet into a scratch directory of its own; removing that
    directory must not remove quickstart's build/example (both once used a variable `work`)."""
    if not (REPO / ".venv" / "bin" / "python").exists():
        pytest.skip("needs the repository's .venv (scripts/setup.sh makes it)")
    copy = tmp_path / "clone"
    _tracked_copy(copy)
    (copy / ".venv").symlink_to(REPO / ".venv")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    result = subprocess.run(
        ["bash", str(copy / "scripts" / "quickstart.sh")],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "TMPDIR": str(scratch)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (copy / "build/example/generated/manifest.json").is_file()
    assert (copy / "build/example/generated/users/1001/devbox-web.container").is_file()
    assert list(scratch.iterdir()) == []
