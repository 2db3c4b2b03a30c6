"""Fixtures for the lifecycle tests: a runtime over a temporary state directory, real podman
volumes, and the clock.

Podman runs for real (as root; ENVIRONMENT.md). devbox runs a container owner's podman through
`systemd-run --user --machine=<owner>@ --pipe podman …`; no systemd user manager runs here, so
the `systemd_run` fixture puts the stand-in `systemd-run` (tests/stand_ins/systemd_run.py) on
PATH, which parses its options as systemd 259 does and runs the command (as root) only if the
owner's manager could: named by an absolute path. It stands in for the owner's systemd manager
only: the podman it runs is real.
"""

from __future__ import annotations

import http.server
import os
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from lifecycle_support import Hook

from devbox import clock
from support import require_tool, stand_in_launcher


class Clock:
    """The injectable clock: `devbox.clock.now` returns `self.now`, which tests move."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        from datetime import timedelta

        self.now += timedelta(**delta)
        return self.now


@pytest.fixture
def now(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fixed = Clock(datetime(2026, 11, 2, 9, 0, tzinfo=UTC))
    monkeypatch.setattr(clock, "now", fixed)
    return fixed


@pytest.fixture
def podman() -> str:
    return require_tool("podman", _which("podman"))


def _which(name: str) -> str | None:
    import shutil

    return shutil.which(name)


@pytest.fixture
def systemd_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, podman: str) -> Path:
    """A stand-in systemd-run on PATH that runs podman directly (see the module docstring)."""
    bin_dir = tmp_path / "systemd-run-bin"
    bin_dir.mkdir()
    script = bin_dir / "systemd-run"
    script.write_text(stand_in_launcher("systemd_run.py"))
    script.chmod(0o755)
    monkeypatch.setenv("DEVBOX_TEST_CALLS", str(tmp_path / "systemd-run-calls.jsonl"))
    monkeypatch.setenv("DEVBOX_TEST_PASSWD", "alice:1001,bob:1002")  # lifecycle_support.USERS
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return script


@pytest.fixture
def volumes(systemd_run: Path) -> Iterator[Callable[[str], str]]:
    """Make unique container names whose volumes are removed after the test."""
    made: list[str] = []

    def name(prefix: str = "lc") -> str:
        made.append(f"{prefix}-{uuid.uuid4().hex[:8]}")
        return made[-1]

    yield name
    for container in made:
        subprocess.run(
            ["podman", "volume", "rm", "--force", f"{container}-data"],
            capture_output=True,
            check=False,
        )


@pytest.fixture
def webhook() -> Iterator[str]:
    """A local HTTP server standing in for an ntfy topic (lifecycle_support.Hook); its URL."""
    Hook.received = []
    server = http.server.HTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/devbox-warnings"
    server.shutdown()
