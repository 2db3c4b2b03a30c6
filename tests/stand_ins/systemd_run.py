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
There is no systemd user manager on the test machine: podman runs rootful as root, in the
test's own storage, so running the command here is what the user's manager would do.

Kept for the fast suite; the host test (tests/system/) runs the real systemd-run against
real user managers and rootless storage.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from systemd_cli import EXIT_EXEC, RefusedError, manager_lookup, parse_systemd_run, refuse

from common import record, ruled

EXIT_EXCEPTION = 255


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
        pipe = parsed.has("pipe")
        completed = subprocess.run(
            [executable, *command[1:]],
            input=stdin if pipe else None,
            stdin=None if pipe else subprocess.DEVNULL,
            stdout=None if pipe else subprocess.DEVNULL,
            stderr=None if pipe else subprocess.DEVNULL,
            check=False,
        )
        status = completed.returncode
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
