"""`plan`: the semantic change a rebuild would make, from the resolved models, not from text.

The old side is what the committed generated tree deploys (its manifest.json records every
container's resolved settings and every unit's hash); the new side is what the inputs now
resolve to. deepdiff gives the field-level changes; the unit hashes say whether the container
restarts, since the NixOS module restarts exactly the containers whose units changed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devbox.declare import generated_tree, manifest
from devbox.declare.resolve import Desired
from devbox.errors import InputError, Problem


@dataclass(frozen=True)
class FieldChange:
    """One field that differs: its path (e.g. `pin.until`), old and new value."""

    field: str
    old: Any
    new: Any


@dataclass
class ContainerChange:
    """A container a rebuild would add, remove or change, and what happens to it."""

    name: str
    owner: str
    action: str  # added | removed | changed
    effect: str  # starts | restarts | stops | no restart | …
    fields: list[FieldChange] = field(default_factory=list)

    @property
    def restarts(self) -> bool:
        """Whether a running container goes down and comes back."""
        return self.effect == "restarts"


@dataclass
class Plan:
    """Everything a rebuild would change."""

    containers: list[ContainerChange] = field(default_factory=list)
    unchanged: int = 0
    settings: list[FieldChange] = field(default_factory=list)
    users: list[FieldChange] = field(default_factory=list)
    other_files: list[str] = field(default_factory=list)
    first: bool = False  # no generated tree yet: everything is new
    # Files on disk that are not what manifest.json records (edited, added or deleted by hand):
    # the next `generate` rewrites them, and a rebuild now would deploy the edits.
    drifted: list[str] = field(default_factory=list)
    # A fleet's plan is one plan per host (its slice); the fields above then stay empty.
    hosts: dict[str, Plan] = field(default_factory=dict)
    # One host becoming a fleet: the generated tree is still a single host's (from_single),
    # and the host whose slice it becomes, when the declaration tells (former_host).
    from_single: bool = False
    former_host: str | None = None

    @property
    def changed(self) -> bool:
        """Whether a rebuild would change anything, or the tree is not what it records."""
        return bool(
            self.containers
            or self.settings
            or self.users
            or self.other_files
            or self.drifted
            or any(host.changed for host in self.hosts.values())
        )

    def of(self, action: str) -> list[ContainerChange]:
        """The container changes of one action."""
        return [c for c in self.containers if c.action == action]


def as_json(plan: Plan) -> dict[str, Any]:
    """`plan --json`: the plan as one JSON document."""

    def fields(changes: list[FieldChange]) -> list[dict[str, Any]]:
        return [{"field": c.field, "old": c.old, "new": c.new} for c in changes]

    fleet = {
        "hosts": {name: as_json(host) for name, host in plan.hosts.items()},
        "fromSingleHost": plan.from_single,
        "formerHost": plan.former_host,
    }
    return (fleet if plan.hosts else {}) | {
        "changed": plan.changed,
        "containers": [
            {
                "name": c.name,
                "owner": c.owner,
                "action": c.action,
                "effect": c.effect,
                "restarts": c.restarts,
                "fields": fields(c.fields),
            }
            for c in plan.containers
        ],
        "unchanged": plan.unchanged,
        "users": fields(plan.users),
        "settings": fields(plan.settings),
        "otherFiles": plan.other_files,
        "drifted": plan.drifted,
        "first": plan.first,
    }


def _nothing() -> dict[str, Any]:
    """The manifest of a tree that does not exist yet."""
    return {"settings": {}, "users": {}, "containers": {}, "files": {}}


def read_old(out: Path) -> dict[str, Any]:
    """The manifest of the generated tree as it is now; empty when there is none yet."""
    path = out / manifest.FILENAME
    if not path.is_file():
        return _nothing()
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(
            [Problem(str(path), "", f"is not valid JSON ({exc})", "run devbox-ctl generate")]
        ) from exc
    if not isinstance(old, dict) or old.get("version") != manifest.VERSION:
        raise InputError(
            [
                Problem(
                    str(path),
                    "version",
                    "is not a manifest this devbox reads",
                    "run devbox-ctl generate",
                )
            ]
        )
    return old


# Fields of a manifest entry that follow from others (name, owner, memory): listing them
# would repeat each change.
_DERIVED = frozenset({"memoryBytes", "hostname", "service", "volume", "secret", "units", "tags"})


def _own_fields(entry: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in entry.items() if key not in _DERIVED}


def _cut(path: list[Any]) -> tuple[str, ...]:
    """A path up to its first list index: a list is reported as one value."""
    kept: list[str] = []
    for part in path:
        if isinstance(part, int):
            break
        kept.append(str(part))
    return tuple(kept)


def _get(value: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def field_changes(old: dict[str, Any], new: dict[str, Any]) -> list[FieldChange]:
    """The changed fields between two JSON-like objects, as dotted paths (`pin.until`)."""
    # Equal objects are the common case (a fleet's plan compares every user once per host) and
    # deepdiff is slow on them. Compared as JSON, so that 2 and 2.0, or true and 1, still differ.
    if json.dumps(old, sort_keys=True) == json.dumps(new, sort_keys=True):
        return []
    if old and new:
        # start-up: deepdiff is for `plan` alone; every verb under sudo imports this module.
        from deepdiff import DeepDiff  # noqa: PLC0415

        diff = DeepDiff(old, new, view="tree")
        paths = {_cut(level.path(output_format="list")) for kind in diff for level in diff[kind]}
    else:  # deepdiff reports an empty side as one change of the whole object
        paths = {(key,) for key in old.keys() | new.keys()}
    return sorted(
        (FieldChange(".".join(path), _get(old, path), _get(new, path)) for path in paths),
        key=lambda change: change.field,
    )


def _units_changed(units: list[str], old_files: dict[str, Any], tree: dict[str, bytes]) -> bool:
    """Whether any unit of the container differs from the deployed one (or moved)."""
    return any(
        old_files.get(unit, {}).get("sha256") != manifest.sha256(tree[unit]) for unit in units
    )


def _user_view(users: dict[str, Any]) -> dict[str, Any]:
    """A user's own settings, without what follows from their containers."""
    derived = {"containers", "unitsSha256", "statesSha256"}
    return {
        name: {k: v for k, v in entry.items() if k not in derived} for name, entry in users.items()
    }


def _effect(old: dict[str, Any], new: dict[str, Any], units_changed: bool) -> str:
    # A declared state that changed is applied by the switch (host/restart.py), whether or
    # not a unit changed: the units carry no state.
    was_running, running = old["state"] == "running", new["state"] == "running"
    if running and not was_running:
        return "starts"
    if was_running and not running:
        return "stops"
    if not units_changed:
        return "no restart"
    return "restarts" if running else "stays stopped"


def drift(old: dict[str, Any], on_disk: dict[str, bytes]) -> list[str]:
    """The files of the generated tree that differ from what its manifest.json records.

    A hand edit leaves the manifest as it was, so the semantic plan (manifest against inputs)
    cannot see it; the recorded hashes can.
    """
    if not old.get("files"):
        return []
    recorded: dict[str, Any] = old["files"]
    return sorted(
        path
        for path in (recorded.keys() | on_disk.keys()) - {manifest.FILENAME}
        if path not in on_disk
        or recorded.get(path, {}).get("sha256") != manifest.sha256(on_disk[path])
    )


def compute(old: dict[str, Any], desired: Desired, tree: dict[str, bytes]) -> Plan:
    """Compare the old manifest with the desired state and the tree it renders to."""
    plan = Plan(first=not old.get("files"))
    old_containers: dict[str, Any] = old.get("containers", {})
    new_containers = {c.name: c.manifest_entry() for c in desired.containers}
    for name in sorted(old_containers.keys() | new_containers.keys()):
        before, after = old_containers.get(name), new_containers.get(name)
        if before is None and after is not None:
            effect = "starts" if after["state"] == "running" else "created stopped"
            plan.containers.append(ContainerChange(name, after["owner"], "added", effect))
        elif after is None and before is not None:
            plan.containers.append(ContainerChange(name, before["owner"], "removed", "stops"))
        elif before is not None and after is not None:
            changes = (
                [] if before == after else field_changes(_own_fields(before), _own_fields(after))
            )
            units_changed = _units_changed(after["units"], old.get("files", {}), tree)
            if changes or units_changed:
                effect = _effect(before, after, units_changed)
                plan.containers.append(
                    ContainerChange(name, after["owner"], "changed", effect, changes)
                )
            else:
                plan.unchanged += 1
    new_manifest = json.loads(tree[manifest.FILENAME])
    if plan.first:
        plan.other_files = sorted(p for p in new_manifest["files"] if p.startswith("system/"))
        return plan
    plan.settings = field_changes(old.get("settings", {}), new_manifest["settings"])
    plan.users = field_changes(_user_view(old.get("users", {})), _user_view(new_manifest["users"]))
    container_units = {u for entry in new_containers.values() for u in entry["units"]}
    container_units |= {u for entry in old_containers.values() for u in entry["units"]}
    plan.other_files = sorted(
        path
        for path in old.get("files", {}).keys() | new_manifest["files"].keys()
        if path not in container_units
        and old.get("files", {}).get(path, {}).get("sha256")
        != new_manifest["files"].get(path, {}).get("sha256")
    )
    return plan


def _removed_host(old: dict[str, Any]) -> Plan:
    """The plan of a host no longer in the fleet: everything it ran stops."""
    return Plan(
        containers=[
            ContainerChange(c, entry.get("owner", "?"), "removed", "stops")
            for c, entry in sorted(old.get("containers", {}).items())
        ],
        other_files=sorted(p for p in old.get("files", {}) if p.startswith("system/")),
    )


def compute_fleet(
    out: Path, desired: Desired, tree: dict[str, bytes], on_disk: dict[str, bytes]
) -> Plan:
    """A fleet's plan: each host's slice against what its committed slice deploys.

    A container whose host changed in containers.json shows as removed on one host and added
    on the other, and says so: a rebuild moves no data (devbox-ctl move does).
    """
    index = read_old(out)
    old_hosts = set(index.get("fleet", {}).get("hosts", {}))
    single = not old_hosts and bool(index.get("files"))
    plan = Plan(first=not old_hosts and not single, from_single=single)
    new_slices, old_slices, on = manifest.slices(tree), manifest.slices(on_disk), desired.by_host()
    if single:
        plan.former_host = generated_tree.former_host(on_disk, tree)
        old_slices = {plan.former_host: on_disk} if plan.former_host else {}
    for name in sorted(old_hosts | set(desired.hosts)):
        part, disk = new_slices.get(name, {}), old_slices.get(name, {})
        if name in desired.hosts and name in old_hosts and _same_slice(disk, part):
            plan.hosts[name] = _unchanged(desired.on(name, on[name]), disk, part)
            continue
        if name == plan.former_host:
            old = _as_slice(index, name)
        elif name in old_hosts:
            old = read_old(out / manifest.HOSTS_DIR / name)
        else:
            old = _nothing()
        if name not in desired.hosts:
            plan.hosts[name] = _removed_host(old)
            continue
        host_plan = compute(old, desired.on(name, on[name]), part)
        host_plan.drifted = drift(old, disk)
        plan.hosts[name] = host_plan
    _mark_moves(plan)
    return plan


def _as_slice(single: dict[str, Any], host: str) -> dict[str, Any]:
    """A single host's manifest as the slice of the fleet it became, on `host`.

    Its containers had no host field; the host is this one, and a single host's container
    has no placement labels. What else differs is a change like any other.
    """
    containers = {
        name: {"host": host, "labels": []} | entry if isinstance(entry, dict) else entry
        for name, entry in single.get("containers", {}).items()
    }
    return single | {"host": host, "containers": containers}


def _same_slice(disk: dict[str, bytes], part: dict[str, bytes]) -> bool:
    """Whether the committed slice's manifest is the one the inputs make now."""
    return disk.get(manifest.FILENAME) == part[manifest.FILENAME]


def _unchanged(desired: Desired, disk: dict[str, bytes], part: dict[str, bytes]) -> Plan:
    """A slice whose manifest is unchanged: nothing to deploy; drift is a file that differs.

    The manifest records every file's hash, so with the same manifest a file on disk has
    drifted exactly when it differs from the one the inputs make (no manifest parsed).
    """
    drifted = sorted(
        path
        for path in (disk.keys() | part.keys()) - {manifest.FILENAME}
        if disk.get(path) != part.get(path)
    )
    return Plan(unchanged=len(desired.containers), drifted=drifted)


def _mark_moves(plan: Plan) -> None:
    """Say so where a container leaves one host for another by a hand edit."""
    added = {c.name: host for host, p in plan.hosts.items() for c in p.of("added")}
    removed = {c.name: host for host, p in plan.hosts.items() for c in p.of("removed")}
    for name in added.keys() & removed.keys():
        source, target = removed[name], added[name]
        for change in plan.hosts[source].of("removed"):
            if change.name == name:
                change.effect = (
                    f"stops; now declared on {target}: its volume stays here "
                    f"(devbox-ctl move {name} --to {target} moves the data)"
                )
        for change in plan.hosts[target].of("added"):
            if change.name == name:
                change.effect += f", without its data (that stays on {source})"
