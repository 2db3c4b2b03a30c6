"""Killing devbox-ctl at a chosen step (tests/runtime/test_kills.py, tests/member/test_fleet_kills.py).

The steps of a verb are the programs it runs: every change it makes goes through one (podman
through `systemd-run`, the manager through `systemctl`, the config repository through `git`,
the deployment through `nixos-rebuild`; on a fleet's control host, a member through `ssh` and
a deployment through the deploy tool), and what it writes itself (a snapshot's files, the
records, a journal) lies between two of them. So a kill before the Nth program, and one right
after it (before the verb has read its outcome), reaches every step boundary. The Killer puts
a counting wrapper before each of those programs on PATH: it counts the call and, at the
chosen one, SIGKILLs its caller (the verb's process) before or after handing the call on; the
wrapper is only the injection, the program called is the same as without it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from host import Host

STEPPED = ("systemd-run", "systemctl", "git", "nixos-rebuild")


@dataclass
class Killer:
    """Counting wrappers first on PATH; `arm(n, after)` makes the nth call kill its caller."""

    directory: Path
    env: dict[str, str]

    @classmethod
    def install(cls, host: Host, programs: Iterable[str] = STEPPED) -> Killer:
        directory = host.base / "killer"
        (directory / "bin").mkdir(parents=True)
        path = host.env["PATH"]
        for name in programs:
            real = shutil.which(name, path=path)
            assert real is not None, name
            wrapper = directory / "bin" / name
            wrapper.write_text(
                "#!/bin/sh\n"
                f'd="{directory}"\n'
                'n=$(($(cat "$d/count" 2>/dev/null || echo 0) + 1)); echo "$n" > "$d/count"\n'
                f'echo "$n {name} $*" >> "$d/calls"\n'
                "when= nth= pattern=\n"
                '[ -s "$d/at" ] && read -r when nth pattern < "$d/at"\n'
                "m=$n\n"
                'if [ -n "$pattern" ]; then\n'
                f'  case "{name} $*" in\n'
                '    *"$pattern"*) m=$(($(cat "$d/matched" 2>/dev/null || echo 0) + 1))\n'
                '      echo "$m" > "$d/matched";;\n'
                "    *) m=0;;\n"
                "  esac\n"
                "fi\n"
                'if [ "$when $m" = "before $nth" ]; then kill -KILL "$PPID"; exit 137; fi\n'
                'if [ "$when $m" = "after $nth" ]; then\n'
                f'  "{real}" "$@"; status=$?; kill -KILL "$PPID"; exit "$status"\n'
                "fi\n"
                f'exec "{real}" "$@"\n'
            )
            wrapper.chmod(0o755)
        env = {**os.environ, **host.env, "PATH": f"{directory / 'bin'}:{path}"}
        return cls(directory, env)

    def arm(self, at: str | None) -> None:
        """at: "before N" or "after N" (the Nth call from now), or None: never kill.

        "before N TEXT" or "after N TEXT": the Nth call whose command line holds TEXT (a
        count that does not shift when a verb polls, or asks a host once more).
        """
        (self.directory / "count").write_text("0")
        (self.directory / "matched").write_text("0")
        (self.directory / "calls").write_text("")
        (self.directory / "at").write_text(at or "")

    def spawn_and_kill(self, host: Host, delay: float, *args: str) -> int:
        """devbox-ctl as in run, SIGKILLed after delay seconds (or left to finish before);
        its exit status (-SIGKILL when the kill came first)."""
        child = subprocess.Popen(
            [sys.executable, "-m", "devbox", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=host.base,
            env=self.env,
        )
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        return child.wait()

    def calls(self) -> list[str]:
        return (self.directory / "calls").read_text().splitlines()

    def run(self, host: Host, *args: str) -> subprocess.CompletedProcess[str]:
        """devbox-ctl as root in a process of its own, the wrappers first on its PATH."""
        return subprocess.run(
            [sys.executable, "-m", "devbox", *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
            cwd=host.base,
            env=self.env,
            timeout=300,
        )
