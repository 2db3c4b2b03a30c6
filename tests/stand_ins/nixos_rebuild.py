"""Stands in for `nixos-rebuild switch` on a host with services.devbox (nixos/orchestrator.nix).

Follows nixos-rebuild-ng and switch-to-configuration of nixos-26.05 (nixpkgs 74cc63f; sources
in docs/tools-checked.md) as far as devbox sees them:
- The command line: the action `switch`, with `--flake REF` (or `--flake=REF`) allowed; any
  other action or option exits 2 with argparse's last line, "nixos-rebuild: error: …"
  (nixos-rebuild-ng parses with argparse, which prints its usage first; the stand-in leaves
  the usage out and knows only the options a devbox host uses).
- Activation: the generated units become the deployed ones ($DEVBOX_TEST_DEPLOYED stands in
  for /etc/containers/systemd/users/ and /etc/devbox/manifest.json).
- The per-user oneshot devbox-apply-<user> runs exactly when switch-to-configuration would
  start or restart it: a new unit is started (wantedBy multi-user.target); a unit whose file
  changed is restarted, and the module's apply unit changes only through its restartTriggers,
  the user's `unitsSha256` and `statesSha256` from manifest.json, plus the image when
  restartOnImageChange
  ($DEVBOX_TEST_IMAGE and $DEVBOX_TEST_RESTART_ON_IMAGE_CHANGE=1 stand in for
  services.devbox.image and .restartOnImageChange); a unit whose file is unchanged is left
  alone, unless it failed last time (Restart=on-failure retries it; here on the next switch).
  A removed user's unit is stopped, and its apply does not run.
- Output: switch-to-configuration's "stopping/restarting/starting the following units: …"
  lines; a failed unit: "warning: the following units failed: …" and exit 4.
What the last switch activated is kept beside the deployed tree (switched-units.json), as the
old system's unit files are on a real host.

It records which configuration the real one would build, chosen as nixos-rebuild(8) describes
(not re-read at the pinned version): `--flake FLAKE`; else /etc/nixos/flake.nix if it exists;
else `<nixos-config>` from `-I nixos-config=…`, then from NIX_PATH; else
/etc/nixos/configuration.nix. The environment's NIX_PATH is the caller's to choose unless
the program runs with root's fixed environment.

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


def usage_error(message: str) -> None:
    sys.stderr.write(f"nixos-rebuild: error: {message}\n")
    sys.exit(2)


def parse(argv: list[str]) -> None:
    """The command line devbox's rebuildCommand may hold: switch [--flake REF]."""
    words, index = [], 0
    while index < len(argv):
        arg = argv[index]
        index += 1
        if arg == "--flake":
            if index >= len(argv):
                usage_error("argument --flake: expected one argument")
            index += 1
        elif arg.startswith("--flake="):
            continue
        elif arg == "-I":
            if index >= len(argv):
                usage_error("argument -I/--include: expected one argument")
            index += 1
        elif arg.startswith("-"):
            usage_error(f"unrecognized arguments: {arg}")
        else:
            words.append(arg)
    if words != ["switch"]:
        usage_error(f"stand-in: only `switch` is implemented, not {' '.join(words) or 'nothing'}")


def configuration(argv: list[str]) -> str:
    """The configuration nixos-rebuild would build for this argv and environment."""
    if "--flake" in argv[:-1]:
        return "flake " + argv[argv.index("--flake") + 1]
    flake = next((arg.removeprefix("--flake=") for arg in argv if arg.startswith("--flake=")), None)
    if flake is not None:
        return "flake " + flake
    if Path("/etc/nixos/flake.nix").exists():
        return "flake /etc/nixos"
    search = [argv[i + 1] for i, word in enumerate(argv[:-1]) if word == "-I"]
    search += os.environ.get("NIX_PATH", "").split(":")
    for entry in search:
        if entry.startswith("nixos-config="):
            return entry.removeprefix("nixos-config=")
    return "/etc/nixos/configuration.nix"


def triggers(manifest: dict[str, object], user: str) -> list[str]:
    """The apply unit's restartTriggers, as the module sets them."""
    users = manifest["users"]
    assert isinstance(users, dict)
    found = [users[user]["unitsSha256"], users[user]["statesSha256"]]
    if os.environ.get("DEVBOX_TEST_RESTART_ON_IMAGE_CHANGE") == "1":
        found.append(os.environ["DEVBOX_TEST_IMAGE"])
    return found


def apply(deployed: Path, user: str) -> bool:
    """devbox-apply-<user>'s ExecStart, as the module writes it."""
    argv = [
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
    ]
    if os.environ.get("DEVBOX_TEST_RESTART_ON_IMAGE_CHANGE") == "1":
        argv += ["--image", os.environ["DEVBOX_TEST_IMAGE"], "--restart-on-image-change"]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    sys.stdout.write(result.stdout)
    if result.returncode != 0:
        sys.stdout.write(result.stderr)
    return result.returncode == 0


def main() -> None:
    record("nixos-rebuild", configuration=configuration(sys.argv[1:]))
    ruled("nixos-rebuild")
    parse(sys.argv[1:])
    generated = Path(os.environ["DEVBOX_TEST_GENERATED"])
    deployed = Path(os.environ["DEVBOX_TEST_DEPLOYED"])
    switched = deployed.with_name("switched-units.json")
    print("building the system configuration...", flush=True)
    previous = json.loads(switched.read_text()) if switched.is_file() else {}
    shutil.rmtree(deployed, ignore_errors=True)
    shutil.copytree(generated, deployed)
    manifest = json.loads((deployed / "manifest.json").read_text())
    print("activating the configuration...", flush=True)
    current = {
        f"devbox-apply-{user}.service": {"user": user, "triggers": triggers(manifest, user)}
        for user in sorted(manifest["users"])
    }
    stopped = sorted(set(previous) - set(current))
    restarted = [
        unit
        for unit, entry in current.items()
        if unit in previous
        and (previous[unit]["triggers"] != entry["triggers"] or previous[unit]["failed"])
    ]
    started = [unit for unit in current if unit not in previous]
    for verb, units in (("stopping", stopped), ("restarting", restarted), ("starting", started)):
        if units:
            print(f"{verb} the following units: {', '.join(units)}", flush=True)
    failed = []
    for unit in restarted + started:
        if not apply(deployed, str(current[unit]["user"])):
            failed.append(unit)
    switched.write_text(
        json.dumps(
            {
                unit: {
                    "triggers": entry["triggers"],
                    "failed": unit in failed
                    or (unit in previous and unit not in restarted and previous[unit]["failed"]),
                }
                for unit, entry in current.items()
            }
        )
    )
    if failed:
        print(f"warning: the following units failed: {', '.join(failed)}", flush=True)
        sys.exit(4)


main()
