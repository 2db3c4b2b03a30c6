"""Stands in for `nixos-rebuild switch`: installs the generated tree and runs apply per user.

What the NixOS module does on a switch, without NixOS: the generated units become the
deployed ones ($DEVBOX_TEST_DEPLOYED stands in for /etc/containers/systemd/users/), then the
per-user devbox-apply oneshot runs the real `devbox-ctl apply` for every user in the manifest.

It records which configuration the real one would build, chosen as nixos-rebuild(8) describes
(not re-read at the pinned version): `--flake FLAKE`; else /etc/nixos/flake.nix if it exists;
else `<nixos-config>` from `-I nixos-config=…`, then from NIX_PATH; else
/etc/nixos/configuration.nix. The environment's NIX_PATH is the caller's to choose unless
the program runs with root's fixed environment.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from common import record, ruled


def configuration(argv: list[str]) -> str:
    """The configuration nixos-rebuild would build for this argv and environment."""
    if "--flake" in argv[:-1]:
        return "flake " + argv[argv.index("--flake") + 1]
    if Path("/etc/nixos/flake.nix").exists():
        return "flake /etc/nixos"
    search = [argv[i + 1] for i, word in enumerate(argv[:-1]) if word == "-I"]
    search += os.environ.get("NIX_PATH", "").split(":")
    for entry in search:
        if entry.startswith("nixos-config="):
            return entry.removeprefix("nixos-config=")
    return "/etc/nixos/configuration.nix"


record("nixos-rebuild", configuration=configuration(sys.argv[1:]))
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
