"""One function per podman command devbox runs, in a container owner's rootless podman.

Every container lives in its owner's rootless storage. When devbox-ctl runs as that owner it
calls podman directly; when it runs as root (the privileged path, the cleanup timer) it runs
podman as a transient unit of the owner's systemd manager (`systemd-run --user
--machine=<owner>@ --pipe`), so podman runs as the owner, in the owner's namespaces, and never
starts a rootless pause process inside root's sandbox. Standard input and output pass through,
which is how a secret reaches `podman secret create` without ever being an argument. podman is
named there by its absolute path (`program`): the owner's manager does not search root's PATH
(systemd.py).

A question about whether something exists has three answers: yes, no, and "could not tell".
podman's `volume exists` and `container exists` exit 0 when the thing is there, 1 when it is
not, and 125 on any other trouble (podman-volume-exists(1), podman-container-exists(1) of
podman 4.3 to 5.x). Through the owner's manager, systemd-run's own failures (no bus, a unit
that could not start) exit 1 as well, but always say why on stderr, while podman's "no" says
nothing. So "no" is exit 1 with nothing on stderr but podman's own log lines, and anything
else is a ToolError: a caller never removes anything on the strength of a probe that failed.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from devbox.errors import ToolError
from devbox.tools import process, systemd

# podman's exit status for "no such thing" from its `exists` commands (module docstring).
NOT_FOUND = 1
# A line of podman's logger on stderr (logrus: `time="…" level=warning msg="…"` when stderr is
# not a terminal, `WARN[0000] …` when it is): what podman may say besides its "no".
_LOG_LINE = re.compile(r'^(time="[^"]*" level=\w+ |[A-Z]{4}\[\d+\] )')


@dataclass(frozen=True)
class Holdings:
    """What one user's podman holds, read at once for `list`.

    A few podman calls per user, none per container: the containers as `container inspect`
    shows them, by name; the volumes' directories, by name; the secrets' names.
    """

    containers: dict[str, dict[str, Any]]
    volumes: dict[str, Path]
    secrets: frozenset[str]


@dataclass(frozen=True)
class Podman:
    """podman as one user; program is podman's absolute path (process.absolute).

    With known (Holdings read a moment ago), the questions about containers, volumes and
    secrets are answered from it instead of asking podman again; changes always go to podman.
    """

    user: str
    uid: int
    program: str
    known: Holdings | None = None

    def argv(self, *args: str) -> list[str]:
        """The command line that runs `podman args` as this user."""
        if os.geteuid() == self.uid:
            return [self.program, *args]
        return systemd.in_user_manager(self.user, [self.program, *args])

    def run(self, *args: str, stdin: str | None = None, timeout: float = 300) -> process.Result:
        """Run podman as the user; the caller decides what a failure means."""
        return process.run(self.argv(*args), stdin=stdin, timeout=timeout)

    def exists(self, what: str, *args: str, timeout: float = 300) -> bool:
        """Ask one of podman's `exists` commands about what (e.g. "the volume web-data").

        True, False, or a ToolError: podman could not tell (module docstring).
        """
        result = self.run(*args, timeout=timeout)
        if result.ok:
            return True
        quiet = all(_LOG_LINE.match(line) for line in result.stderr.splitlines() if line.strip())
        if result.returncode == NOT_FOUND and quiet:
            return False
        raise self.unknown(what, args, result)

    def unknown(self, what: str, args: tuple[str, ...], result: process.Result) -> ToolError:
        """A probe that failed: podman (or the owner's manager) said neither yes nor no."""
        where = "" if os.geteuid() == self.uid else f" in {self.user}'s systemd manager"
        said = result.stderr.strip() or result.stdout.strip() or "nothing"
        return ToolError(
            f"could not tell whether {self.user}'s {what} exists: `podman {' '.join(args)}`"
            f"{where} exited with {result.returncode}: {said}",
            hint="nothing was removed on this answer; run the command again once podman "
            f"answers (as {self.user}: podman {' '.join(args)})",
        )

    def checked(self, *args: str, stdin: str | None = None, timeout: float = 300) -> str:
        """Run podman as the user; a failure is a ToolError with podman's message."""
        result = self.run(*args, stdin=stdin, timeout=timeout)
        if result.returncode == systemd.EXIT_EXEC and os.geteuid() != self.uid:
            raise ToolError(
                f"{self.user}'s systemd manager could not execute {self.program} (status 203)",
                hint=f"journalctl --user -M {self.user}@ names the reason; services.devbox "
                "sets podman's path in /etc/devbox/config.json",
            )
        if not result.ok:
            raise ToolError(
                f"podman {args[0]} {args[1] if len(args) > 1 else ''} failed for "
                f"{self.user}: {result.stderr.strip() or result.stdout.strip()}"
            )
        return result.stdout

    def holdings(self) -> Holdings | None:
        """Everything of this user's that `list` asks about, in four podman calls.

        None when podman could not say: then each question goes to podman on its own.
        """
        names = self.run("ps", "--all", "--format", "{{.Names}}")
        volumes = self.run("volume", "ls", "--format", "json")
        secrets = self.run("secret", "ls", "--format", "{{.Name}}")
        if not (names.ok and volumes.ok and secrets.ok):
            return None
        found: list[dict[str, Any]] = []
        if names.stdout.split():
            # A container removed since `ps` makes inspect fail: ask each one then.
            inspected = self.run("container", "inspect", "--format", "json", *names.stdout.split())
            if not inspected.ok:
                return None
            found = json.loads(inspected.stdout or "[]")
        return Holdings(
            containers={str(c["Name"]).lstrip("/"): c for c in found},
            volumes={
                str(v["Name"]): Path(str(v["Mountpoint"]))
                for v in json.loads(volumes.stdout or "[]")
            },
            secrets=frozenset(secrets.stdout.split()),
        )

    # Containers

    def inspect_container(self, name: str) -> dict[str, Any] | None:
        """Podman's view of a container, or None when there is none (ToolError: cannot tell).

        podman 4.3's inspect exits 125 for a missing container as for any other failure, so a
        failed inspect asks `container exists`, whose 1 is "no such container".
        """
        if self.known is not None:
            return self.known.containers.get(name)
        args = ("container", "inspect", name, "--format", "json")
        result = self.run(*args)
        if not result.ok:
            if not self.exists(f"container {name}", "container", "exists", name):
                return None
            raise self.unknown(f"container {name}", args, result)
        found = json.loads(result.stdout or "[]")
        return found[0] if found else None

    @staticmethod
    def status_of(inspected: dict[str, Any] | None) -> str:
        """State.Status of inspect_container's answer (running, exited, …); missing: none."""
        return str((inspected or {}).get("State", {}).get("Status", "missing"))

    def exec(self, name: str, *argv: str, timeout: float = 60) -> process.Result:
        """Run a command inside a running container (as its user, dev)."""
        return self.run("exec", name, *argv, timeout=timeout)

    def logs_argv(self, name: str, *, follow: bool, since: str | None) -> list[str]:
        """The command line that shows a container's logs."""
        args = ["logs", *(["--follow"] if follow else []), *(["--since", since] if since else [])]
        return self.argv(*args, name)

    def remove_container(self, name: str) -> None:
        """Remove a container by name, running or not; no error if there is none.

        Any other failure is a ToolError: the container may still hold its volume.
        """
        self.checked("rm", "--force", "--ignore", name)

    # Volumes

    def volume_exists(self, name: str) -> bool:
        """Whether the volume exists; a ToolError when podman could not tell."""
        if self.known is not None:
            return name in self.known.volumes
        return self.exists(f"volume {name}", "volume", "exists", name)

    def volume_mountpoint(self, name: str, timeout: float = 300) -> Path | None:
        """Where the volume's files are on the host, or None when there is no such volume.

        Only volume.py uses the path (it opens it once, without following links). A failed
        inspect asks `volume exists` (inspect exits 125 for a missing volume too).
        """
        if self.known is not None:
            return self.known.volumes.get(name)
        args = ("volume", "inspect", name, "--format", "{{.Mountpoint}}")
        result = self.run(*args, timeout=timeout)
        if result.ok and result.stdout.strip():
            return Path(result.stdout.strip())
        if not self.exists(f"volume {name}", "volume", "exists", name, timeout=timeout):
            return None
        raise self.unknown(f"volume {name}", args, result)

    def create_volume(self, name: str, labels: dict[str, str]) -> None:
        """Create a volume unless it exists (without --ignore, which podman 4.4 brought)."""
        if not self.volume_exists(name):
            flags = [f"--label={key}={value}" for key, value in sorted(labels.items())]
            self.checked("volume", "create", *flags, name)

    def remove_volume(self, name: str) -> None:
        """Remove a volume; no error if there is none."""
        if self.volume_exists(name):
            self.checked("volume", "rm", "--force", name)

    def export_volume(self, name: str, on_chunk: Callable[[bytes], None]) -> None:
        """Hand the volume's files, as a tar stream, to on_chunk piece by piece.

        on_chunk may raise to stop the export (podman is killed and nothing more is read).
        Run as root, the pipe podman writes to belongs to the owner: podman before v5.5
        reopens it as /dev/stdout (process._output_pipe).
        """
        owner = None if os.geteuid() == self.uid else self.uid
        result = process.run_streamed(
            self.argv("volume", "export", name), on_chunk, timeout=3600, pipe_owner=owner
        )
        if not result.ok:
            raise ToolError(f"podman volume export {name} failed: {result.stderr.strip()}")

    def import_volume(self, name: str, source: BinaryIO) -> None:
        """Fill an existing volume from a tar stream."""
        result = process.run_binary(
            self.argv("volume", "import", name, "-"), stdin=source, timeout=3600
        )
        if not result.ok:
            raise ToolError(f"podman volume import {name} failed: {result.stderr.strip()}")

    # Secrets

    def secret_exists(self, name: str) -> bool:
        """Whether the secret exists; a ToolError when podman could not tell.

        Read from `secret ls`, whose success is a whole answer: podman 4.3 has no `secret
        exists` (4.5 brought it), and its `secret inspect` exits 125 for a missing secret as
        for any other failure.
        """
        if self.known is not None:
            return name in self.known.secrets
        args = ("secret", "ls", "--format", "{{.Name}}")
        result = self.run(*args)
        if not result.ok:
            raise self.unknown(f"secret {name}", args, result)
        return name in result.stdout.split()

    def set_secret(self, name: str, value: str) -> None:
        """Create or replace a secret; the value travels on stdin only.

        The old secret is removed first (`--replace` is podman 4.7 and later); a container
        reads its secret when it starts, and a start in between fails and is retried.
        """
        if self.secret_exists(name):
            self.checked("secret", "rm", name)
        self.checked("secret", "create", "--label=devbox.managed=true", name, "-", stdin=value)

    def remove_secret(self, name: str) -> None:
        """Remove a secret; no error if there is none."""
        if self.secret_exists(name):
            self.checked("secret", "rm", name)
