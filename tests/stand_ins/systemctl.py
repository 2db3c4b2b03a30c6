"""Stands in for a user's systemd manager (`systemctl --user --machine=<user>@ …`).

No systemd user manager runs here. For the container services Quadlet makes of the deployed
units, it does what the manager would: `start` runs the exact podman commands of the services
that real Quadlet generates from $DEVBOX_TEST_DEPLOYED/users/<uid>/ (the volume's, then the
container's, with systemd's specifiers and escapes resolved), `stop` stops and removes the
container, `restart` both, `show` reports ActiveState from podman. `--cgroups=split` and
`--sdnotify=conmon` are dropped: they need systemd as the cgroup manager and notify socket.
Quadlet 5.4 writes `volume create --ignore`, which this machine's podman 4.3 lacks: an
existing volume is left as it is instead, which is what --ignore means.

Kept for the fast suite (runs in seconds, on any machine); the real user managers run in
the host test (tests/system/), which exercises the same verbs end to end.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from common import record, ruled

DROPPED = {"--cgroups=split", "--sdnotify=conmon"}


def services(unit_dir: Path) -> dict[str, str]:
    """Quadlet's services for a directory: service name → its text."""
    output = subprocess.run(
        [os.environ["DEVBOX_QUADLET"], "-dryrun", "-user"],
        env={**os.environ, "QUADLET_UNIT_DIRS": str(unit_dir)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found = {}
    for match in re.finditer(r"^---(.+?)---\n(.*?)(?=^---|\Z)", output, re.MULTILINE | re.DOTALL):
        found[match.group(1)] = match.group(2)
    return found


def exec_start(text: str, service: str, key: str = "ExecStart") -> list[str]:
    """ExecStart= (or another Exec line) as systemd would run it: specifiers and $$ resolved,
    words unquoted, a leading "-" (ignore failure) dropped."""
    line = next(row for row in text.splitlines() if row.startswith(f"{key}="))
    name = service.removesuffix(".service")
    value = line.removeprefix(f"{key}=").removeprefix("-")
    value = value.replace("%t", os.environ["DEVBOX_TEST_RUNTIME"]).replace("%N", name)
    value = value.replace("%n", service).replace("%%", "%").replace("$$", "$")
    return [word for word in shlex.split(value) if word not in DROPPED]


def unit_dir_of(user: str) -> Path:
    deployed = Path(os.environ["DEVBOX_TEST_DEPLOYED"]) / "manifest.json"
    if not deployed.is_file():  # nothing applied yet: the user's manager knows no devbox unit
        return Path(os.environ["DEVBOX_TEST_RUNTIME"]) / "no-units"
    manifest = json.loads(deployed.read_text())
    uid = manifest["users"][user]["uid"]
    return Path(os.environ["DEVBOX_TEST_DEPLOYED"]) / "users" / str(uid)


def podman_state(container: str) -> dict[str, str]:
    result = subprocess.run(
        [
            "podman",
            "container",
            "inspect",
            container,
            "--format",
            "{{.State.Status}} {{.State.StartedAt}}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return {
        "status": result.stdout.split(" ")[0] if result.returncode == 0 else "missing",
        "started": " ".join(result.stdout.split(" ")[1:]).strip(),
    }


def start(user: str, service: str) -> bool:
    generated = services(unit_dir_of(user))
    if service not in generated:
        sys.stderr.write(f"Failed to start {service}: Unit {service} not found.\n")
        return False
    if (
        podman_state(service.removeprefix("container-").removesuffix(".service"))["status"]
        == "running"
    ):
        return True
    for volume in re.findall(r"^Requires=(\S+-volume\.service)$", generated[service], re.MULTILINE):
        command = [word for word in exec_start(generated[volume], volume) if word != "--ignore"]
        if subprocess.run(["podman", "volume", "exists", command[-1]], check=False).returncode != 0:
            subprocess.run(command, check=True, capture_output=True)
    run = subprocess.run(
        exec_start(generated[service], service), capture_output=True, text=True, check=False
    )
    if run.returncode != 0:
        sys.stderr.write(f"Job for {service} failed: {run.stderr}")
    return run.returncode == 0


def stop(user: str, service: str) -> bool:
    """ExecStop= and ExecStopPost= of the generated service (they also remove the cid file)."""
    generated = services(unit_dir_of(user)).get(service)
    container = service.removeprefix("container-").removesuffix(".service")
    if generated is None and podman_state(container)["status"] == "missing":
        sys.stderr.write(f"Failed to stop {service}: Unit {service} not loaded.\n")
        sys.exit(5)
    stopping = ["podman", "stop", "--ignore", "-t", "2", container]
    subprocess.run(stopping, capture_output=True, check=False)
    if generated is None:  # a removed unit: what is left of it goes by name
        removing = ["podman", "rm", "--force", "--ignore", container]
        subprocess.run(removing, capture_output=True, check=False)
        return True
    for key in ("ExecStop", "ExecStopPost"):
        subprocess.run(exec_start(generated, service, key), capture_output=True, check=False)
    # podman 5 removes the --cidfile it was given on `rm`; this machine's podman 4.3 leaves it.
    Path(os.environ["DEVBOX_TEST_RUNTIME"], f"{service.removesuffix('.service')}.cid").unlink(
        missing_ok=True
    )
    return True


record("systemctl")
ruled("systemctl")
args = [a for a in sys.argv[1:] if a not in ("--user", "--no-ask-password", "--no-block")]
user = next(a for a in args if a.startswith("--machine=")).removeprefix("--machine=").rstrip("@")
args = [a for a in args if not a.startswith("--machine=")]
verb, units = args[0], [a for a in args[1:] if not a.startswith("--")]
ok = True
if verb in ("start", "stop", "restart"):
    for unit in units:  # every unit is acted on, as systemd does, even after a failure
        if verb in ("stop", "restart"):
            ok = stop(user, unit) and ok
        if verb in ("start", "restart"):
            ok = start(user, unit) and ok
elif verb == "show":
    state = podman_state(units[0].removeprefix("container-").removesuffix(".service"))
    active = "active" if state["status"] == "running" else "inactive"
    print(f"ActiveState={active}\nSubState={'running' if active == 'active' else 'dead'}")
    print(f"ActiveEnterTimestamp={state['started']}")
sys.exit(0 if ok else 1)
