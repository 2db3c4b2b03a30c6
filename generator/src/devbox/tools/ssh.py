"""A fleet host's own devbox-ctl, run over OpenSSH from the control host.

The command line is config.json's `sshCommand` with `{reach}` (and `{host}`) filled in, then
`remoteCommand` and the arguments. OpenSSH sends the words after the destination joined by
single spaces, and the remote login shell parses that line (ssh.c builds the command with
`sshbuf_putf(command, "%s%s", i ? " " : "", av[i])`): so each remote word is quoted for a
POSIX shell here, and a name, a path or a JSON argument arrives as the one word it was.

ssh exits 255 when it could not connect or authenticate (and the remote devbox-ctl never
exits 255): that, or no answer within the time budget, is `Unreachable`, a result of its own
that the caller shows as such, never as "no containers". ssh also exits 255, saying nothing,
when the remote command was ended by a signal (clientloop.c: an "exit-signal" leaves the exit
status at -1), e.g. a stream's source whose reader went away (SIGPIPE): what happened on the
host is then unknown, and the reason says both.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from devbox.tools import process, templates

# OpenSSH's exit status for its own failures (connection refused, timeout, authentication).
EXIT_SSH = 255
QUIET_255 = (
    f"ssh exited {EXIT_SSH} without a message (the connection failed, or the remote command "
    "was ended by a signal)"
)


@dataclass(frozen=True)
class Remote:
    """How to reach one fleet host's devbox-ctl."""

    host: str
    reach: str
    ssh_command: tuple[str, ...]
    remote_command: tuple[str, ...]

    def argv(self, *args: str) -> list[str]:
        """The local argv that runs `remoteCommand args` on the host."""
        local = templates.fill(self.ssh_command, {"host": self.host, "reach": self.reach})
        remote = templates.fill(self.remote_command, {"host": self.host, "reach": self.reach})
        return [*local, *(shlex.quote(word) for word in [*remote, *args])]


@dataclass(frozen=True)
class Reply(process.Result):
    """What the remote devbox-ctl answered: its exit code and output, and the host's name."""

    host: str

    @property
    def message(self) -> str:
        """Its last `error: …` line (or last line) of stderr, for a message naming the host."""
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("error: ")]
        return (errors or lines or [f"exit {self.returncode}"])[-1]


@dataclass(frozen=True)
class Unreachable:
    """The host did not answer: ssh could not connect, or nothing came back in time."""

    host: str
    reach: str
    reason: str

    def __str__(self) -> str:
        return f"{self.host} ({self.reach}) is unreachable: {self.reason}"


def _answer(remote: Remote, result: process.Result) -> Reply | Unreachable:
    if result.returncode == EXIT_SSH:
        said = [line for line in result.stderr.splitlines() if line.strip()]
        return Unreachable(remote.host, remote.reach, said[-1] if said else QUIET_255)
    return Reply(result.argv, result.returncode, result.stdout, result.stderr, remote.host)


def run(
    remote: Remote, args: Sequence[str], *, timeout: float, stdin: str | None = None
) -> Reply | Unreachable:
    """Run devbox-ctl ARGS on the host; stdin (a secret) travels only on standard input."""
    try:
        result = process.run(remote.argv(*args), stdin=stdin, timeout=timeout)
    except process.TimedOutError:
        return Unreachable(remote.host, remote.reach, f"no answer within {timeout:g} s")
    return _answer(remote, result)


def stream(
    source: Remote,
    source_args: Sequence[str],
    target: Remote,
    target_args: Sequence[str],
    *,
    timeout: float,
) -> tuple[Reply | Unreachable, Reply | Unreachable]:
    """Run ARGS on source with its stdout piped into ARGS on target (export | import).

    The stream goes from one ssh to the other through a kernel pipe: nothing of it is held
    here. Past the timeout both are killed and both count as unreachable.
    """
    try:
        first, second = process.pipe(
            source.argv(*source_args), target.argv(*target_args), timeout=timeout
        )
    except process.TimedOutError:
        reason = f"the transfer did not finish within {timeout:g} s"
        return (
            Unreachable(source.host, source.reach, reason),
            Unreachable(target.host, target.reach, reason),
        )
    return _answer(source, first), _answer(target, second)
