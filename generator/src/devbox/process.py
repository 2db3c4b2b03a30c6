"""The only module that runs other programs.

Every program runs from an argv list (never a shell). Secrets travel on standard input only:
argv is visible to every user of the host in /proc, and is what this module may log.

Inside `confined` (devbox-privileged runs every verb there) a program gets a fixed
environment and `/` as its working directory, and is looked up on that environment's PATH:
nothing of the caller's environment (PATH, NIX_PATH, NIX_CONF_DIR, GIT_*, LD_*, …) or
directory reaches a program root runs for them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from devbox.errors import ToolError

log = logging.getLogger(__name__)

INSTALL_HINTS = {
    "nix-instantiate": (
        "devbox-ctl reads users.nix with the Nix evaluator; install Nix "
        "(Debian: apt-get install nix-bin; elsewhere: https://nixos.org/download)"
    ),
    "podman": "install podman (Debian: apt-get install podman; NixOS: virtualisation.podman)",
    "git": "install git",
    "op": "install the 1Password CLI (NixOS: services.devbox sets it up)",
}


# What every confined program gets besides the configured environment.
CONFINED_BASE = {"HOME": "/root", "LANG": "C.UTF-8", "USER": "root", "LOGNAME": "root"}
CONFINED_DIRECTORY = Path("/")
_confinements: list[dict[str, str]] = []


@contextlib.contextmanager
def confined(environment: Mapping[str, str]) -> Iterator[None]:
    """Run every program started in the block with exactly this environment, from `/`."""
    _confinements.append({**CONFINED_BASE, **environment})
    try:
        yield
    finally:
        _confinements.pop()


def _environment(extra: Mapping[str, str] | None) -> dict[str, str] | None:
    """The environment of a new program: the confined one, or this process's (None)."""
    if _confinements:
        return {**_confinements[-1], **(extra or {})}
    return None if extra is None else {**os.environ, **extra}


def _options(env: Mapping[str, str] | None = None, cwd: Path | None = None) -> dict[str, Any]:
    """Environment and working directory of a new program."""
    directory = cwd if cwd is not None or not _confinements else CONFINED_DIRECTORY
    return {"env": _environment(env), "cwd": directory}


@dataclass(frozen=True)
class Result:
    """What a finished program left: its exit code and its output as text."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        """Whether the program exited 0."""
        return self.returncode == 0


def find(program: str) -> str:
    """The path of a program on PATH, or a ToolError that says how to install it."""
    path = _confinements[-1].get("PATH", "") if _confinements else None
    found = shutil.which(program, path=path)
    if found is None:
        hint = INSTALL_HINTS.get(program, f"install {program} or put it on PATH")
        raise ToolError(f"{program} not found on PATH", hint=hint)
    return found


def _command(argv: Sequence[str]) -> list[str]:
    """The argv with the program resolved on PATH (a ToolError if missing), logged."""
    executable = find(argv[0])
    log.debug("run: %s", " ".join(argv))
    return [executable, *argv[1:]]


def run(
    argv: Sequence[str],
    *,
    stdin: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float | None = None,
) -> Result:
    """Run a program to completion and capture its output; a missing program is a ToolError."""
    try:
        completed = subprocess.run(
            _command(argv),
            input=stdin,
            # Without input, programs read an empty stdin, never the caller's terminal.
            stdin=subprocess.DEVNULL if stdin is None else None,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            **_options(env, cwd),
        )
    except subprocess.TimeoutExpired as exc:
        raise ToolError(f"{argv[0]} did not finish within {timeout:g} s") from exc
    return Result(tuple(argv), completed.returncode, completed.stdout, completed.stderr)


def run_binary(
    argv: Sequence[str],
    *,
    stdin: BinaryIO | None = None,
    stdout: BinaryIO | None = None,
    timeout: float | None = None,
) -> Result:
    """Run a program with files as its stdin or stdout (volume exports and imports)."""
    try:
        completed = subprocess.run(
            _command(argv),
            stdin=stdin if stdin is not None else subprocess.DEVNULL,
            stdout=stdout if stdout is not None else subprocess.PIPE,
            stderr=subprocess.PIPE,
            timeout=timeout,
            check=False,
            **_options(),
        )
    except subprocess.TimeoutExpired as exc:
        raise ToolError(f"{argv[0]} did not finish within {timeout:g} s") from exc
    output = completed.stdout.decode("utf-8", "replace") if completed.stdout else ""
    return Result(
        tuple(argv), completed.returncode, output, completed.stderr.decode("utf-8", "replace")
    )


def run_attached(argv: Sequence[str]) -> int:
    """Run a program on the caller's terminal (logs -f); return its exit code."""
    return subprocess.run(
        _command(argv), stdin=subprocess.DEVNULL, check=False, **_options()
    ).returncode


def run_lines(
    argv: Sequence[str], on_line: Callable[[str], None], *, cwd: Path | None = None
) -> Result:
    """Run a program, handing each line of its output (stdout and stderr) to on_line."""
    kept: list[str] = []
    with subprocess.Popen(
        _command(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **_options(cwd=cwd),
    ) as child:
        assert child.stdout is not None  # noqa: S101 - Popen with PIPE always has it
        for line in child.stdout:
            on_line(line.rstrip("\n"))
            kept = [*kept[-39:], line]
    return Result(tuple(argv), child.returncode, "".join(kept), "")


def run_while(argv: Sequence[str], every: float, on_tick: Callable[[], None]) -> int:
    """Run a program on the caller's terminal, calling on_tick every `every` seconds.

    SIGTERM, SIGINT and SIGHUP are passed on to it. Returns its exit code (128+N when a
    signal N ended it, as a shell reports).
    """
    child = subprocess.Popen(_command(argv), **_options())
    forwarded = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    previous = {number: signal.getsignal(number) for number in forwarded}

    def forward(number: int, _frame: object) -> None:
        child.send_signal(number)

    for number in forwarded:
        signal.signal(number, forward)
    try:
        while True:
            try:
                code = child.wait(timeout=every)
            except subprocess.TimeoutExpired:
                on_tick()
                continue
            return code if code >= 0 else 128 - code
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
