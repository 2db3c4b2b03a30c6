"""Stands in for a user's systemd manager (`systemctl --user --machine=<user>@ …`).

Follows systemctl of systemd 259 (nixos-26.05); docs/tools-checked.md names the sources. The
command line is parsed as src/systemctl/systemctl.c parses it (systemd_cli.py): a refused
option exits 1 with getopt's message. Only user managers are reachable (the test machine has
no systemd as PID 1): without --user and --machine=USER@ it fails as systemctl fails here.

No systemd user manager runs here. For the container services Quadlet makes of the deployed
units, it does what the manager would: `start` runs the exact podman commands of the services
that real Quadlet generates from $DEVBOX_TEST_DEPLOYED/users/<uid>/ (the volume's, then the
container's, with systemd's specifiers and escapes resolved), `stop` stops and removes the
container, `restart` both; `show --property=…` prints `NAME=VALUE` lines in systemd's order
(the Service interface's properties, then the Unit's) and timestamps in systemd's format,
"Sat 2026-11-28 08:14:19 UTC": `%a %Y-%m-%d %H:%M:%S` and the zone abbreviation, in the
caller's time zone (format_timestamp_style() in src/basic/time-util.c, TIMESTAMP_PRETTY;
the same bytes as `systemd-analyze timestamp` of systemd 252 here). An unknown verb: "Unknown
command verb VERB.", exit 1. `--cgroups=split` and `--sdnotify=conmon` are dropped: they need
systemd as the cgroup manager and notify socket. Quadlet 5.4 writes `volume create --ignore`,
which this machine's podman 4.3 lacks: an existing volume is left as it is instead, which is
what --ignore means.

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

from systemd_cli import RefusedError, parse_systemctl, refuse, systemd_timestamp

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
            "{{.State.Status}}|{{.State.StartedAt.Unix}}|{{.State.ExitCode}}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        return {"status": "missing", "started": "", "exit": "0"}
    status, started, exit_code = result.stdout.strip().split("|")
    return {"status": status, "started": started, "exit": exit_code}


# systemctl's verbs (`systemctl --help`); the stand-in implements daemon-reload, start, stop,
# restart and show, and says so for the others rather than pretend.
VERBS = {
    "list-units",
    "list-automounts",
    "list-sockets",
    "list-timers",
    "is-active",
    "is-failed",
    "status",
    "show",
    "cat",
    "help",
    "list-dependencies",
    "start",
    "stop",
    "reload",
    "restart",
    "try-restart",
    "reload-or-restart",
    "try-reload-or-restart",
    "isolate",
    "kill",
    "clean",
    "freeze",
    "thaw",
    "set-property",
    "bind",
    "mount-image",
    "service-log-level",
    "service-log-target",
    "reset-failed",
    "list-unit-files",
    "enable",
    "disable",
    "reenable",
    "preset",
    "preset-all",
    "is-enabled",
    "mask",
    "unmask",
    "link",
    "revert",
    "add-wants",
    "add-requires",
    "edit",
    "get-default",
    "set-default",
    "list-machines",
    "list-jobs",
    "cancel",
    "show-environment",
    "set-environment",
    "unset-environment",
    "import-environment",
    "daemon-reload",
    "daemon-reexec",
    "log-level",
    "log-target",
    "service-watchdogs",
    "is-system-running",
    "default",
    "rescue",
    "emergency",
    "halt",
    "poweroff",
    "reboot",
    "kexec",
    "exit",
    "switch-root",
    "suspend",
    "hibernate",
    "hybrid-sleep",
    "suspend-then-hibernate",
}

# The properties this stand-in knows, in the order systemctl show prints them.
SHOWN = ("Result", "ExecMainStatus", "ActiveState", "SubState", "ActiveEnterTimestamp")


def show(unit: str, wanted: list[str]) -> None:
    state = podman_state(unit.removeprefix("container-").removesuffix(".service"))
    running = state["status"] == "running"
    failed = state["status"] == "exited" and state["exit"] not in ("0", "")
    values = {
        "Result": "exit-code" if failed else "success",
        "ExecMainStatus": state["exit"] if state["status"] != "missing" else "0",
        "ActiveState": "active" if running else ("failed" if failed else "inactive"),
        "SubState": "running" if running else ("failed" if failed else "dead"),
        "ActiveEnterTimestamp": systemd_timestamp(state["started"]),
    }
    unknown = [name for name in wanted if name not in values]
    if unknown:
        refuse(f"stand-in: systemctl show of {', '.join(unknown)} is not implemented")
    for name in SHOWN:
        if not wanted or name in wanted:
            print(f"{name}={values[name]}")


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
try:
    parsed = parse_systemctl(sys.argv[1:])
except RefusedError as exc:
    refuse(str(exc))
machine = parsed.value("machine") or ""
if not parsed.has("user") or not machine.endswith("@") or len(machine) < 2:
    refuse(
        "System has not been booted with systemd as init system (PID 1). Can't operate.\n"
        "Failed to connect to bus: Host is down"
    )
user = machine.removesuffix("@")
verb, units = (parsed.words[0], parsed.words[1:]) if parsed.words else ("list-units", [])
ok = True
if verb == "daemon-reload":
    pass
elif verb in ("start", "stop", "restart"):
    if not units:
        refuse("Too few arguments.")
    for unit in units:  # every unit is acted on, as systemd does, even after a failure
        if verb in ("stop", "restart"):
            ok = stop(user, unit) and ok
        if verb in ("start", "restart"):
            ok = start(user, unit) and ok
elif verb == "show":
    wanted = [name for value in parsed.options.get("property", []) for name in value.split(",")]
    show(units[0], wanted)
elif verb in VERBS:
    refuse(f"stand-in: systemctl {verb} is not implemented")
else:
    refuse(f"Unknown command verb {verb}.")
sys.exit(0 if ok else 1)
