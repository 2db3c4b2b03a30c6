"""Helpers for the attack tests on declarations, races and the privileged path.

Each attack test runs a whole host (tests/host.py: real git, Nix, podman and Quadlet;
stand-ins for the user's systemd manager, nixos-rebuild, 1Password and Tailscale) and acts as
a hostile user would: through the privileged path, with the values, timing and environment
the user controls.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from attack_volume_support import dev_uid, give
from attack_volume_support import volume_path as mountpoint

from devbox.container import monitor
from devbox.declare import generated_tree
from host import Host

ALICE, BOB, CAROL = 1001, 1002, 1003
START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Written:
    """Everything a declaration change may write: containers.json, generated/ and git."""

    containers: bytes
    generated: dict[str, bytes]
    head: str
    index: str

    @classmethod
    def of(cls, host: Host) -> Written:
        """The host's declaration as it is now, byte for byte."""
        devbox = host.repo / "devbox"

        def git(*args: str) -> str:
            return subprocess.run(
                ["git", "-C", str(host.repo), *args], capture_output=True, text=True, check=True
            ).stdout

        return cls(
            containers=(devbox / "containers.json").read_bytes(),
            generated=generated_tree.read_tree(devbox / "generated"),
            head=git("rev-parse", "HEAD"),
            index=git("status", "--porcelain", "--untracked-files=all"),
        )


class Clock:
    """devbox's clock, frozen at a time the test moves."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def at(self, **delta: float) -> datetime:
        """Set the time to START plus delta."""
        self.now = START + timedelta(**delta)
        return self.now


def volume(host: Host, name: str, owner_uid: int = ALICE) -> Path:
    """Create a container's volume in the host's podman storage; return its directory.

    What Quadlet's volume unit does at the container's first start, without starting it; the
    directory is given to the owner's mapped dev, as the owner's rootless podman has it (the
    tests' podman runs as root, and root's volume is no user's to read).
    """
    host.podman("volume", "create", f"{name}-data", check=True)
    root = mountpoint(host, name)
    (root / ".local/state/devbox").mkdir(parents=True, exist_ok=True)
    give(root, dev_uid(owner_uid))
    return root


def monitor_writes(root: Path, name: str, proc: Path, owner_uid: int = ALICE) -> None:
    """One write of the container's activity monitor (no sessions), as the image makes it:
    as the container's dev, which is the owner's mapped uid on the host."""
    proc.mkdir(parents=True, exist_ok=True)
    monitor.Monitor(root, name, proc=proc).tick()
    give(root, dev_uid(owner_uid))


def secrets(host: Host) -> list[str]:
    """The podman secrets of the host's storage."""
    return sorted(host.podman("secret", "ls", "--format", "{{.Name}}").stdout.split())


@contextlib.contextmanager
def environment(variables: dict[str, str]) -> Iterator[None]:
    """This process's environment with these variables set, as a caller's shell would have."""
    saved = dict(os.environ)
    os.environ.update(variables)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
