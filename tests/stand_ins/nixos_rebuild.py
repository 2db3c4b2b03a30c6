"""Stands in for `nixos-rebuild switch`: installs the generated tree and runs apply per user.

What the NixOS module does on a switch, without NixOS: the generated units become the
deployed ones ($DEVBOX_TEST_DEPLOYED stands in for /etc/containers/systemd/users/), then the
per-user devbox-apply oneshot runs the real `devbox-ctl apply` for every user in the manifest.

Kept for the fast suite; the host test (tests/system/) switches with guest/activate.sh,
which follows the module step by step, with real systemd units and restart triggers.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from common import record, ruled

record("nixos-rebuild")
ruled("nixos-rebuild")
generated = Path(os.environ["DEVBOX_TEST_GENERATED"])
deployed = Path(os.environ["DEVBOX_TEST_DEPLOYED"])
print("building the system configuration...", flush=True)
shutil.rmtree(deployed, ignore_errors=True)
shutil.copytree(generated, deployed)
print("activating the configuration...", flush=True)
manifest = json.loads((deployed / "manifest.json").read_text())
failed = []
for user in sorted(manifest["users"]):
    apply = subprocess.run(
        [
            sys.executable,
            "-m",
            "devbox",
            "apply",
            "--manifest",
            str(deployed / "manifest.json"),
            "--user",
            user,
            "--state-dir",
            os.environ["DEVBOX_TEST_STATE"],
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    sys.stdout.write(apply.stdout)
    if apply.returncode != 0:
        failed.append(f"devbox-apply-{user}.service")
        sys.stdout.write(apply.stderr)
if failed:
    print(f"warning: the following units failed: {', '.join(failed)}", flush=True)
    sys.exit(4)
