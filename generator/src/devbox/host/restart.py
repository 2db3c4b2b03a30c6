"""`devbox-ctl apply`: after a switch, restart exactly the containers whose units changed.

NixOS re-executes each user's systemd manager on a switch (so Quadlet regenerates the
services from the new files) but restarts no user unit. The module runs this once per user
whenever that user's units changed. It compares the manifest with what it applied last time
(`<state-dir>/applied/<uid>.json`) and, through the user's manager: restarts running
containers whose units (or, if asked, image) changed, starts new or newly running ones, stops
removed or newly stopped ones, and leaves every other container alone. It records what it
applied only when every action succeeded, so a failed apply is retried in full.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devbox import write
from devbox.declare import manifest
from devbox.errors import InputError, Problem, ToolError
from devbox.tools import process, systemd

RECORD_VERSION = 1


@dataclass(frozen=True)
class Deployed:
    """What one container looks like to apply: its service, state and unit hashes."""

    service: str
    state: str
    units: dict[str, str]


@dataclass
class Actions:
    """What apply does in the user's manager, each list in the order it runs."""

    stop: list[str] = field(default_factory=list)
    restart: list[str] = field(default_factory=list)
    start: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)  # container names whose units are gone
    reasons: dict[str, str] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        """Whether nothing needs doing."""
        return not (self.stop or self.restart or self.start)


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest the module installed, checked for a version this devbox reads."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError([Problem(str(path), "", f"cannot be read ({exc})", "")]) from exc
    if not isinstance(document, dict) or document.get("version") != manifest.VERSION:
        raise InputError([Problem(str(path), "version", "is not a manifest this devbox reads", "")])
    return document


def desired_for(document: dict[str, Any], user: str) -> dict[str, Deployed]:
    """The user's containers in the manifest (none if the user is gone)."""
    files = document["files"]
    return {
        name: Deployed(
            service=entry["service"],
            state=entry["state"],
            units={unit: files[unit]["sha256"] for unit in entry["units"]},
        )
        for name, entry in document["containers"].items()
        if entry["owner"] == user
    }


def read_record(path: Path) -> tuple[dict[str, Deployed], str | None]:
    """What was applied last time, and the image it was applied with."""
    if not path.is_file():
        return {}, None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        containers = {
            name: Deployed(entry["service"], entry["state"], dict(entry["units"]))
            for name, entry in record["containers"].items()
        }
    except (OSError, ValueError, KeyError, TypeError):
        # An unreadable record is treated as none: apply starts what should run (a no-op
        # for a running unit) and restarts nothing it cannot prove changed.
        return {}, None
    image = record.get("image")
    return containers, image if isinstance(image, str) else None


def plan_actions(
    desired: dict[str, Deployed],
    applied: dict[str, Deployed],
    *,
    image_changed: bool = False,
) -> Actions:
    """Decide per container: start, restart, stop, or nothing."""
    actions = Actions()
    for name in sorted(desired.keys() | applied.keys()):
        new, old = desired.get(name), applied.get(name)
        if new is None and old is not None:
            actions.stop.append(old.service)
            actions.removed.append(name)
            actions.reasons[name] = "removed from the declaration"
        elif new is not None and new.state != "running":
            if old is not None and old.state == "running":
                actions.stop.append(new.service)
                actions.reasons[name] = "declared stopped"
        elif new is not None and (old is None or old.state != "running"):
            actions.start.append(new.service)
            actions.reasons[name] = "new" if old is None else "declared running"
        elif new is not None and old is not None and new.units != old.units:
            actions.restart.append(new.service)
            actions.reasons[name] = "its units changed"
        elif new is not None and image_changed:
            actions.restart.append(new.service)
            actions.reasons[name] = "the image changed"
    return actions


def _record(user: str, uid: int, desired: dict[str, Deployed], image: str | None) -> bytes:
    document = {
        "version": RECORD_VERSION,
        "user": user,
        "uid": uid,
        "image": image,
        "containers": {
            name: {"service": d.service, "state": d.state, "units": d.units}
            for name, d in sorted(desired.items())
        },
    }
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()


def _remove_leftover(user: str, name: str) -> str | None:
    """A removed container whose unit is already gone may still run: remove it by name.

    None when it is gone (or was never there); else what failed, for the apply's error.

    podman by its absolute path on the apply unit's PATH (the module puts podman there): the
    user's manager would not find a bare name.
    """
    podman = process.absolute("podman")
    result = systemd.run_in_user_manager(user, [podman, "rm", "--force", "--ignore", name])
    if not result.ok:
        return f"remove {name} ({result.stderr.strip() or result.returncode})"
    return None


def run(
    manifest_path: Path,
    user: str,
    state_dir: Path,
    *,
    image: str | None = None,
    restart_on_image_change: bool = False,
) -> Actions:
    """Apply the manifest to one user's containers; raise ToolError if an action failed."""
    document = read_manifest(manifest_path)
    entry = document["users"].get(user)
    record_path = state_dir / "applied" / f"{user}.json"
    desired = desired_for(document, user)
    applied, applied_image = read_record(record_path)
    image_changed = restart_on_image_change and image is not None and image != applied_image
    actions = plan_actions(desired, applied, image_changed=image_changed and bool(applied))
    systemd.daemon_reload(user)
    failed = []
    for unit in actions.stop:
        # One at a time: a unit the manager no longer knows (removed, already stopped) is not
        # a failure, and must not hide the failure of another.
        result = systemd.act(user, "stop", [unit])
        if not result.ok and not systemd.not_loaded(result):
            failed.append(f"stop {unit} ({result.stderr.strip() or result.returncode})")
    for verb, units in (("restart", actions.restart), ("start", actions.start)):
        if not units:
            continue
        result = systemd.act(user, verb, units)
        if not result.ok:
            # systemctl's own words (e.g. "Unit … not found", "Job … failed") say where to look.
            failed.append(
                f"{verb} {' '.join(units)} ({result.stderr.strip() or result.returncode})"
            )
    for name in actions.removed:
        left = _remove_leftover(user, name)
        if left is not None:
            failed.append(left)
    if failed:
        raise ToolError(
            f"apply for {user} failed: {'; '.join(failed)}",
            hint=f"journalctl --user -M {user}@ -u <service>; nothing was recorded, the next "
            "apply retries everything",
        )
    if entry is None:
        write.remove_file(record_path)
    else:
        write.write_file(record_path, _record(user, entry["uid"], desired, image), parents=True)
    return actions
