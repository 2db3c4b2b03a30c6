"""The input models: users.nix (people and policy) and containers.json (one record per container).

Field names are the ones users write (camelCase, as in Nix); unknown fields are rejected so a
typo cannot pass silently. The checks that involve more than one record live in validate.py.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    field_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from devbox import rules

SCHEMA_VERSION = 1
# More CPUs than any one machine has: a typo, not a host.
MAX_HOST_CPUS = 100_000
DEFAULT_IMAGE = "localhost/devbox/devcontainer:latest"
# NixOS gives normal users uids from 1000; from 60001 on they are system and nobody ids.
UID_MIN, UID_MAX = 1000, 60000


def _number(value: object) -> object:
    """Accept a JSON or Nix number (not a bool, not a string) as it is."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PydanticCustomError(
            "devbox",
            f"{rules.show(value)} is not a number",
            {"fix": "write a number without quotes, e.g. 2 or 0.5"},
        )
    return value


Number = Annotated[int | float, BeforeValidator(_number)]


def _parse_timestamp(value: object) -> object:
    """Read an RFC 3339 time in UTC ("2026-11-26T09:30:00Z"); other types fail as usual."""
    if not isinstance(value, str):
        return value
    try:
        parsed = None if rules.timestamp(value) else datetime.fromisoformat(value)
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise PydanticCustomError(
            "devbox",
            f"{rules.show(value)} is not a time in UTC",
            {"fix": 'write it like "2026-11-26T09:30:00Z"'},
        )
    return parsed.astimezone(UTC).replace(microsecond=0)


def _parse_day(value: object) -> object:
    """Read a calendar day ("2026-12-24"); other types fail as usual."""
    if not isinstance(value, str):
        return value
    parsed = rules.parse_day(value)
    if parsed is None:
        raise PydanticCustomError(
            "devbox",
            f"{rules.show(value)} is not a day",
            {"fix": 'write it like "2026-12-24"'},
        )
    return parsed


Timestamp = Annotated[datetime, BeforeValidator(_parse_timestamp)]
Day = Annotated[date, BeforeValidator(_parse_day)]


def _raise_issue(rule: rules.Issue) -> None:
    """Raise a rule's problem as a validation error carrying its fix."""
    if rule is not None:
        message, fix = rule
        raise PydanticCustomError("devbox", message, {"fix": fix})


class Model(BaseModel):
    """Strict, closed, immutable: values are not coerced and unknown fields are errors."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        strict=True,
        alias_generator=to_camel,
        populate_by_name=True,
    )


class User(Model):
    """A person who may own containers."""

    uid: StrictInt
    admin: StrictBool = False
    max_containers: StrictInt | None = None

    @field_validator("uid")
    @classmethod
    def _uid(cls, value: int) -> int:
        if not UID_MIN <= value <= UID_MAX:
            _raise_issue(
                (
                    f"{value} is outside the range of normal users",
                    f"use a uid from {UID_MIN} to {UID_MAX}",
                )
            )
        return value

    @field_validator("max_containers")
    @classmethod
    def _max_containers(cls, value: int | None) -> int | None:
        if value is not None and value < 0:
            _raise_issue((f"{value} is negative", "use 0 or more (0: this user may own none)"))
        return value


class Policy(Model):
    """The `containers` block of users.nix: limits, defaults, lifecycle and image settings."""

    op_vault: StrictStr = "devbox"
    op_field: StrictStr = "credential"
    max_per_user: StrictInt = 5
    max_global: StrictInt = 7
    default_cpu: Number = 2
    default_memory: StrictStr = "4G"
    max_cpu: Number = 16
    max_memory: StrictStr = "64G"
    idle_stop_days: StrictInt = 7
    stopped_destroy_days: StrictInt = 14
    image: StrictStr = DEFAULT_IMAGE
    cleanup_schedule: StrictStr = "daily"
    cleanup_randomized_delay: StrictStr = "1h"
    stop_warning_hours: list[StrictInt] = Field(default_factory=lambda: [24])
    destroy_warning_hours: list[StrictInt] = Field(default_factory=lambda: [72, 24])
    snapshot_retention_days: StrictInt = 30
    max_snapshots_per_user: StrictInt = 5
    max_snapshots_global: StrictInt = 30
    max_snapshot_bytes_per_user: StrictStr = "20G"
    max_snapshot_bytes_global: StrictStr = "100G"
    webhook_url: StrictStr | None = None
    max_pins_per_user: StrictInt = 2
    max_pin_days: StrictInt = 90
    protect_unpushed_work: StrictBool = True
    nix_daemon: StrictBool = True

    @field_validator("op_vault", "op_field")
    @classmethod
    def _text(cls, value: str) -> str:
        _raise_issue(rules.reference_part(value))
        return value

    @field_validator("default_cpu", "max_cpu")
    @classmethod
    def _cpu(cls, value: float) -> float:
        _raise_issue(rules.cpu(value))
        return value

    @field_validator("default_memory", "max_memory")
    @classmethod
    def _memory(cls, value: str) -> str:
        _raise_issue(rules.memory(value))
        return value

    @field_validator(
        "max_per_user",
        "max_global",
        "idle_stop_days",
        "stopped_destroy_days",
        "snapshot_retention_days",
        "max_pin_days",
        "max_snapshots_per_user",
        "max_snapshots_global",
    )
    @classmethod
    def _positive(cls, value: int) -> int:
        if value < 1:
            _raise_issue((f"{value} is not positive", "use 1 or more"))
        return value

    @field_validator("max_snapshot_bytes_per_user", "max_snapshot_bytes_global")
    @classmethod
    def _disk_size(cls, value: str) -> str:
        _raise_issue(rules.disk_size(value))
        return value

    @field_validator("max_pins_per_user")
    @classmethod
    def _not_negative(cls, value: int) -> int:
        if value < 0:
            _raise_issue((f"{value} is negative", "use 0 or more (0: no pins)"))
        return value

    @field_validator("stop_warning_hours", "destroy_warning_hours")
    @classmethod
    def _hours(cls, value: list[int]) -> list[int]:
        if any(hours < 1 for hours in value):
            _raise_issue((f"{rules.show(value)} has an hour count below 1", "use e.g. [ 72 24 ]"))
        return sorted(set(value), reverse=True)

    @field_validator("image")
    @classmethod
    def _image(cls, value: str) -> str:
        _raise_issue(rules.image(value))
        return value

    @field_validator("cleanup_schedule")
    @classmethod
    def _calendar(cls, value: str) -> str:
        _raise_issue(rules.calendar(value))
        return value

    @field_validator("cleanup_randomized_delay")
    @classmethod
    def _timespan(cls, value: str) -> str:
        _raise_issue(rules.timespan(value))
        return value

    @field_validator("webhook_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not (
            value.startswith(("https://", "http://")) and rules.single_line(value, 500) is None
        ):
            _raise_issue(
                (f"{rules.show(value)} is not an http(s) URL", 'use e.g. "https://ntfy.sh/topic"')
            )
        return value


def _labels(value: list[str]) -> list[str]:
    """Labels: each a valid word, none twice."""
    for label in value:
        _raise_issue(rules.label(label))
    if len(set(value)) != len(value):
        _raise_issue((f"{rules.show(value)} names a label twice", "name each label once"))
    return value


class Capacity(Model):
    """What one fleet host offers its containers: CPUs, memory and a container count."""

    cpus: Number
    memory: StrictStr
    containers: StrictInt

    @field_validator("cpus")
    @classmethod
    def _cpus(cls, value: float) -> float:
        if not 0 < value <= MAX_HOST_CPUS:  # also refuses NaN and infinity
            _raise_issue((f"{rules.show(value)} is not a CPU count", "use a number above 0"))
        return value

    @field_validator("memory")
    @classmethod
    def _memory(cls, value: str) -> str:
        _raise_issue(rules.memory(value))
        return value

    @field_validator("containers")
    @classmethod
    def _containers(cls, value: int) -> int:
        if value < 0:
            _raise_issue((f"{value} is negative", "use 0 or more (0: no new containers here)"))
        return value

    @property
    def memory_bytes(self) -> int:
        """The memory in bytes."""
        return rules.memory_bytes(self.memory) or 0


class Host(Model):
    """One host of a fleet: how SSH reaches it, what it offers, its labels."""

    reach: StrictStr
    capacity: Capacity
    labels: list[StrictStr] = Field(default_factory=list)

    @field_validator("reach")
    @classmethod
    def _reach(cls, value: str) -> str:
        _raise_issue(rules.ssh_destination(value))
        return value

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: list[str]) -> list[str]:
        return sorted(_labels(value))


class UsersFile(Model):
    """users.nix: the people, the policy and (for a fleet) the hosts."""

    users: dict[StrictStr, User] = Field(default_factory=dict)
    containers: Policy = Field(default_factory=Policy)
    hosts: dict[StrictStr, Host] = Field(default_factory=dict)


class Pin(Model):
    """An exemption from idle stop and auto-destroy until a day, with the reason."""

    until: Day
    reason: StrictStr

    @field_validator("reason")
    @classmethod
    def _reason(cls, value: str) -> str:
        _raise_issue(rules.single_line(value))
        return value


class ContainerRecord(Model):
    """One record of containers.json; absent fields take the users.nix defaults."""

    name: StrictStr
    owner: StrictStr
    cpu: Number | None = None
    memory: StrictStr | None = None
    syncthing: StrictBool = False
    state: Literal["running", "stopped"] = "running"
    created: Timestamp | None = None
    stopped_at: Timestamp | None = None
    pin: Pin | None = None
    host: StrictStr | None = None
    labels: list[StrictStr] = Field(default_factory=list)

    @field_validator("host")
    @classmethod
    def _host(cls, value: str | None) -> str | None:
        if value is not None:
            _raise_issue(rules.host_name(value))
        return value

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: list[str]) -> list[str]:
        return sorted(_labels(value))

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        _raise_issue(rules.container_name(value))
        return value

    @field_validator("cpu")
    @classmethod
    def _cpu(cls, value: float | None) -> float | None:
        if value is not None:
            _raise_issue(rules.cpu(value))
        return value

    @field_validator("memory")
    @classmethod
    def _memory(cls, value: str | None) -> str | None:
        if value is not None:
            _raise_issue(rules.memory(value))
        return value


class ContainersFile(Model):
    """containers.json: a schema version and the records."""

    version: StrictInt
    containers: list[ContainerRecord] = Field(default_factory=list)

    @field_validator("version")
    @classmethod
    def _version(cls, value: int) -> int:
        if value > SCHEMA_VERSION:
            _raise_issue(
                (
                    f"version {value} was written by a newer devbox",
                    f"upgrade devbox-ctl (this one reads version {SCHEMA_VERSION})",
                )
            )
        if value < 1:
            _raise_issue((f"version {value} does not exist", f"use {SCHEMA_VERSION}"))
        return value
