"""Stands in for `systemd-run` and the user manager it hands a command to.

Follows systemd 259 (nixos-26.05) as NixOS builds it; docs/tools-checked.md names the sources.
- The command line is parsed as src/run/run.c parses it (systemd_cli.py): an unknown or
  malformed option exits 1 with getopt's message; no command: "Command line to execute
  required.", exit 1.
- Local transport (no --machine/--host): systemd-run itself resolves a relative command on
  the caller's PATH (`shall_make_executable_absolute()`), failing early with "Failed to find
  executable NAME: No such file or directory", exit 1.
- `--machine=USER@` (with --user): the command goes to USER's manager as it is. The manager
  resolves a relative name only in systemd's compiled-in search path (src/core/exec-invoke.c
  with DEFAULT_PATH_NORMAL), which nixpkgs patches to systemd's own bin/ (path-util.h
  placeholder patch): there is no podman, git or devbox-ctl. $DEVBOX_TEST_MANAGER_PATH, when
  set, is that search path; unset, it holds nothing this stand-in could run. A command it
  cannot find or execute fails in the manager with status 203 (EXIT_EXEC), and with --wait
  systemd-run exits with the service's status: 203. `-p ExecSearchPath=` is honoured.
- With --wait the service's exit status comes back (success 0, exit-code → status, signal →
  255); without it systemd-run returns 0 once the unit was started. Without --pipe the
  command's stdin is /dev/null and its output goes to the journal (discarded here). Without
  --quiet the informational lines go to stderr as systemd-run writes them.
- With --pipe the caller's stdin, stdout and stderr are the service's own file descriptions
  (`StandardInputFileDescriptor=` …, run.c `transient_service_set_properties()`), and the
  service runs as USER. Writing to them works; reopening one by name (/dev/stdout, which
  podman before v5.5 does for `volume export`) is an open() of that pipe or file as USER, and
  fails for one USER may not open (root's pipe, mode 0600). Here the command runs as root, so
  such an stdout or stderr is handed over as a socket, relayed: reopening a socket fails
  (ENXIO) for root too. Standard input keeps its kind (`podman secret create NAME -` refuses
  anything but a pipe); a pipe there is refilled with what came in, and only its reopening
  stays as lenient as root. USER's uid comes from $DEVBOX_TEST_PASSWD ("alice:1001,…", the
  test host's user database), else from this machine's.
There is no systemd user manager on the test machine: podman runs rootful as root, in the
test's own storage, so running the command here is what the user's manager would do.

Kept for the fast suite; the host test (tests/system/) runs the real systemd-run against
real user managers and rootless storage.
"""

from __future__ import annotations

import contextlib
import functools
import os
import pwd
import shutil
import socket
import stat
import subprocess
import sys
import threading
from collections.abc import Callable

from systemd_cli import (
    EXIT_EXEC,
    Parsed,
    RefusedError,
    manager_lookup,
    parse_systemd_run,
    refuse,
)

from common import record, ruled

EXIT_EXCEPTION = 255


def uid_of(machine: str) -> int | None:
    """The uid of the user a `--machine=USER@` names, from the test host's user database."""
    user = machine.split("@", 1)[0]
    for entry in filter(None, os.environ.get("DEVBOX_TEST_PASSWD", "").split(",")):
        name, _, uid = entry.partition(":")
        if name == user:
            return int(uid)
    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError:
        return None


def reopenable(fd: int, uid: int | None, bits: int) -> bool:
    """Whether the user could open what fd is by name (/proc/self/fd/N) for bits (0o4 read,
    0o2 write): owner bits when the user owns it, else the others' bits; never a socket."""
    info = os.fstat(fd)
    if stat.S_ISSOCK(info.st_mode):
        return False
    if uid is not None and info.st_uid == uid:
        return bool(info.st_mode & (bits << 6))
    return bool(info.st_mode & bits)


def _relay(source: socket.socket, fd: int) -> None:
    with source:
        while chunk := source.recv(1 << 16):
            os.write(fd, chunk)


def _feed(fd: int, data: bytes) -> None:
    with contextlib.suppress(BrokenPipeError), os.fdopen(fd, "wb") as sink:
        sink.write(data)  # (a command that never reads its stdin breaks the pipe)


def run_piped_as(uid: int | None, argv: list[str], stdin: bytes) -> int:
    """Run argv with the caller's stdio as the user's service has it (module docstring)."""
    given: list[int] = []
    closers: list[Callable[[], None]] = []
    threads: list[threading.Thread] = []
    try:
        if stat.S_ISFIFO(os.fstat(0).st_mode):  # record() has read it: a new pipe, refilled
            read_end, write_end = os.pipe()
            if uid is not None and reopenable(0, uid, 0o4):
                os.fchown(read_end, uid, -1)
            given.append(read_end)
            closers.append(functools.partial(os.close, read_end))
            threads.append(threading.Thread(target=_feed, args=(write_end, stdin)))
        else:  # /dev/null, a file (rewound), a terminal: the same description
            with contextlib.suppress(OSError):
                os.lseek(0, 0, os.SEEK_SET)
            given.append(0)
        for fd in (1, 2):
            if reopenable(fd, uid, 0o2):
                given.append(fd)
                continue
            ours, theirs = socket.socketpair()
            given.append(theirs.fileno())
            closers.append(theirs.close)
            threads.append(threading.Thread(target=_relay, args=(ours, fd)))
        child = subprocess.Popen(argv, stdin=given[0], stdout=given[1], stderr=given[2])
    finally:
        for close in closers:  # the child holds its copies
            close()
    for thread in threads:
        thread.start()
    status = child.wait()
    for thread in threads:
        thread.join()
    return status


def execute(parsed: Parsed, argv: list[str], stdin: bytes) -> int:
    """Run the service's command as its manager would; its status."""
    pipe = parsed.has("pipe")
    if pipe and (parsed.has("machine") or parsed.has("host")):
        return run_piped_as(uid_of(parsed.value("machine") or ""), argv, stdin)
    return subprocess.run(
        argv,
        input=stdin if pipe else None,
        stdin=None if pipe else subprocess.DEVNULL,
        stdout=None if pipe else subprocess.DEVNULL,
        stderr=None if pipe else subprocess.DEVNULL,
        check=False,
    ).returncode


def main() -> None:
    stdin = record("systemd-run")
    ruled("systemd-run")
    try:
        parsed = parse_systemd_run(sys.argv[1:])
    except RefusedError as exc:
        refuse(str(exc))
    command = parsed.words
    remote = parsed.has("machine") or parsed.has("host")
    quiet = parsed.has("quiet")
    if not remote:
        found = shutil.which(command[0])
        if found is None:
            refuse(f"Failed to find executable {command[0]}: No such file or directory")
        command = [str(found), *command[1:]]
    search = os.environ.get("DEVBOX_TEST_MANAGER_PATH", "")
    for assignment in parsed.options.get("property", []):
        if assignment.startswith("ExecSearchPath="):
            search = assignment.removeprefix("ExecSearchPath=")
    executable = manager_lookup(command[0], search) if remote else command[0]
    unit = "run-u7.service"
    if not quiet:
        sys.stderr.write(f"Running as unit: {unit}\n")
    if executable is None:
        status, result = EXIT_EXEC, "exit-code"
    else:
        status = execute(parsed, [executable, *command[1:]], stdin)
        result = "success" if status == 0 else ("signal" if status < 0 else "exit-code")
    if not parsed.has("wait"):
        sys.exit(0)
    if not quiet:
        sys.stderr.write(f"Finished with result: {result}\n")
        if status >= 0:
            sys.stderr.write(f"Main processes terminated with: code=exited/status={status}\n")
    if result == "success":
        sys.exit(0)
    sys.exit(status if result == "exit-code" else EXIT_EXCEPTION)


main()
