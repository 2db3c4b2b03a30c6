"""What `list` and `status` show: each container as declared and as it really is.

The declared side is containers.json (resolved); the actual side is podman's view of the
container and its volume and key secret, the systemd unit, the Tailscale node, whether the
last declaration has been applied, and the lifecycle assessment (last activity, when idle
stop and auto-destroy would happen). Where the two sides disagree, the view says so in plain
words with the command that resolves it.
"""

from __future__ import annotations

import json
import os
import pwd
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from devbox import clock, volume
from devbox.declare import resolve
from devbox.declare.resolve import Container
from devbox.errors import ToolError, UsageError
from devbox.escaping import shown
from devbox.host import events, rebuild
from devbox.host.context import Runtime
from devbox.lifecycle import assessment, policy, snapshot_quota, snapshots
from devbox.runtime import reach
from devbox.tools import systemd, tailscale
from devbox.tools.podman import Podman


@dataclass
class View:
    """One container, declared and actual."""

    container: Container
    actual: str  # running | stopped | missing (no container) | unknown
    started_at: str | None = None
    volume: bool | None = True  # None: podman could not tell
    secret: bool | None = True
    applied: bool | None = None  # None: no deployed manifest to compare with
    assessment: policy.Assessment | None = None
    node: tailscale.NodeState | None = None
    unit: dict[str, str] = field(default_factory=dict)
    shadows: list[str] = field(default_factory=list)
    disagreements: list[str] = field(default_factory=list)
    unknown: str = ""  # why its activity was not read (a time budget ran out)
    probe: str = ""  # why podman could not tell its container, volume and secret

    def active_since(self) -> datetime | None:
        """When the unit became active, if it is and its manager says when."""
        if self.unit.get("ActiveState") != "active":
            return None
        return systemd.timestamp(self.unit.get("ActiveEnterTimestamp", ""))

    def as_json(self) -> dict[str, Any]:
        """The view as --json prints it."""
        c, a = self.container, self.assessment
        return {
            "name": c.name,
            "owner": c.owner,
            "declared": c.state,
            "actual": self.actual,
            "cpu": c.cpu,
            "memory": c.memory,
            "syncthing": c.syncthing,
            "created": clock.timestamp(c.created),
            "startedAt": self.started_at,
            "stoppedAt": clock.timestamp(c.stopped_at),
            "pin": resolve.pin_json(c.pin),
            "lastActivity": last_activity(a),
            "idleStopAt": clock.timestamp(a.stop_at) if a else None,
            "destroyAt": clock.timestamp(a.destroy_at) if a else None,
            "volume": self.volume,
            "keySecret": self.secret,
            "applied": self.applied,
            "tailscale": None
            if self.node is None
            else {
                "state": self.node.backend,
                "dnsName": self.node.dns_name,
                "addresses": list(self.node.addresses),
            },
            "unit": self.unit,
            "shadowedBy": self.shadows,
            "disagreements": self.disagreements,
            "unknown": self.unknown or None,
        }


def last_activity(a: policy.Assessment | None) -> str | None:
    """The last activity as list and status --json show it; "unknown" when it was not read.

    The policy counts activity it cannot read as activity now (nothing is stopped for it),
    but that is a decision, not a time anyone was active: it is never shown as one.
    """
    if a is None:
        return None
    return UNKNOWN if a.activity_unknown else clock.timestamp(a.last_activity)


# What a time is shown as when it could not be read (as a fleet's rows say it, fleet_views).
UNKNOWN = "unknown"


def listed(rt: Runtime, *, all_users: bool) -> list[Container]:
    """The containers the caller lists: their own, or (admins, --all) every one."""
    containers = rt.desired.containers
    if all_users and rt.caller.admin:
        return list(containers)
    return [c for c in containers if c.owner == rt.caller.name]


def _deployed(rt: Runtime) -> dict[str, Any] | None:
    path = rt.config.deployed_manifest
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, ValueError):
        return None


def _applied(
    container: Container, deployed: dict[str, Any] | None, files: dict[str, Any]
) -> bool | None:
    if deployed is None:
        return None
    deployed_files = deployed.get("files", {})
    return all(
        deployed_files.get(unit, {}).get("sha256") == files[unit]["sha256"]
        for unit in (container.container_file, container.volume_file)
    )


# The owner's own Quadlet directory is theirs: it is read through volume.py (opened without
# following links, as the owner, within a budget), a few levels deep, a few files, the first
# UNIT_BYTES of each.
QUADLET_DIRECTORY = PurePosixPath(".config/containers/systemd")
UNIT_BYTES = 64 << 10
MAX_UNIT_DIRECTORIES = 100
SHADOW_BUDGET_SECONDS = 10


def _head(root: int, relative: str) -> str:
    return volume.head_below(root, relative, UNIT_BYTES).decode("utf-8", "replace")


def shadowing_files(container: Container) -> list[str]:
    """The owner's own Quadlet files that would take the place of the devbox units.

    Quadlet prefers ~/.config/containers/systemd/ over /etc: a file there with a devbox unit's
    name, or one making the same service, wins silently.
    """
    try:
        user = pwd.getpwnam(container.owner)
    except KeyError:
        return []
    home = Path(user.pw_dir)
    budget = volume.Budget.of(SHADOW_BUDGET_SECONDS, f"the {SHADOW_BUDGET_SECONDS} s to look")
    service = container.service.removesuffix(".service")
    ours = {Path(container.container_file).name, Path(container.volume_file).name}

    def look(root: int) -> list[str]:
        try:
            top = volume.open_below(root, volume.parts_of(QUADLET_DIRECTORY))
        except OSError:
            return []
        found = []
        try:
            for here, entries in volume.walk(
                top, max_depth=4, max_directories=MAX_UNIT_DIRECTORIES
            ):
                for entry in entries:
                    if not entry.is_file(follow_symlinks=False):
                        continue
                    relative = "/".join((*here, entry.name))
                    same = entry.name.endswith(".container") and (
                        entry.name == f"{service}.container"
                        or f"ServiceName={service}" in _head(top, relative)
                    )
                    if entry.name in ours or same:
                        found.append(relative)
        finally:
            os.close(top)
        return found

    try:
        with volume.open_home(user.pw_uid, user.pw_gid, home, budget) as tree:
            found = tree.call(look)
    except volume.Unreadable:
        return []
    return [shown(f"{home / QUADLET_DIRECTORY}/{relative}") for relative in found]


def _explain(view: View, rebuild_command: str) -> list[str]:
    c = view.container
    said = []
    if view.probe:
        said.append(
            f"podman could not tell its state ({view.probe}): nothing is assumed about it; "
            f"devbox-ctl status {c.name} asks again"
        )
    if view.secret is False:
        said.append(
            f"its key secret {c.secret} is missing, so it cannot start: devbox-ctl rotate-key "
            f"{c.name} (or devbox-ctl create {c.name} again to finish an interrupted create)"
        )
    if view.volume is False:
        said.append(
            f"its volume {c.volume} does not exist (it is created empty when the container starts)"
        )
    if view.applied is False:
        said.append(f"the declaration is not applied yet: sudo {rebuild_command}")
    if c.state == "running" and view.actual not in ("running", "unknown"):
        # A container that is gone took its podman logs with it (Quadlet's --rm).
        why = (
            f"devbox-ctl logs {c.name} shows why"
            if view.actual == "stopped"
            else f"its unit's journal shows why: {reach.journal(c)}"
        )
        said.append(
            f"declared running but it is {view.actual}: {why}; devbox-ctl start {c.name} starts it"
        )
    if c.state == "stopped" and view.actual == "running":
        said.append(f"declared stopped but it is running: devbox-ctl stop {c.name}")
    said += [
        f"{path} takes the place of the devbox unit: rename or remove it" for path in view.shadows
    ]
    if view.unknown:
        said.append(
            f"its activity is unknown ({view.unknown} while reading its volume): it counts as "
            f"activity now, so nothing is stopped or destroyed for it; devbox-ctl status "
            f"{c.name} --why reads it again"
        )
    return said


@dataclass(frozen=True)
class Trees:
    """The generated and the deployed manifest's files, read once for every view."""

    generated: dict[str, Any]
    deployed: dict[str, Any] | None

    @classmethod
    def read(cls, rt: Runtime) -> Trees:
        """Read both manifests (on a fleet member the deployed one is the declaration)."""
        if rt.deployed_only:
            deployed = _deployed(rt)
            return cls((deployed or {}).get("files", {}), deployed)
        manifest = json.loads((rt.config.paths.out / "manifest.json").read_text(encoding="utf-8"))
        return cls(manifest["files"], _deployed(rt))


# list's time budgets for reading volumes, nested (volume.Budget's `within`): a container's
# is cut short by its owner's, which is cut short by the list's. The owners are read one after
# the other, each budget starting at their first container, so a user whose volumes stall
# spends at most LIST_USER_BUDGET_SECONDS, and the users after them still have the list's rest
# (at least LIST_BUDGET - LIST_USER, another user's full share). What is not read in time is
# unknown: the container's real state (podman's) is still shown, its activity is unknown with
# the budget named. status reads one container: its budget, then the owner's Quadlet files.
# A host's list and status are bounded by these (and podman's own timeouts); a fleet's control
# host waits longer for them (host/fleet.py READ_TIMEOUT; tests/runtime/test_budgets.py).
LIST_CONTAINER_BUDGET_SECONDS = 30
LIST_USER_BUDGET_SECONDS = 60
LIST_BUDGET_SECONDS = 120
STATUS_BUDGET_SECONDS = assessment.CONTAINER_BUDGET_SECONDS + SHADOW_BUDGET_SECONDS


def views(rt: Runtime, containers: list[Container], now: datetime) -> list[View]:
    """The views of several containers (list), in their order; read owner by owner.

    Each owner's podman is asked once for all of that owner's containers, volumes and secrets
    (Podman.holdings), not once per container. Each owner's volumes are read within their own
    budget inside the list's, so one user's stalls leave the others' containers read.
    """
    trees = Trees.read(rt)
    seconds = LIST_BUDGET_SECONDS
    budget = volume.Budget.of(seconds, f"list's time budget of {seconds} s")
    owners = sorted({container.owner for container in containers})
    read = {owner: rt.podman(owner).holdings() for owner in owners}
    found: dict[int, View] = {}
    with rt.knowing({owner: held for owner, held in read.items() if held is not None}):
        for owner in owners:
            share = LIST_USER_BUDGET_SECONDS
            theirs = volume.Budget.of(
                share, f"the time budget of {share} s for {owner}'s containers", within=budget
            )
            for index, container in enumerate(containers):
                if container.owner == owner:
                    found[index] = view(
                        rt,
                        container,
                        now,
                        trees=trees,
                        within=theirs,
                        seconds=LIST_CONTAINER_BUDGET_SECONDS,
                    )
    return [found[index] for index in range(len(containers))]


def view(
    rt: Runtime,
    container: Container,
    now: datetime,
    *,
    detail: bool = False,
    trees: Trees | None = None,
    within: volume.Budget | None = None,
    seconds: float | None = None,
) -> View:
    """The declared and the actual side of one container.

    Its volume is read within `seconds` (by default assessment.CONTAINER_BUDGET_SECONDS),
    cut short by `within`; when that ran out its activity is unknown, and the view says so.
    """
    trees = trees or Trees.read(rt)
    podman = rt.podman(container.owner)
    try:
        result = _probed(podman, container)
    except ToolError as exc:
        # Its owner's podman could not tell (their manager unreachable, a podman failure):
        # the container, its volume and its key are unknown, never missing, and its volume
        # is not read; the others of the list are still shown.
        result = View(container, "unknown", volume=None, secret=None, probe=shown(exc.message))
    result.applied = _applied(container, trees.deployed, trees.generated)
    seconds = assessment.CONTAINER_BUDGET_SECONDS if seconds is None else seconds
    budget = volume.Budget.of(seconds, f"its time budget of {seconds:g} s", within=within)
    if result.probe:
        result.assessment = policy.failed(now, result.probe)
    else:
        result.assessment = assessment.assess(rt, container, now, budget)
    if budget.deadline <= time.monotonic():
        result.unknown = f"{budget.what} ran out"
    if detail and not result.probe:
        result.unit = systemd.properties(
            container.owner,
            container.service,
            ["ActiveState", "SubState", "Result", "ExecMainStatus", "ActiveEnterTimestamp"],
        )
        if result.actual == "running":
            result.node = tailscale.node_state(podman, container.name)
        result.shadows = shadowing_files(container)
    result.disagreements = _explain(result, rebuild.command_line(rt.config))
    return result


def _probed(podman: Podman, container: Container) -> View:
    """The container, its volume and its key secret as its owner's podman says them."""
    inspected = podman.inspect_container(container.name)
    status = podman.status_of(inspected)
    actual = "running" if status == "running" else ("missing" if inspected is None else "stopped")
    started_at = inspected.get("State", {}).get("StartedAt") if inspected else None
    result = View(container, actual, started_at=started_at)
    result.volume = podman.volume_exists(container.volume)
    result.secret = podman.secret_exists(container.secret)
    return result


def event_log(rt: Runtime, *, container: str | None, since: str | None) -> list[dict[str, Any]]:
    """`events`: the log's events the caller may see, of one container, from a time.

    Users see their containers' events, admins all. `since` is a time (2026-11-20,
    2026-11-20T09:00:00Z) or an age (48h, 7d).
    """
    owners = {c.name: c.owner for c in rt.desired.containers}

    def may_see(event: dict[str, Any]) -> bool:
        owner = event.get("owner") or owners.get(str(event.get("container")))
        return rt.caller.admin or owner == rt.caller.name

    start = _since(since) if since else None
    return events.select(
        events.read(rt.config.events_file), container=container, since=start, may_see=may_see
    )


def _since(text: str) -> str:
    try:
        return clock.timestamp(clock.now() - clock.parse_duration(text)) or ""
    except UsageError:
        pass
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"--since {text!r} is neither a time nor an age",
            hint="write 2026-11-20, 2026-11-20T09:00:00Z, 48h or 7d",
        ) from None
    parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return clock.timestamp(parsed.astimezone(UTC)) or ""


def event_line(event: dict[str, Any]) -> str:
    """One event as `events` prints it, every value escaped.

    Events quote what users wrote (reasons, errors from their volumes).
    """
    rest = {k: v for k, v in event.items() if k not in ("time", "action", "container", "actor")}
    details = " ".join(
        shown(
            f"{key}={value if isinstance(value, str) else json.dumps(value, sort_keys=True)}", 2000
        )
        for key, value in sorted(rest.items())
        if key not in ("signals", "policy")
    )
    head = f"{shown(event.get('time', '?'))}  {shown(event.get('action', '?')):<16} "
    head += f"{shown(event.get('container', '?')):<20} by {shown(event.get('actor', '?'))}"
    return head + (f"  {details}" if details else "")


@dataclass(frozen=True)
class SnapshotOverview:
    """`snapshots`: the snapshots the caller may see, and the quotas of them and the host."""

    shown: list[snapshots.Snapshot]
    quotas: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        """`snapshots --json`."""
        return {
            "snapshots": [s.description() | {"path": str(s.path)} for s in self.shown],
            "quotas": self.quotas,
        }


def snapshot_overview(rt: Runtime) -> SnapshotOverview:
    """The caller's snapshots (admins: all), and the quotas of their owners and the caller."""
    shown = snapshots.of_caller(rt)
    own = {rt.caller.name} if rt.caller.name in rt.desired.users else set()
    owners = sorted({s.owner for s in shown} | own)
    return SnapshotOverview(shown, snapshot_quota.summary(rt, owners, snapshots.every(rt)))


def status_json(view: View, *, why: bool) -> dict[str, Any]:
    """`status --json`: the view, and with --why the lifecycle's action, reasons and signals."""
    document = view.as_json()
    if why and view.assessment is not None:
        a = view.assessment
        document["why"] = {"action": a.action, "reasons": a.reasons, "signals": a.signals}
    return document
