"""The set-up scripts a new user runs first: scripts/quickstart.sh and scripts/wait-for-apt.sh."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support import REPO, tracked_copy

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


@pytest.mark.slow
def test_quickstart_leaves_the_example_it_tells_the_user_to_cd_into(tmp_path: Path) -> None:
    """On Debian 12, setup.sh fetches Quadlet into a scratch directory of its own; removing that
    directory must not remove quickstart's build/example (both once used a variable `work`)."""
    if not (REPO / ".venv" / "bin" / "python").exists():
        pytest.skip("needs the repository's .venv (scripts/setup.sh makes it)")
    copy = tmp_path / "clone"
    tracked_copy(copy)
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
    assert_shared_venv_untouched()


def assert_shared_venv_untouched() -> None:
    """A copy sharing the checkout's .venv never installs into it: its devbox stays this one."""
    found = subprocess.run(
        [str(REPO / ".venv" / "bin" / "python"), "-c", "import devbox; print(devbox.__file__)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert found.stdout.startswith(str(REPO / "generator")), found.stdout


def _checkout(tmp_path: Path) -> Path:
    """A copy of the checkout that shares its .venv and .tools (set up already)."""
    if not (REPO / ".venv" / "bin" / "python").exists():
        pytest.skip("needs the repository's .venv (scripts/setup.sh makes it)")
    copy = tmp_path / "clone"
    tracked_copy(copy)
    (copy / ".venv").symlink_to(REPO / ".venv")
    if (REPO / ".tools").is_dir():
        (copy / ".tools").symlink_to(REPO / ".tools")
    return copy


@pytest.mark.slow
def test_a_second_quickstart_keeps_an_edited_example(tmp_path: Path) -> None:
    """The README: "Run again, it keeps your work"; --reset starts again from examples/basic."""
    copy = _checkout(tmp_path)
    quickstart = ["bash", str(copy / "scripts" / "quickstart.sh")]
    first = subprocess.run(quickstart, capture_output=True, text=True, check=False)
    assert first.returncode == 0, first.stdout + first.stderr
    again = subprocess.run(quickstart, capture_output=True, text=True, check=False)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "generated is up to date." in again.stdout  # unedited: the example is run again
    users = copy / "build" / "example" / "users.nix"
    edited = users.read_text() + "# my edit\n"
    users.write_text(edited)
    mine = copy / "build" / "example" / "notes.txt"
    mine.write_text("mine\n")
    kept = subprocess.run(quickstart, capture_output=True, text=True, check=False)
    assert kept.returncode == 0, kept.stdout + kept.stderr
    assert "build/example holds your work, so it is left as it is" in kept.stdout
    assert "scripts/quickstart.sh --reset" in kept.stdout
    assert (users.read_text(), mine.read_text()) == (edited, "mine\n")
    reset = subprocess.run([*quickstart, "--reset"], capture_output=True, text=True, check=False)
    assert reset.returncode == 0, reset.stdout + reset.stderr
    assert users.read_text() == (REPO / "examples" / "basic" / "users.nix").read_text()
    assert not mine.exists()
    assert_shared_venv_untouched()


_NOTHING_INSTALLED = """#!/bin/sh
# dpkg-query that knows no package installed: setup.sh then asks apt-get for every one.
exit 1
"""
_APT_GET = """#!/bin/sh
# apt-get that records its arguments instead of installing (this machine is set up already).
echo "$*" >> "$APT_LOG"
"""


def _asked_to_install(tmp_path: Path, *setup_args: str) -> set[str]:
    """The Debian packages scripts/setup.sh asks apt-get for on a machine with none of them."""
    copy = _checkout(tmp_path)
    stand_ins = tmp_path / "bin"
    stand_ins.mkdir()
    for name, text in (("dpkg-query", _NOTHING_INSTALLED), ("apt-get", _APT_GET)):
        (stand_ins / name).write_text(text)
        (stand_ins / name).chmod(0o755)
    log = tmp_path / "apt.log"
    if os.geteuid() != 0:
        pytest.skip("setup.sh runs apt-get through sudo unless it runs as root")
    result = subprocess.run(
        ["bash", str(copy / "scripts" / "setup.sh"), *setup_args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PATH": f"{stand_ins}:{os.environ['PATH']}", "APT_LOG": str(log)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    installs = [
        words for words in map(str.split, log.read_text().splitlines()) if "install" in words
    ]
    assert len(installs) == 1, log.read_text()
    return {word for word in installs[0] if not word.startswith("-") and word != "install"}


def test_the_quick_starts_setup_installs_only_what_the_generator_needs(tmp_path: Path) -> None:
    asked = _asked_to_install(tmp_path)
    assert {"nix-bin", "git"} <= asked
    toolchain = {"qemu-system-x86", "qemu-utils", "debootstrap", "podman", "shellcheck", "gawk"}
    assert not asked & toolchain


def test_the_test_commands_setup_installs_the_host_tests_toolchain(tmp_path: Path) -> None:
    asked = _asked_to_install(tmp_path, "--tests")
    assert {"qemu-system-x86", "qemu-utils", "debootstrap", "e2fsprogs", "nix-bin", "gawk"} <= asked
    # test.sh sets setup_tests=1 (what --tests sets) before it sources setup.sh.
    lines = [line.strip() for line in (REPO / "scripts" / "test.sh").read_text().splitlines()]
    sourced = lines.index('source "$repo/scripts/setup.sh"')
    assert "setup_tests=1" in lines[:sourced]
