"""Validation of both inputs, reporting every problem at once.

Each file is validated against its model in one pass (pydantic collects every field error);
the records that passed are then checked against each other and against users.nix: unique
names and uids, owners that exist, limits, bounds. Each problem names the file, the field
path and the fix.
"""

from __future__ import annotations

import difflib
import json
import re
import types
import typing
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pydantic

from devbox import rules
from devbox.errors import Problem
from devbox.models import ContainerRecord, ContainersFile, Policy, User, UsersFile

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")

_TYPE_MESSAGES = {
    "string_type": ("is not a string", "write it in double quotes"),
    "bool_type": ("is not true or false", "write true or false, without quotes"),
    "int_type": ("is not a whole number", "write a whole number without quotes"),
    "list_type": ("is not a list", "write a list, e.g. [ 72 24 ]"),
    "dict_type": ("is not a set of fields", "write it as { … }"),
    "model_type": ("is not a set of fields", "write it as { … }"),
    "datetime_type": ("is not a time", 'write it like "2026-11-26T09:30:00Z"'),
    "date_type": ("is not a day", 'write it like "2026-12-24"'),
}


@dataclass
class Files:
    """How messages name the two inputs."""

    users: str = "users.nix"
    containers: str = "containers.json"


@dataclass
class Checked:
    """What validation found: the parts that passed, and every problem."""

    users: dict[str, User] = field(default_factory=dict)
    policy: Policy | None = None
    records: list[tuple[int, ContainerRecord]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def format_path(loc: tuple[int | str, ...]) -> str:
    """A field path as users write it: containers[3].name, users.alice.uid, users."Bad"."""
    text = ""
    for item in loc:
        if isinstance(item, int):
            text += f"[{item}]"
        else:
            name = item if _IDENTIFIER.match(item) else json.dumps(item, ensure_ascii=False)
            text += f".{name}" if text else name
    return text


def _field_type(model: type[pydantic.BaseModel], alias: str) -> Any:
    for name, info in model.model_fields.items():
        if alias in (name, info.alias):
            return info.annotation
    return None


def _unwrap(annotation: Any, item: int | str) -> Any:
    """The type one step into a container type (list element, dict value, optional)."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType) and len(args) == 1:
        return _unwrap(args[0], item)
    if origin is list and isinstance(item, int):
        return args[0]
    if origin is dict and isinstance(item, str):
        return args[1]
    return None


def _model_at(root: type[pydantic.BaseModel], loc: tuple[int | str, ...]) -> Any:
    current: Any = root
    for item in loc:
        if isinstance(current, type) and issubclass(current, pydantic.BaseModel):
            current = _field_type(current, str(item))
        else:
            current = _unwrap(current, item)
        args = [a for a in typing.get_args(current) if a is not type(None)]
        if typing.get_origin(current) in (typing.Union, types.UnionType) and len(args) == 1:
            current = args[0]
    return current


def _unknown_field(root: type[pydantic.BaseModel], loc: tuple[int | str, ...]) -> tuple[str, str]:
    model = _model_at(root, loc[:-1])
    known: list[str] = []
    if isinstance(model, type) and issubclass(model, pydantic.BaseModel):
        known = sorted(info.alias or name for name, info in model.model_fields.items())
    close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
    if close:
        return ("is not a known field", f"did you mean {close[0]}?")
    return ("is not a known field", f"remove it (known fields: {', '.join(known)})")


def _describe(root: type[pydantic.BaseModel], error: Any) -> tuple[str, str]:
    kind = error["type"]
    value = error.get("input")
    if kind == "devbox":
        return (error["msg"], error["ctx"]["fix"])
    if kind == "missing":
        return ("is required", "add it")
    if kind == "extra_forbidden":
        return _unknown_field(root, error["loc"])
    if kind == "literal_error":
        expected = error["ctx"]["expected"].replace("'", '"')
        return (f"{rules.show(value)} is not one of {expected}", f"use {expected}")
    if kind in _TYPE_MESSAGES:
        message, fix = _TYPE_MESSAGES[kind]
        return (f"{rules.show(value)} {message}", fix)
    return (str(error["msg"]), "")


def _problems(
    root: type[pydantic.BaseModel], exc: pydantic.ValidationError, file: str
) -> list[Problem]:
    found = []
    for error in exc.errors():
        message, fix = _describe(root, error)
        found.append(Problem(file, format_path(error["loc"]), message, fix))
    return found


def _failed_at(exc: pydantic.ValidationError, depth: int) -> set[tuple[int | str, ...]]:
    """The location prefixes (of the given depth) that have at least one error."""
    return {tuple(e["loc"][:depth]) for e in exc.errors()}


def check_users(raw: Any, file: str) -> Checked:
    """Validate users.nix; keep the users and the policy that passed."""
    checked = Checked()
    if not isinstance(raw, dict):
        checked.problems.append(
            Problem(
                file,
                "",
                f"is {type(raw).__name__}, not an attribute set",
                "write { users = { … }; }",
            )
        )
        return checked
    try:
        parsed = UsersFile.model_validate(raw)
        checked.users, checked.policy = dict(parsed.users), parsed.containers
    except pydantic.ValidationError as exc:
        checked.problems += _problems(UsersFile, exc, file)
        failed = _failed_at(exc, 2) | _failed_at(exc, 1)
        users = raw.get("users")
        if isinstance(users, dict) and ("users",) not in _failed_at(exc, 2):
            checked.users = {
                name: User.model_validate(value)
                for name, value in users.items()
                if ("users", name) not in failed
            }
        if ("containers",) not in failed:
            checked.policy = Policy.model_validate(raw.get("containers", {}))
    checked.problems += _user_problems(checked.users, file)
    return checked


def _user_problems(users: dict[str, User], file: str) -> list[Problem]:
    found = []
    for name in users:
        issue = rules.user_name(name)
        if issue:
            found.append(Problem(file, format_path(("users", name)), *issue))
    holders: dict[int, list[str]] = {}
    for name, user in sorted(users.items()):
        holders.setdefault(user.uid, []).append(name)
    for uid, names in holders.items():
        for name in names[1:]:
            found.append(
                Problem(
                    file,
                    format_path(("users", name, "uid")),
                    f"uid {uid} is also the uid of {names[0]}",
                    "give each user their own uid",
                )
            )
    return found


def check_containers(raw: Any, file: str) -> Checked:
    """Validate containers.json on its own; keep the records that passed."""
    checked = Checked()
    if not isinstance(raw, dict):
        checked.problems.append(
            Problem(file, "", "is not a JSON object", 'write {"version": 1, "containers": [ … ]}')
        )
        return checked
    try:
        parsed = ContainersFile.model_validate(raw)
        checked.records = list(enumerate(parsed.containers))
    except pydantic.ValidationError as exc:
        checked.problems += _problems(ContainersFile, exc, file)
        records = raw.get("containers")
        if isinstance(records, list):
            failed = _failed_at(exc, 2)
            checked.records = [
                (index, ContainerRecord.model_validate(record))
                for index, record in enumerate(records)
                if ("containers", index) not in failed and ("containers",) not in failed
            ]
    return checked


def cross_check(users: Checked, containers: Checked, files: Files) -> list[Problem]:
    """The rules between records, and between containers.json and users.nix."""
    found = _unique_names(containers.records, files.containers)
    found += _owners(users.users, containers.records, files)
    if users.policy is not None:
        found += _bounds(users.policy, containers.records, files)
        found += _limits(users.users, users.policy, containers.records, files)
    return found


def _unique_names(records: list[tuple[int, ContainerRecord]], file: str) -> list[Problem]:
    first: dict[str, int] = {}
    found = []
    for index, record in records:
        if record.name in first:
            found.append(
                Problem(
                    file,
                    f"containers[{index}].name",
                    f"{rules.show(record.name)} is already the name of "
                    f"containers[{first[record.name]}]",
                    "container names are unique across the host; pick another name",
                )
            )
        else:
            first[record.name] = index
    return found


def _owners(
    users: dict[str, User], records: list[tuple[int, ContainerRecord]], files: Files
) -> list[Problem]:
    known = ", ".join(sorted(users)) or "none yet"
    return [
        Problem(
            files.containers,
            f"containers[{index}].owner",
            f"{rules.show(record.owner)} is not a user in {files.users}",
            f"add it to users in {files.users}, or use one of: {known}",
        )
        for index, record in records
        if record.owner not in users
    ]


def _bounds(
    policy: Policy, records: list[tuple[int, ContainerRecord]], files: Files
) -> list[Problem]:
    found = []
    max_memory = rules.memory_bytes(policy.max_memory) or 0
    for index, record in records:
        if record.cpu is not None and record.cpu > policy.max_cpu:
            found.append(
                Problem(
                    files.containers,
                    f"containers[{index}].cpu",
                    f"{rules.show(record.cpu)} is more than maxCpu ({policy.max_cpu})",
                    f"use at most {policy.max_cpu}, or raise containers.maxCpu in {files.users}",
                )
            )
        if record.memory is not None and (rules.memory_bytes(record.memory) or 0) > max_memory:
            found.append(
                Problem(
                    files.containers,
                    f"containers[{index}].memory",
                    f"{rules.show(record.memory)} is more than maxMemory ({policy.max_memory})",
                    f"use at most {policy.max_memory}, or raise containers.maxMemory in "
                    f"{files.users}",
                )
            )
    return found


def _limits(
    users: dict[str, User],
    policy: Policy,
    records: list[tuple[int, ContainerRecord]],
    files: Files,
) -> list[Problem]:
    found = []
    counts: Counter[str] = Counter()
    pins: Counter[str] = Counter()
    for index, record in records:
        user = users.get(record.owner)
        if user is None:
            continue
        counts[record.owner] += 1
        limit = policy.max_per_user if user.max_containers is None else user.max_containers
        if counts[record.owner] == limit + 1:
            source = (
                f"users.{record.owner}.maxContainers"
                if user.max_containers is not None
                else "containers.maxPerUser"
            )
            found.append(
                Problem(
                    files.containers,
                    f"containers[{index}].owner",
                    f"{record.owner} would own more than their limit of {limit} containers",
                    f"remove a container of {record.owner}, or raise {source} in {files.users}",
                )
            )
        if record.pin is not None:
            pins[record.owner] += 1
            if pins[record.owner] == policy.max_pins_per_user + 1:
                found.append(
                    Problem(
                        files.containers,
                        f"containers[{index}].pin",
                        f"{record.owner} would hold more than {policy.max_pins_per_user} pins",
                        f"unpin another container, or raise containers.maxPinsPerUser in "
                        f"{files.users}",
                    )
                )
    if len(records) > policy.max_global:
        found.append(
            Problem(
                files.containers,
                "containers",
                f"{len(records)} containers are declared, more than maxGlobal "
                f"({policy.max_global})",
                f"remove containers, or raise containers.maxGlobal in {files.users}",
            )
        )
    return found
