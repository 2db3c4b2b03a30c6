"""`devbox-ctl apply`: after a switch or at boot, bring one user's containers to their run state.

NixOS re-executes each user's systemd manager on a switch (so Quadlet regenerates the
services from the new files) but restarts no user unit, and the units start nothing at boot
(they have no [Install] section). The module runs this at boot and whenever the user's units
or declared states changed. It compares the manifest with what it applied last time
(`<state-dir>/applied/<user>.json`) and with the host's run state (host/runstate.py), and,
through the user's manager: stops removed containers and those whose declared state changed
to stopped, starts new ones and those whose declared state changed to running, restarts
running containers whose units (or, if asked, image) changed, and starts every other container
whose run state is running (nothing for one that runs already; at boot, all of them).

A declared state that did not change since the last apply never overrides the run state:
`stop` and `start` record theirs on the host without a rebuild, so a later switch of a
declaration that does not include the change (an older tree, one changed elsewhere) keeps it,
and one that includes it finds nothing to do. apply records what it applied only when every
action succeeded, so a failed apply is retried in full.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devbox import write
from devbox.declare import manifest
from devbox.errors import InputError, Problem, ToolError
from devbox.host import runstate
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
    # Running by their run state, unchanged: started (nothing for a unit already active).
    keep_running: list[str] = field(default_factory=list)
    # The run state each container gets, where it differs from the host's record.
    run_states: dict[str, str] = field(default_factory=dict)

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
    run_states: dict[str, str | None] | None = None,
    *,
    image_changed: bool = False,
) -> Actions:
    """Decide per container: start, restart, stop, keep running, or nothing.

    run_states: the host's record per container (None: no record). A container's run state
    is its declared state when that changed since the last apply or the host has no record,
    else the host's record.
    """
    run_states = run_states or {}
    actions = Actions()
    for name in sorted(desired.keys() | applied.keys()):
        new, old = desired.get(name), applied.get(name)
        host = run_states.get(name)
        if new is None:
            if old is None:  # pragma: no cover - a name comes from one of the two
                continue
            actions.stop.append(old.service)
            actions.removed.append(name)
            actions.reasons[name] = "removed from the declaration"
            continue
        redeclared = old is not None and new.state != old.state
        run = new.state if redeclared or host is None else host
        if run != host:
            actions.run_states[name] = run
        before = host if host is not None else (old.state if old is not None else None)
        if run != runstate.RUNNING:
            if before == runstate.RUNNING:
                actions.stop.append(new.service)
                actions.reasons[name] = "declared stopped"
        elif before != runstate.RUNNING:
            actions.start.append(new.service)
            actions.reasons[name] = "new" if old is None else "declared running"
        elif old is not None and new.units != old.units:
            actions.restart.append(new.service)
            actions.reasons[name] = "its units changed"
        elif image_changed:
            actions.restart.append(new.service)
            actions.reasons[name] = "the image changed"
        else:
            actions.keep_running.append(new.service)
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
    with runstate.held(state_dir, user):
        recorded = {
            name: runstate.read(state_dir, user, name) for name in desired.keys() | applied.keys()
        }
        actions = plan_actions(
            desired, applied, recorded, image_changed=image_changed and bool(applied)
        )
        # The run state first: a kill from here on leaves the decision, which a rerun repeats.
        for name, state in actions.run_states.items():
            runstate.record(state_dir, user, name, state)
        _act(user, actions)
        for name in actions.removed:
            runstate.forget(state_dir, user, name)
        if entry is None:
            write.remove_file(record_path)
        else:
            write.write_file(record_path, _record(user, entry["uid"], desired, image), parents=True)
    return actions


def _act(user: str, actions: Actions) -> None:
    """Carry the actions out in the user's manager; a ToolError naming every one that failed."""
    systemd.daemon_reload(user)
    failed = []
    for unit in actions.stop:
        # One at a time: a unit the manager no longer knows (removed, already stopped) is not
        # a failure, and must not hide the failure of another.
        result = systemd.act(user, "stop", [unit])
        if not result.ok and not systemd.not_loaded(result):
            failed.append(f"stop {unit} ({result.stderr.strip() or result.returncode})")
    for verb, units in (
        ("restart", actions.restart),
        ("start", actions.start + actions.keep_running),
    ):
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
