"""Stands in for `systemd-run --user --machine=<user>@ --pipe … COMMAND`: runs COMMAND here.

There is no systemd user manager on the test machine; podman runs rootful as root, in the
test's own storage, so running the command directly is what the user's manager would do.

Kept for the fast suite; the host test (tests/system/) runs the real systemd-run against
real user managers and rootless storage.
"""

from __future__ import annotations

import subprocess
import sys

from common import record, ruled

stdin = record("systemd-run")
ruled("systemd-run")
args = sys.argv[1:]
command = next(i for i, arg in enumerate(args) if not arg.startswith("--"))
result = subprocess.run(args[command:], input=stdin, check=False)
sys.exit(result.returncode)
