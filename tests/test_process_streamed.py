"""process.run_streamed: a program's output handed over piece by piece, and stopped at will."""

from __future__ import annotations

import os
import shutil
import time

import pytest

from devbox.errors import ToolError
from devbox.tools import process
from support import require_tool


def test_output_arrives_whole_and_in_order() -> None:
    pieces: list[bytes] = []
    result = process.run_streamed(
        ["sh", "-c", "head -c 3000000 /dev/zero | tr '\\0' x; echo oops >&2; exit 3"],
        pieces.append,
        timeout=30,
    )
    assert b"".join(pieces) == b"x" * 3_000_000
    assert (result.returncode, result.stderr) == (3, "oops\n")


def test_a_raising_consumer_stops_the_program() -> None:
    seen = []

    def enough(chunk: bytes) -> None:
        seen.append(len(chunk))
        if sum(seen) > 1 << 20:
            raise OverflowError

    started = time.monotonic()
    with pytest.raises(OverflowError):
        process.run_streamed(["yes"], enough, timeout=30)  # would write forever
    assert time.monotonic() - started < 10


def test_a_program_that_goes_quiet_times_out() -> None:
    with pytest.raises(ToolError, match=r"did not finish within 0\.5 s"):
        process.run_streamed(["sleep", "30"], lambda _chunk: None, timeout=0.5)


@pytest.mark.skipif(os.geteuid() != 0, reason="the program runs as another uid (setpriv)")
def test_a_program_run_as_the_pipes_owner_can_reopen_its_stdout() -> None:
    """Root runs podman in a user's manager with this pipe as its stdout, and podman before
    v5.5 reopens it as /dev/stdout: the pipe must be that user's (process._output_pipe)."""
    setpriv = require_tool("setpriv (util-linux)", shutil.which("setpriv"))
    reopen = [setpriv, "--reuid=1001", "--regid=1001", "--clear-groups", "--"]
    reopen += ["/bin/sh", "-c", "echo whole > /dev/stdout"]

    def collected(owner: int | None) -> tuple[int, bytes]:
        pieces: list[bytes] = []
        result = process.run_streamed(reopen, pieces.append, timeout=30, pipe_owner=owner)
        return result.returncode, b"".join(pieces)

    assert collected(1001) == (0, b"whole\n")
    assert collected(None) == (2, b"")  # sh: cannot create /dev/stdout: Permission denied
