"""Validation of both inputs, reporting every problem at once.

Each file is validated against its model in one pass (pydantic collects every field error).
The rules between fields, records and files (unique names and uids, owners that exist,
limits, bounds, the policy's cross-field rules) then run on every value that passed its own
check, even in a record or block that failed elsewhere, so one wrong field does not hide
another problem. Each problem names the file, the field path and the fix.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pydantic

from devbox import rules
from devbox.declare.models import ContainerRecord, ContainersFile, Host, Policy, User, UsersFile
from devbox.declare.schema_errors import format_path, problems
from devbox.errors import Problem

Loc = tuple[int | str, ...]


@dataclass
class Files:
    """How messages name the two inputs."""

    users: str = "users.nix"
    containers: str = "containers.json"


@dataclass(frozen=True)
class KnownValid:
    """What is known to be valid about one record, even when other fields of it are not."""

    index: int
    name: str | None = None
    owner: str | None = None
    cpu: float | None = None
    memory: str | None = None
    pinned: bool = False
    host: str | None = None
    host_given: bool = False  # the record names a host (valid or not)
    labels: tuple[str, ...] | None = None


@dataclass
class Checked:
    """What validation of one file found: the valid parts, the known facts, every problem."""

    users: dict[str, User] = field(default_factory=dict)  # users that are valid as a whole
    declared: set[str] | None = None  # every user name users.nix declares; None: unreadable
    policy: Policy | None = None  # the block with invalid fields at their defaults
    policy_failed: set[str] = field(default_factory=set)
    records: list[ContainerRecord] = field(default_factory=list)  # records valid as a whole
    hosts: dict[str, Host] = field(default_factory=dict)  # hosts that are valid as a whole
    declared_hosts: set[str] | None = None  # every host name users.nix declares; None: unreadable
    facts: list[KnownValid] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def _failed(exc: pydantic.ValidationError | None) -> set[Loc]:
    """Every location prefix that holds an error."""
    if exc is None:
        return set()
    return {tuple(e["loc"][:depth]) for e in exc.errors() for depth in range(len(e["loc"]) + 1)}


def _validate(
    model: type[pydantic.BaseModel], raw: Any, file: str, checked: Checked
) -> tuple[Any, set[Loc]]:
    try:
        return model.model_validate(raw), set()
    except pydantic.ValidationError as exc:
        checked.problems += problems(model, exc, file)
        return None, _failed(exc)


def check_users(raw: Any, file: str) -> Checked:
    """Validate users.nix, keeping every user and policy field that passed."""
    checked = Checked()
    if not isinstance(raw, dict):
        checked.problems.append(
            Problem(file, "", "is not an attribute set", "write { users = { … }; }")
        )
        return checked
    parsed, failed = _validate(UsersFile, raw, file, checked)
    users_value = raw.get("users", {})
    raw_users: dict[str, Any] = users_value if isinstance(users_value, dict) else {}
    checked.declared = set(raw_users) if isinstance(users_value, dict) else None
    hosts_value = raw.get("hosts", {})
    raw_hosts: dict[str, Any] = hosts_value if isinstance(hosts_value, dict) else {}
    checked.declared_hosts = set(raw_hosts) if isinstance(hosts_value, dict) else None
    if parsed is not None:
        checked.users, checked.policy = dict(parsed.users), parsed.containers
        checked.hosts = dict(parsed.hosts)
    else:
        checked.users = {
            name: User.model_validate(value)
            for name, value in raw_users.items()
            if ("users", name) not in failed
        }
        checked.hosts = {
            name: Host.model_validate(value)
            for name, value in raw_hosts.items()
            if ("hosts", name) not in failed
        }
        _partial_policy(raw.get("containers", {}), failed, checked)
    checked.problems += _user_names(raw_users, file) + _duplicate_uids(raw_users, file)
    checked.problems += _host_names(raw_hosts, file)
    if checked.policy is not None:
        checked.problems += policy_rules(checked.policy, checked.policy_failed, file)
    return checked


def _partial_policy(raw: Any, failed: set[Loc], checked: Checked) -> None:
    """The policy with its invalid fields left at their defaults, and which those were."""
    if not isinstance(raw, dict):
        return
    aliases = {info.alias or name for name, info in Policy.model_fields.items()}
    checked.policy_failed = {key for key in raw if ("containers", key) in failed}
    valid = {k: v for k, v in raw.items() if k in aliases and k not in checked.policy_failed}
    checked.policy = Policy.model_validate(valid)


def _user_names(raw_users: dict[str, Any], file: str) -> list[Problem]:
    return [
        Problem(file, format_path(("users", name)), *issue)
        for name in raw_users
        if (issue := rules.user_name(name)) is not None
    ]


def _host_names(raw_hosts: dict[str, Any], file: str) -> list[Problem]:
    return [
        Problem(file, format_path(("hosts", name)), *issue)
        for name in raw_hosts
        if (issue := rules.host_name(name)) is not None
    ]


def _duplicate_uids(raw_users: dict[str, Any], file: str) -> list[Problem]:
    holders: dict[int, list[str]] = {}
    for name, value in sorted(raw_users.items()):
        uid = value.get("uid") if isinstance(value, dict) else None
        if isinstance(uid, int) and not isinstance(uid, bool):
            holders.setdefault(uid, []).append(name)
    return [
        Problem(
            file,
            format_path(("users", name, "uid")),
            f"uid {uid} is also the uid of {names[0]}",
            "give each user their own uid",
        )
        for uid, names in holders.items()
        for name in names[1:]
    ]


def policy_rules(policy: Policy, failed: set[str], file: str) -> list[Problem]:
    """The rules between fields of the `containers` block (skipping fields that failed)."""
    rules_between = [
        (
            ("stoppedDestroyDays", "idleStopDays"),
            policy.stopped_destroy_days < policy.idle_stop_days,
            f"{policy.stopped_destroy_days} is less than idleStopDays ({policy.idle_stop_days})",
            "make stoppedDestroyDays at least idleStopDays",
        ),
        (
            ("maxGlobal", "maxPerUser"),
            policy.max_global < policy.max_per_user,
            f"{policy.max_global} is less than maxPerUser ({policy.max_per_user})",
            "raise maxGlobal or lower maxPerUser",
        ),
        (
            ("maxSnapshotsGlobal", "maxSnapshotsPerUser"),
            policy.max_snapshots_global < policy.max_snapshots_per_user,
            f"{policy.max_snapshots_global} is less than maxSnapshotsPerUser "
            f"({policy.max_snapshots_per_user})",
            "raise maxSnapshotsGlobal or lower maxSnapshotsPerUser",
        ),
        (
            ("maxSnapshotBytesGlobal", "maxSnapshotBytesPerUser"),
            (rules.memory_bytes(policy.max_snapshot_bytes_global) or 0)
            < (rules.memory_bytes(policy.max_snapshot_bytes_per_user) or 0),
            f"maxSnapshotBytesGlobal ({policy.max_snapshot_bytes_global}) is less than "
            f"maxSnapshotBytesPerUser ({policy.max_snapshot_bytes_per_user})",
            "raise maxSnapshotBytesGlobal or lower maxSnapshotBytesPerUser",
        ),
        (
            ("defaultCpu", "maxCpu"),
            policy.default_cpu > policy.max_cpu,
            f"{policy.default_cpu} is more than maxCpu ({policy.max_cpu})",
            "lower defaultCpu or raise maxCpu",
        ),
        (
            ("defaultMemory", "maxMemory"),
            (rules.memory_bytes(policy.default_memory) or 0)
            > (rules.memory_bytes(policy.max_memory) or 0),
            f"defaultMemory ({policy.default_memory}) is more than maxMemory ({policy.max_memory})",
            "lower defaultMemory or raise maxMemory",
        ),
    ]
    return [
        Problem(file, f"containers.{fields[0]}", message, fix)
        for fields, broken, message, fix in rules_between
        if broken and not failed & set(fields)
    ]


def _facts(index: int, raw: Any, failed: set[Loc]) -> KnownValid:
    """The fields of a failed record that are valid on their own."""
    if not isinstance(raw, dict):
        return KnownValid(index)

    def ok(key: str, kind: type | tuple[type, ...]) -> Any:
        value = raw.get(key)
        valid = isinstance(value, kind) and not isinstance(value, bool)
        return value if valid and ("containers", index, key) not in failed else None

    cpu = ok("cpu", (int, float))
    labels = ok("labels", list)
    return KnownValid(
        index,
        name=ok("name", str),
        owner=ok("owner", str),
        cpu=cpu if cpu is not None and math.isfinite(cpu) else None,
        memory=ok("memory", str),
        pinned=ok("pin", dict) is not None,
        host=ok("host", str),
        host_given="host" in raw,
        labels=tuple(labels) if labels is not None else None,
    )


def check_containers(raw: Any, file: str) -> Checked:
    """Validate containers.json on its own, keeping every record field that passed."""
    checked = Checked()
    if not isinstance(raw, dict):
        checked.problems.append(
            Problem(file, "", "is not a JSON object", 'write {"version": 1, "containers": [ … ]}')
        )
        return checked
    parsed, failed = _validate(ContainersFile, raw, file, checked)
    if parsed is not None:
        checked.records = list(parsed.containers)
        checked.facts = [
            KnownValid(
                i,
                r.name,
                r.owner,
                r.cpu,
                r.memory,
                r.pin is not None,
                host=r.host,
                host_given=r.host is not None,
                labels=tuple(r.labels),
            )
            for i, r in enumerate(parsed.containers)
        ]
    elif isinstance(raw.get("containers"), list):
        checked.facts = [_facts(i, r, failed) for i, r in enumerate(raw["containers"])]
    return checked


def cross_check(users: Checked, containers: Checked, files: Files) -> list[Problem]:
    """The rules between records, and between containers.json and users.nix."""
    found = _unique_names(containers.facts, files.containers)
    if users.declared is not None:
        found += _owners(users.declared, containers.facts, files)
    if users.policy is not None:
        found += _bounds(users.policy, users.policy_failed, containers.facts, files)
        found += _limits(users, containers.facts, files)
    if users.declared_hosts is not None:
        found += _hosts(users, containers.facts, files)
    return found


def _unique_names(facts: list[KnownValid], file: str) -> list[Problem]:
    first: dict[str, int] = {}
    found = []
    for fact in facts:
        if fact.name is None:
            continue
        if fact.name in first:
            found.append(
                Problem(
                    file,
                    f"containers[{fact.index}].name",
                    f"{rules.show(fact.name)} is already the name of "
                    f"containers[{first[fact.name]}]",
                    "container names are unique across the host; pick another name",
                )
            )
        else:
            first[fact.name] = fact.index
    return found


def _owners(declared: set[str], facts: list[KnownValid], files: Files) -> list[Problem]:
    known = ", ".join(sorted(declared)) or "none yet"
    return [
        Problem(
            files.containers,
            f"containers[{fact.index}].owner",
            f"{rules.show(fact.owner)} is not a user in {files.users}",
            f"add it to users in {files.users}, or use one of: {known}",
        )
        for fact in facts
        if fact.owner is not None and fact.owner not in declared
    ]


def _bounds(
    policy: Policy, failed: set[str], facts: list[KnownValid], files: Files
) -> list[Problem]:
    found = []
    max_memory = rules.memory_bytes(policy.max_memory) or 0
    for fact in facts:
        if fact.cpu is not None and "maxCpu" not in failed and fact.cpu > policy.max_cpu:
            found.append(
                Problem(
                    files.containers,
                    f"containers[{fact.index}].cpu",
                    f"{rules.show(fact.cpu)} is more than maxCpu ({policy.max_cpu})",
                    f"use at most {policy.max_cpu}, or raise containers.maxCpu in {files.users}",
                )
            )
        size = rules.memory_bytes(fact.memory) if fact.memory is not None else None
        if size is not None and "maxMemory" not in failed and size > max_memory:
            found.append(
                Problem(
                    files.containers,
                    f"containers[{fact.index}].memory",
                    f"{rules.show(fact.memory)} is more than maxMemory ({policy.max_memory})",
                    f"use at most {policy.max_memory}, or raise containers.maxMemory in "
                    f"{files.users}",
                )
            )
    return found


def _limit_of(users: Checked, owner: str) -> tuple[int, str] | None:
    """The user's container limit and the setting it comes from."""
    user = users.users.get(owner)
    if user is None or users.policy is None:
        return None
    if user.max_containers is not None:
        return user.max_containers, f"users.{owner}.maxContainers"
    return users.policy.max_per_user, "containers.maxPerUser"


def _limits(users: Checked, facts: list[KnownValid], files: Files) -> list[Problem]:
    policy = users.policy
    if policy is None:
        return []
    found = []
    counts: Counter[str] = Counter()
    pins: Counter[str] = Counter()
    for fact in facts:
        limit = _limit_of(users, fact.owner) if fact.owner is not None else None
        if fact.owner is None or limit is None:
            continue
        counts[fact.owner] += 1
        if counts[fact.owner] == limit[0] + 1:
            found.append(
                Problem(
                    files.containers,
                    f"containers[{fact.index}].owner",
                    f"{fact.owner} would own more than their limit of "
                    f"{rules.count(limit[0], 'container')}",
                    f"remove a container of {fact.owner}, or raise {limit[1]} in {files.users}",
                )
            )
        pins[fact.owner] += fact.pinned
        if fact.pinned and pins[fact.owner] == policy.max_pins_per_user + 1:
            found.append(
                Problem(
                    files.containers,
                    f"containers[{fact.index}].pin",
                    f"{fact.owner} would hold more than "
                    f"{rules.count(policy.max_pins_per_user, 'pin')}",
                    f"unpin another container, or raise containers.maxPinsPerUser in {files.users}",
                )
            )
    if len(facts) > policy.max_global and "maxGlobal" not in users.policy_failed:
        found.append(
            Problem(
                files.containers,
                "containers",
                f"{len(facts)} containers are declared, more than maxGlobal ({policy.max_global})",
                f"remove containers, or raise containers.maxGlobal in {files.users}",
            )
        )
    return found


def _hosts(users: Checked, facts: list[KnownValid], files: Files) -> list[Problem]:
    """A fleet's rules: every record on a declared host with its labels, within capacity."""
    declared = users.declared_hosts or set()
    known = ", ".join(sorted(declared))
    found = []
    for fact in facts:
        where = f"containers[{fact.index}].host"
        if not declared:
            if fact.host_given:
                found.append(
                    Problem(
                        files.containers,
                        where,
                        f"names a host, but {files.users} declares no hosts",
                        f"remove it, or declare the fleet's hosts in {files.users} (docs/fleet.md)",
                    )
                )
        elif not fact.host_given:
            found.append(
                Problem(
                    files.containers,
                    where,
                    f"is missing: {files.users} declares hosts, so every container has one",
                    f"set it to one of: {known} (devbox-ctl create places new containers itself)",
                )
            )
        elif fact.host is not None and fact.host not in declared:
            found.append(
                Problem(
                    files.containers,
                    where,
                    f"{rules.show(fact.host)} is not a host in {files.users}",
                    f"use one of: {known}",
                )
            )
        host = users.hosts.get(fact.host) if fact.host is not None else None
        missing = sorted(set(fact.labels or ()) - set(host.labels)) if host else []
        if missing:
            found.append(
                Problem(
                    files.containers,
                    f"containers[{fact.index}].labels",
                    f"{fact.host} lacks the label{'s' if len(missing) > 1 else ''} "
                    f"{', '.join(missing)} this container needs",
                    f"move it to a host with them (devbox-ctl move {fact.name or 'NAME'} "
                    f"--to HOST), or add them to hosts.{fact.host}.labels in {files.users}",
                )
            )
    return found + _capacity(users, facts, files)


def _capacity(users: Checked, facts: list[KnownValid], files: Files) -> list[Problem]:
    """Each host's declared containers fit its declared capacity."""
    policy = users.policy
    if policy is None:
        return []
    default_memory = rules.memory_bytes(policy.default_memory) or 0
    used: dict[str, list[float]] = {}
    for fact in facts:
        if fact.host in users.hosts:
            cpu = policy.default_cpu if fact.cpu is None else fact.cpu
            memory = default_memory
            if fact.memory is not None:
                memory = rules.memory_bytes(fact.memory) or default_memory
            totals = used.setdefault(fact.host, [0, 0, 0])
            totals[0] += cpu
            totals[1] += memory
            totals[2] += 1
    found = []
    for name, (cpus, needed, count) in sorted(used.items()):
        capacity = users.hosts[name].capacity
        over = [
            (
                "cpus",
                cpus > capacity.cpus + 1e-9,
                f"{rules.format_cpu(cpus)} CPUs",
                f"{rules.format_cpu(capacity.cpus)}",
            ),
            (
                "memory",
                needed > capacity.memory_bytes,
                f"{_gib(needed)} of memory",
                capacity.memory,
            ),
            (
                "containers",
                count > capacity.containers,
                rules.count(int(count), "container"),
                str(capacity.containers),
            ),
        ]
        found += [
            Problem(
                files.users,
                f"hosts.{name}.capacity.{key}",
                f"the containers declared on {name} need {need}, more than its capacity of {cap}",
                f"raise hosts.{name}.capacity.{key}, or move containers off {name} "
                "(devbox-ctl move NAME --to HOST)",
            )
            for key, broken, need, cap in over
            if broken
        ]
    return found


def _gib(size: float) -> str:
    """A byte count as people read it."""
    return f"{size / 1024**3:g}G"
