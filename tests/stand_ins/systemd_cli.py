"""The command lines of systemd-run and systemctl, parsed as the real programs parse them.

Follows systemd 259 (nixos-26.05 ships the 259 series): the option tables of `parse_argv()` in
src/run/run.c and src/systemctl/systemctl.c, both parsed with glibc's getopt_long(): a long
option may be abbreviated to a unique prefix, `--name=value` or `--name value`, short options
may be grouped, and systemd-run stops at the first non-option (its optstring starts with "+")
while systemctl permutes. A refused option prints glibc's message and exits 1, as both
programs do (`case '?': return -EINVAL;` → EXIT_FAILURE); checked against the real systemd 252
programs on the test machine (docs/tools-checked.md).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

# name → takes an argument; short letter → long name.
SYSTEMD_RUN_LONG = {
    "help": False,
    "version": False,
    "user": False,
    "system": False,
    "capsule": True,
    "scope": False,
    "unit": True,
    "description": True,
    "slice": True,
    "slice-inherit": False,
    "remain-after-exit": False,
    "expand-environment": True,
    "send-sighup": False,
    "host": True,
    "machine": True,
    "service-type": True,
    "wait": False,
    "uid": True,
    "gid": True,
    "nice": True,
    "setenv": True,
    "property": True,
    "tty": False,
    "pty": False,
    "pipe": False,
    "quiet": False,
    "on-active": True,
    "on-boot": True,
    "on-startup": True,
    "on-unit-active": True,
    "on-unit-inactive": True,
    "on-calendar": True,
    "on-timezone-change": False,
    "on-clock-change": False,
    "timer-property": True,
    "path-property": True,
    "socket-property": True,
    "no-block": False,
    "no-ask-password": False,
    "collect": False,
    "working-directory": True,
    "same-dir": False,
    "shell": False,
    "job-mode": True,
    "ignore-failure": False,
    "background": True,
    "json": True,
}
SYSTEMD_RUN_SHORT = {
    "h": "help",
    "r": "remain-after-exit",
    "C": "capsule",
    "H": "host",
    "M": "machine",
    "E": "setenv",
    "p": "property",
    "t": "pty",
    "P": "pipe",
    "q": "quiet",
    "G": "collect",
    "d": "same-dir",
    "S": "shell",
    "u": "unit",
}

SYSTEMCTL_LONG = {
    "help": False,
    "version": False,
    "system": False,
    "user": False,
    "host": True,
    "machine": True,
    "type": True,
    "state": True,
    "failed": False,
    "property": True,
    "value": False,
    "all": False,
    "full": False,
    "recursive": False,
    "reverse": False,
    "with-dependencies": False,
    "job-mode": True,
    "show-transaction": False,
    "show-types": False,
    "check-inhibitors": True,
    "kill-whom": True,
    "signal": True,
    "what": True,
    "now": False,
    "dry-run": False,
    "quiet": False,
    "wait": False,
    "no-block": False,
    "no-wall": False,
    "no-reload": False,
    "legend": True,
    "no-legend": False,
    "no-pager": False,
    "no-ask-password": False,
    "global": False,
    "runtime": False,
    "force": False,
    "preset-mode": True,
    "root": True,
    "image": True,
    "lines": True,
    "output": True,
    "firmware-setup": False,
    "boot-loader-menu": True,
    "boot-loader-entry": True,
    "plain": False,
    "timestamp": True,
    "read-only": False,
    "mkdir": False,
    "marked": False,
}
SYSTEMCTL_SHORT = {
    "h": "help",
    "H": "host",
    "M": "machine",
    "t": "type",
    "p": "property",
    "P": "value",
    "a": "all",
    "l": "full",
    "r": "recursive",
    "T": "show-transaction",
    "s": "signal",
    "q": "quiet",
    "f": "force",
    "n": "lines",
    "o": "output",
}
# systemctl's --timestamp= values (timestamp_style_from_string, src/basic/time-util.c).
TIMESTAMP_STYLES = ("pretty", "unix", "us", "utc", "us+utc")


class RefusedError(Exception):
    """The real program would refuse this command line with this message."""


@dataclass
class Parsed:
    """Options (long name → values, in order) and the remaining words."""

    options: dict[str, list[str]] = field(default_factory=dict)
    words: list[str] = field(default_factory=list)

    def has(self, name: str) -> bool:
        return name in self.options

    def value(self, name: str) -> str | None:
        values = self.options.get(name)
        return values[-1] if values else None


def _long(program: str, table: dict[str, bool], text: str) -> tuple[str, str | None]:
    name, equals, value = text.partition("=")
    if name not in table:
        matches = [option for option in table if option.startswith(name)]  # table order
        if not matches:
            raise RefusedError(f"{program}: unrecognized option '--{name}'")
        if len(matches) > 1:
            listed = " ".join(f"'--{m}'" for m in matches)
            raise RefusedError(
                f"{program}: option '--{name}' is ambiguous; possibilities: {listed}"
            )
        name = matches[0]
    if equals and not table[name]:
        raise RefusedError(f"{program}: option '--{name}' doesn't allow an argument")
    return name, value if equals else None


def _short(
    program: str,
    argv: list[str],
    index: int,
    letters: str,
    table: dict[str, bool],
    short: dict[str, str],
    parsed: Parsed,
) -> int:
    """One word of grouped short options; the index of the next word."""
    while letters:
        letter, letters = letters[0], letters[1:]
        if letter not in short:
            raise RefusedError(f"{program}: invalid option -- '{letter}'")
        name = short[letter]
        value = ""
        if table[name]:
            if letters:
                value, letters = letters, ""
            elif index < len(argv):
                value = argv[index]
                index += 1
            else:
                raise RefusedError(f"{program}: option requires an argument -- '{letter}'")
        parsed.options.setdefault(name, []).append(value)
    return index


def getopt_long(
    program: str,
    argv: list[str],
    table: dict[str, bool],
    short: dict[str, str],
    *,
    stop_at_first_word: bool,
) -> Parsed:
    """glibc getopt_long over argv; raises RefusedError with glibc's message."""
    parsed = Parsed()
    index = 0
    while index < len(argv):
        arg = argv[index]
        index += 1
        if arg == "--":
            parsed.words += argv[index:]
            break
        if not arg.startswith("-") or arg == "-":
            if stop_at_first_word:
                parsed.words += argv[index - 1 :]
                break
            parsed.words.append(arg)
            continue
        if arg.startswith("--"):
            name, value = _long(program, table, arg[2:])
            if table[name] and value is None:
                if index >= len(argv):
                    raise RefusedError(f"{program}: option '--{name}' requires an argument")
                value = argv[index]
                index += 1
            parsed.options.setdefault(name, []).append(value or "")
            continue
        index = _short(program, argv, index, arg[1:], table, short, parsed)
    return parsed


def _called_as() -> str:
    """The stand-in's path as it was called (the interpreter's argv[1]: runpy replaces argv[0])."""
    return sys.orig_argv[1] if len(sys.orig_argv) > 1 else sys.argv[0]


def parse_systemd_run(argv: list[str]) -> Parsed:
    """systemd-run's command line: its options, then the command (stops at the first word).

    getopt names the program as it was called (argv[0]), as the real one does.
    """
    parsed = getopt_long(
        _called_as(), argv, SYSTEMD_RUN_LONG, SYSTEMD_RUN_SHORT, stop_at_first_word=True
    )
    if not parsed.words:
        raise RefusedError("Command line to execute required.")
    return parsed


def parse_systemctl(argv: list[str]) -> Parsed:
    """systemctl's command line: options anywhere, then the verb and its arguments."""
    parsed = getopt_long(
        _called_as(), argv, SYSTEMCTL_LONG, SYSTEMCTL_SHORT, stop_at_first_word=False
    )
    style = parsed.value("timestamp")
    if style is not None and style not in TIMESTAMP_STYLES:
        raise RefusedError(f"Invalid value: {style}.")
    return parsed


def refuse(message: str, code: int = 1) -> None:
    """Exit as the real program exits on a refused command line."""
    sys.stderr.write(message + "\n")
    sys.exit(code)


# A service's status when its manager could not execute the command (EXIT_EXEC, "203/EXEC").
EXIT_EXEC = 203


def manager_lookup(command: str, search_path: str) -> str | None:
    """Where a user's manager finds the command of a transient unit: an absolute path as it is
    (if executable), a bare name only in the manager's own search path, never on the caller's
    PATH (src/core/exec-invoke.c; the search path is DEFAULT_PATH_NORMAL, which nixpkgs sets to
    systemd's own bin/, or ExecSearchPath=)."""
    if command.startswith("/"):
        return command if Path(command).is_file() and os.access(command, os.X_OK) else None
    if "/" in command or not search_path:
        return None
    return shutil.which(command, path=search_path)


def check_recorded_call(name: str, argv: list[str]) -> None:
    """For a stand-in that only records: exit as the real program would on this command line
    before any rule answers (a refused option; a command the user's manager cannot find)."""
    try:
        if name == "systemctl":
            parse_systemctl(argv)
            return
        parsed = parse_systemd_run(argv)
    except RefusedError as exc:
        refuse(str(exc))
    remote = parsed.has("machine") or parsed.has("host")
    search = os.environ.get("DEVBOX_TEST_MANAGER_PATH", "")
    if remote and manager_lookup(parsed.words[0], search) is None:
        sys.exit(EXIT_EXEC if parsed.has("wait") else 0)


def systemd_timestamp(unix: str) -> str:
    """A timestamp as systemctl show prints it (empty when never set): `%a %Y-%m-%d %H:%M:%S`
    and the zone's abbreviation, in the process's time zone (format_timestamp_style(),
    TIMESTAMP_PRETTY, src/basic/time-util.c)."""
    seconds = int(unix or "0")
    if seconds <= 0:
        return ""
    return time.strftime("%a %Y-%m-%d %H:%M:%S %Z", time.localtime(seconds))
