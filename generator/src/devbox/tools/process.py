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
import fcntl
import functools
import logging
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, ParamSpec, TypeVar

from devbox import timings
from devbox.errors import ToolError

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")


class TimedOutError(ToolError):
    """A program did not finish within its time budget (it was killed)."""

    def __init__(self, program: str, timeout: float) -> None:
        super().__init__(f"{program} did not finish within {timeout:g} s")
        self.timeout = timeout


# How much of a streamed program's output is read at once.
_STREAM_CHUNK = 1 << 20

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


def search_path() -> str | None:
    """The PATH programs are looked up on: the confined one, or this process's (None)."""
    return _confinements[-1].get("PATH", "") if _confinements else None


def find(program: str) -> str:
    """The path of a program on PATH, or a ToolError that says how to install it."""
    found = shutil.which(program, path=search_path())
    if found is None:
        hint = INSTALL_HINTS.get(program, f"install {program} or put it on PATH")
        raise ToolError(f"{program} not found on PATH", hint=hint)
    return found


def absolute(program: str, configured: Path | None = None) -> str:
    """An absolute path of a program that another process runs for devbox (a user's manager).

    A user's systemd manager runs a command it is handed over `systemd-run --machine` without
    resolving it on devbox's PATH, and searches only systemd's compiled-in path, which on
    NixOS holds systemd's own programs and nothing else (docs/tools-checked.md). So the path
    is the configured one (/etc/devbox/config.json) or the one found on PATH, and must be
    absolute: a relative PATH entry would name a file relative to another process's directory.
    """
    if configured is not None:
        if not configured.is_absolute() or not os.access(configured, os.X_OK):
            raise ToolError(
                f"{configured} is not an executable {program}",
                hint=f"fix {program} in /etc/devbox/config.json (services.devbox sets it)",
            )
        return str(configured)
    found = find(program)
    if not Path(found).is_absolute():
        raise ToolError(
            f"{program} was found at the relative path {found}, which a user's systemd manager "
            "cannot run",
            hint="put only absolute directories on PATH, or set the program's path in "
            "/etc/devbox/config.json",
        )
    return found


def _label(argv: Sequence[str]) -> str:
    """What `--timings` calls a run: the program, or the one systemd-run runs for a user."""
    name = Path(argv[0]).name if argv else "?"
    if name == "systemd-run":
        inner = next((arg for arg in argv[1:] if not arg.startswith("-")), None)
        return f"{Path(inner).name} (systemd-run)" if inner else name
    return name


def _timed(function: Callable[P, R]) -> Callable[P, R]:
    """Time every run of a function whose first argument is a program's argv (--timings)."""

    @functools.wraps(function)
    def timed(*args: P.args, **kwargs: P.kwargs) -> R:
        argv = args[0] if args else kwargs.get("argv", kwargs.get("source"))
        with timings.program(_label(argv) if isinstance(argv, Sequence) else "?"):
            return function(*args, **kwargs)

    return timed


def _command(argv: Sequence[str]) -> list[str]:
    """The argv with the program resolved on PATH (a ToolError if missing), logged."""
    executable = find(argv[0])
    log.debug("run: %s", " ".join(argv))
    return [executable, *argv[1:]]


@_timed
def run(
    argv: Sequence[str],
    *,
    stdin: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float | None = None,
    pass_fds: tuple[int, ...] = (),
) -> Result:
    """Run a program to completion and capture its output; a missing program is a ToolError.

    `pass_fds` stay open in the program under the same numbers (work.py hands git the parts
    of a repository as /proc/self/fd/N).
    """
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
            pass_fds=pass_fds,
            **_options(env, cwd),
        )
    except subprocess.TimeoutExpired as exc:
        raise TimedOutError(argv[0], timeout or 0) from exc
    return Result(tuple(argv), completed.returncode, completed.stdout, completed.stderr)


@_timed
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
        raise TimedOutError(argv[0], timeout or 0) from exc
    output = completed.stdout.decode("utf-8", "replace") if completed.stdout else ""
    return Result(
        tuple(argv), completed.returncode, output, completed.stderr.decode("utf-8", "replace")
    )


@_timed
def run_attached(argv: Sequence[str]) -> int:
    """Run a program on the caller's terminal (logs -f); return its exit code."""
    return subprocess.run(
        _command(argv), stdin=subprocess.DEVNULL, check=False, **_options()
    ).returncode


@_timed
def run_attached_said(argv: Sequence[str]) -> tuple[int, str]:
    """Run a program on the caller's terminal; its exit code and, when it failed, its last word.

    Its standard output goes straight to the terminal. Its standard error is passed on line
    by line, but for the last line, held until the program ends: when it failed, that line
    (the program's own "Error: …") is returned for a message in devbox's voice instead of
    being printed raw. An interrupt (Ctrl-C, which the program gets too) ends it as usual.
    """
    held = ""
    with subprocess.Popen(
        _command(argv),
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        **_options(),
    ) as child:
        assert child.stderr is not None  # noqa: S101 - Popen with PIPE always has it
        try:
            for line in child.stderr:
                if held:
                    sys.stderr.write(held)
                    sys.stderr.flush()
                held = line
        except KeyboardInterrupt:
            child.wait()
        code = child.wait()
    if code == 0:
        sys.stderr.write(held)
        return code, ""
    return code, held.strip()


@_timed
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


@_timed
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


def _pump(
    child: subprocess.Popen[bytes],
    output: BinaryIO,
    on_chunk: Callable[[bytes], None],
    deadline: float,
) -> None:
    """Hand a child's output to on_chunk until it ends; TimeoutExpired past the deadline."""
    with selectors.DefaultSelector() as selector:
        selector.register(output, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                raise subprocess.TimeoutExpired(child.args, left)
            chunk = os.read(output.fileno(), _STREAM_CHUNK)
            if not chunk:
                break
            on_chunk(chunk)
    child.wait(timeout=max(deadline - time.monotonic(), 1))


def _output_pipe(owner: int | None) -> tuple[int, int]:
    """A pipe for a program's output: (read end, write end).

    With owner, the pipe belongs to that uid. A program that root runs as another user (in
    that user's systemd manager, `systemd-run --pipe`) gets this very pipe as its stdout, and
    some reopen it by name: podman before v5.5 writes a volume export to `/dev/stdout`, the
    default of its --output (cmd/podman/volumes/export.go). Reopening a pipe checks its owner
    and mode (0600), so root's own pipe fails there with "permission denied".
    """
    read_end, write_end = os.pipe()
    try:
        with contextlib.suppress(OSError):  # fewer, larger reads where the system allows
            fcntl.fcntl(read_end, fcntl.F_SETPIPE_SZ, _STREAM_CHUNK)
        if owner is not None:
            os.fchown(write_end, owner, -1)  # one inode: both ends change
    except BaseException:
        os.close(read_end)
        os.close(write_end)
        raise
    return read_end, write_end


@_timed
def run_streamed(
    argv: Sequence[str],
    on_chunk: Callable[[bytes], None],
    *,
    timeout: float,
    pipe_owner: int | None = None,
) -> Result:
    """Run a program, handing its standard output to on_chunk as it comes (volume exports).

    When on_chunk raises (a quota ran out), the program is killed and the exception passes
    on; a timeout kills it too, as a ToolError. Standard error goes to a file, so a program
    that writes much of it can never stall on a full pipe. pipe_owner: the uid the program
    runs as when that is not the caller's (_output_pipe).
    """
    read_end, write_end = _output_pipe(pipe_owner)
    with tempfile.TemporaryFile() as errors, os.fdopen(read_end, "rb", buffering=0) as output:
        try:
            child = subprocess.Popen(
                _command(argv),
                stdin=subprocess.DEVNULL,
                stdout=write_end,
                stderr=errors,
                **_options(),
            )
        finally:
            os.close(write_end)  # the child has its copy: the end of its output is the pipe's
        try:
            _pump(child, output, on_chunk, time.monotonic() + timeout)
        except BaseException as exc:
            child.kill()
            child.wait()
            if isinstance(exc, subprocess.TimeoutExpired):
                raise TimedOutError(argv[0], timeout) from exc
            raise
        errors.seek(0)
        stderr = errors.read().decode("utf-8", "replace")
    return Result(tuple(argv), child.returncode, "", stderr)


@_timed
def pipe(source: Sequence[str], target: Sequence[str], *, timeout: float) -> tuple[Result, Result]:
    """Run `source | target`: the source's stdout is the target's stdin, through the kernel.

    Nothing of the stream passes through this process, so a volume of any size moves in
    constant memory. Each program's stderr goes to a file of its own (a chatty one cannot
    stall). Past the timeout both are killed, as a TimedOutError. When the target ends early
    the source gets EPIPE on its next write, as in a shell pipeline.
    """
    source_argv, target_argv = _command(source), _command(target)
    with tempfile.TemporaryFile() as source_errors, tempfile.TemporaryFile() as target_errors:
        first = subprocess.Popen(
            source_argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=source_errors,
            **_options(),
        )
        assert first.stdout is not None  # noqa: S101 - Popen with PIPE always has it
        try:
            second = subprocess.Popen(
                target_argv,
                stdin=first.stdout,
                stdout=subprocess.PIPE,
                stderr=target_errors,
                **_options(),
            )
        except BaseException:
            first.kill()
            first.wait()
            raise
        finally:
            first.stdout.close()  # the target holds the read end: EOF and EPIPE reach them
        deadline = time.monotonic() + timeout
        try:
            output, _ = second.communicate(timeout=timeout)
            first.wait(timeout=max(deadline - time.monotonic(), 1))
        except subprocess.TimeoutExpired as exc:
            for child in (first, second):
                child.kill()
                child.wait()
            raise TimedOutError(f"{source[0]} | {target[0]}", timeout) from exc
        results = []
        for argv, child, errors, out in (
            (source, first, source_errors, b""),
            (target, second, target_errors, output),
        ):
            errors.seek(0)
            results.append(
                Result(
                    tuple(argv),
                    child.returncode,
                    out.decode("utf-8", "replace"),
                    errors.read().decode("utf-8", "replace"),
                )
            )
    return results[0], results[1]
