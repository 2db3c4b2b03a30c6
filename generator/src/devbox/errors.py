"""The one error hierarchy of devbox, and the exit codes it maps to.

Every failure a user can cause or meet is a `DevboxError`; the CLI prints it as `error: …`
and exits with its code. Anything else is a bug: it is shown as a one-line internal error,
with a traceback only under `--debug`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes of devbox-ctl, documented in docs/cli.md."""

    OK = 0
    CHANGES = 1  # drift (check), a pending change (plan), an outcome that is not an error
    BAD_INPUT = 2  # bad input or usage: nothing was written or changed
    FAILED = 3  # a tool or service failed, or timed out
    DENIED = 4  # the caller may not do this


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with an input: where it is, what is wrong, and how to fix it."""

    file: str
    path: str
    message: str
    fix: str = ""

    def __str__(self) -> str:
        where = f"{self.file}: {self.path}" if self.path else self.file
        text = f"{where}: {self.message}"
        return f"{text}; {self.fix}" if self.fix else text


class DevboxError(Exception):
    """A failure to report to the user as `error: <message>` with an exit code."""

    exit_code: ExitCode = ExitCode.FAILED

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def lines(self) -> list[str]:
        """The lines to print, each after `error: ` (the hint follows after `hint: `)."""
        return [self.message]


class UsageError(DevboxError):
    """A wrong option or argument."""

    exit_code = ExitCode.BAD_INPUT


class InputError(DevboxError):
    """One or more problems in users.nix or containers.json; nothing was written."""

    exit_code = ExitCode.BAD_INPUT

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(set(problems), key=_problem_order)
        super().__init__("\n".join(str(p) for p in self.problems))

    def lines(self) -> list[str]:
        """One line per problem."""
        return [str(p) for p in self.problems]


class ToolError(DevboxError):
    """A program devbox runs is missing or failed."""

    exit_code = ExitCode.FAILED


class NoVolumeError(ToolError):
    """A container's volume does not exist, so there is nothing to snapshot or read."""


class NotAllowedError(DevboxError):
    """The caller may not act on this container or setting."""

    exit_code = ExitCode.DENIED


def _problem_order(problem: Problem) -> tuple[str, list[str], str]:
    """Order problems by file, then by field path, list indexes compared as numbers."""
    parts = problem.path.replace("[", ".").replace("]", "").split(".")
    key = [f"{int(p):012d}" if p.isdigit() else p for p in parts]
    return (problem.file, key, problem.message)
