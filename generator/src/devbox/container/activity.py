"""Activity: the monitor's record and the keep-alive leases on a container's volume.

Two sides share the formats of docs/container-interface.md:

- inside the container, `devbox-ctl monitor` (monitor.py) and `devbox-ctl keepalive` write
  `~/.local/state/devbox/activity.json` and `keepalive.json` with the models and functions
  here;
- on the host, `observe` reads both straight from the volume's directory, without starting
  the container, and turns them into the signals the lifecycle engine (lifecycle/policy.py) decides
  on.

Reading is fail-safe: a record that is missing, unreadable, of an unknown version, dated in
the future or no longer updated while the container should be running makes activity
*unknown*, and unknown counts as activity now, never as idleness (docs/lifecycle.md).
The host reads files the container's user controls only through volume.py (the volume opened
once without following links, read as its owner, within a time budget), at most a megabyte
of each, and parses them bounded: nesting at most MAX_DEPTH deep, times between MIN_TIME and
MAX_TIME, numbers and lists within sane ranges. Anything else is Unreadable, never an error
of the run. Strings from the files reach devbox's reasons and signals escaped (escaping.py).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import PurePosixPath
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError
from pydantic.alias_generators import to_camel

from devbox import clock, volume
from devbox.escaping import shown

VERSION = 1
STATE = PurePosixPath(".local/state/devbox")
RECORD = STATE / "activity.json"
LEASES = STATE / "keepalive.json"
NOTICE = STATE / "notice"
HEARTBEAT = PurePosixPath(".local/share/code-server/heartbeat")
INTERVAL = 60
# The signals of the record, in the order people read them.
SIGNALS = ("ssh", "code-server", "zed", "keepalive", "start")
# Two clocks (the host's and the one a record was written with) may differ this much before
# a time counts as "in the future", which makes the record unreadable.
SKEW = timedelta(minutes=5)
# A running container's monitor writes every minute; after this many missed writes (and at
# least STALE_MINIMUM) the record says nothing about the time since.
STALE_INTERVALS = 5
STALE_MINIMUM = timedelta(minutes=10)
MAX_BYTES = 1 << 20
# What a record or lease file may hold: deeper nesting, earlier or later times, more entries
# or longer texts make it Unreadable. Times outside these bounds are no one's clock.
MAX_DEPTH = 16
MIN_TIME = datetime(2000, 1, 1, tzinfo=UTC)
MAX_TIME = datetime(2200, 1, 1, tzinfo=UTC)
MAX_INTERVAL = 86_400
MAX_SESSIONS = 1_000_000
MAX_SIGNALS = 64
MAX_LEASES = 1_000
MAX_TEXT = 1_000


def _in_range(value: datetime) -> datetime:
    """A time from a file, refused outside MIN_TIME..MAX_TIME (an offset may not overflow)."""
    try:
        instant = value.astimezone(UTC)
    except (OverflowError, ValueError) as exc:
        raise ValueError("the time is out of range") from exc
    if not MIN_TIME <= instant <= MAX_TIME:
        raise ValueError(f"the time is not between {MIN_TIME.year} and {MAX_TIME.year}")
    return value


Time = Annotated[AwareDatetime, AfterValidator(_in_range)]
Text = Annotated[str, Field(strict=True, max_length=MAX_TEXT)]


class Reader(BaseModel):
    """A format read from the volume: unknown fields are ignored, as the contract says."""

    model_config = ConfigDict(
        extra="ignore",
        frozen=True,
        strict=True,
        alias_generator=to_camel,
        populate_by_name=True,
    )


ReaderModel = TypeVar("ReaderModel", bound=Reader)


class SignalState(Reader):
    """One signal: when the monitor last saw it, and how many sessions it saw then."""

    last_seen: Time | None = None
    sessions: Annotated[int, Field(strict=True, ge=0, le=MAX_SESSIONS)] | None = None


class MonitorState(Reader):
    """When the monitor that wrote the record started and last wrote."""

    started_at: Time
    updated_at: Time
    interval_seconds: Annotated[int, Field(strict=True, ge=1, le=MAX_INTERVAL)] = INTERVAL


class Record(Reader):
    """activity.json."""

    version: Annotated[int, Field(strict=True)]
    container: Text
    monitor: MonitorState
    signals: Annotated[dict[Text, SignalState], Field(max_length=MAX_SIGNALS)] = Field(
        default_factory=dict
    )

    def to_json(self) -> bytes:
        """The record exactly as docs/container-interface.md shows it."""
        signals: dict[str, dict[str, Any]] = {}
        for name in sorted(self.signals, key=_signal_order):
            state = self.signals[name]
            signals[name] = {"lastSeen": clock.timestamp(state.last_seen)}
            if state.sessions is not None:
                signals[name]["sessions"] = state.sessions
        body = {
            "version": self.version,
            "container": self.container,
            "monitor": {
                "startedAt": clock.timestamp(self.monitor.started_at),
                "updatedAt": clock.timestamp(self.monitor.updated_at),
                "intervalSeconds": self.monitor.interval_seconds,
            },
            "signals": signals,
        }
        return (json.dumps(body, indent=2) + "\n").encode("utf-8")


class Lease(Reader):
    """A keep-alive lease: activity until a time, with the reason."""

    id: Text
    until: Time
    reason: Text = ""
    created_at: Time


class Leases(Reader):
    """keepalive.json."""

    version: Annotated[int, Field(strict=True)]
    leases: Annotated[list[Lease], Field(max_length=MAX_LEASES)] = Field(default_factory=list)

    def to_json(self) -> bytes:
        """The leases as docs/container-interface.md shows them."""
        body = {
            "version": self.version,
            "leases": [
                {
                    "id": lease.id,
                    "until": clock.timestamp(lease.until),
                    "reason": lease.reason,
                    "createdAt": clock.timestamp(lease.created_at),
                }
                for lease in self.leases
            ],
        }
        return (json.dumps(body, indent=2) + "\n").encode("utf-8")


def _signal_order(name: str) -> tuple[int, str]:
    return (SIGNALS.index(name) if name in SIGNALS else len(SIGNALS), name)


Unreadable = volume.Unreadable


def from_epoch(seconds: float) -> datetime:
    """A file time (seconds since the epoch) in UTC, whole seconds."""
    return datetime.fromtimestamp(int(seconds), UTC)


# Parsing


def _parse(model: type[ReaderModel], content: bytes) -> ReaderModel:
    raw = _json(content)
    version = raw.get("version") if isinstance(raw, dict) else None
    if version != VERSION:
        raise Unreadable(
            f"version {shown(repr(version), 40)} is not one this devbox-ctl reads ({VERSION})"
        )
    try:
        return model.model_validate(raw, strict=False)
    except PydanticValidationError as exc:
        raise Unreadable(_first_error(exc)) from exc


def parse_record(content: bytes) -> Record:
    """activity.json's content as a record; Unreadable with the reason otherwise."""
    return _parse(Record, content)


def parse_leases(content: bytes) -> Leases:
    """keepalive.json's content; Unreadable with the reason otherwise."""
    return _parse(Leases, content)


_ESCAPED = re.compile(rb"\\.", re.DOTALL)
_STRING = re.compile(rb'"[^"]*"')
_PAIR = re.compile(rb"\[[^\[\]{}]*\]|\{[^\[\]{}]*\}")


def _json(content: bytes) -> Any:
    """JSON of at most MAX_DEPTH levels; Unreadable otherwise (never a RecursionError)."""
    if len(content) > MAX_BYTES:
        raise Unreadable(f"it is larger than {MAX_BYTES} bytes")
    # Innermost brackets go away one level per round; what is left after MAX_DEPTH rounds
    # nests deeper (or does not balance, which json refuses as well).
    # Each pattern stops at the next quote or bracket, so every round is linear in the size.
    skeleton = _STRING.sub(b"", _ESCAPED.sub(b"", content))
    for _ in range(MAX_DEPTH):
        skeleton, removed = _PAIR.subn(b"", skeleton)
        if not removed:
            break
    if any(bracket in skeleton for bracket in (b"[", b"{")):
        if _PAIR.search(skeleton):
            raise Unreadable(f"it nests deeper than {MAX_DEPTH} levels")
        raise Unreadable("not JSON (its brackets do not balance)")
    try:
        return json.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise Unreadable(f"not JSON ({shown(exc)})") from exc


def _first_error(exc: PydanticValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "the document"
    return shown(f"{where}: {error['msg']}")


# The host's view


@dataclass(frozen=True)
class Observation:
    """What the volume says about a container's activity, as of `now`.

    `unknown` lists why activity could not be read; when it is not empty, activity counts
    as now (fail safe). `active_until` is the reach of the longest keep-alive lease.
    """

    signals: dict[str, Any]
    last_activity: datetime | None
    active_until: datetime | None
    unknown: list[str]


def latest(*times: datetime | None) -> datetime | None:
    """The latest of some times, None when none is known."""
    known = [t for t in times if t is not None]
    return max(known) if known else None


def unknown_because(why: str) -> Observation:
    """An observation that could not be made at all; activity counts as now."""
    return Observation({"monitor": {"state": f"unknown: {shown(why)}"}}, None, None, [shown(why)])


def observe(
    root: volume.Tree | None,
    *,
    container: str,
    running: bool,
    now: datetime,
    max_lease: timedelta,
) -> Observation:
    """Read the record and the leases from a volume (None: no volume).

    Never raises for what is on the volume: whatever cannot be read or trusted is unknown.
    """
    if root is None:
        return Observation(
            {"monitor": {"state": "unknown: the volume does not exist"}},
            None,
            None,
            ["the volume does not exist, so activity cannot be read"],
        )
    signals: dict[str, Any] = {}
    unknown: list[str] = []
    last = _record_signals(root, container, running, now, signals, unknown)
    until, lease_seen = _lease_signal(root, now, max_lease, signals, unknown)
    return Observation(signals, latest(last, lease_seen), until, unknown)


def _record_signals(
    root: volume.Tree,
    container: str,
    running: bool,
    now: datetime,
    signals: dict[str, Any],
    unknown: list[str],
) -> datetime | None:
    """Fill in the record's signals; return the latest lastSeen."""
    try:
        record = _read_record(root)
    except Unreadable as exc:
        signals["monitor"] = {"state": f"unknown: {exc}"}
        unknown.append(f"the activity record cannot be used: {exc}")
        return None
    for name in sorted(record.signals, key=_signal_order):
        state = record.signals[name]
        signals[shown(name)] = {"lastSeen": clock.timestamp(_whole(state.last_seen))} | (
            {} if state.sessions is None else {"sessions": state.sessions}
        )
    problem = _record_problem(record, container, running, now)
    signals["monitor"] = {
        "startedAt": clock.timestamp(_whole(record.monitor.started_at)),
        "updatedAt": clock.timestamp(_whole(record.monitor.updated_at)),
        "state": f"unknown: {problem}" if problem else "ok",
    }
    if problem:
        unknown.append(f"the activity record cannot be used: {problem}")
        return None
    return latest(*(_whole(s.last_seen) for s in record.signals.values()))


def _read_record(root: volume.Tree) -> Record:
    content = root.read(RECORD, MAX_BYTES)
    if content is None:
        raise Unreadable(f"{RECORD} does not exist (the monitor has not written yet)")
    return parse_record(content)


def _record_problem(record: Record, container: str, running: bool, now: datetime) -> str:
    """Why a parsed record says nothing reliable about now ("" when it does)."""
    if record.container != container:
        return f"it was written for {shown(repr(record.container))} (a restored volume?)"
    times = [record.monitor.started_at, record.monitor.updated_at] + [
        s.last_seen for s in record.signals.values() if s.last_seen is not None
    ]
    future = [t for t in times if t > now + SKEW]
    if future:
        return f"it is dated {clock.timestamp(_whole(max(future)))}, in the future (a clock jump?)"
    if record.monitor.updated_at < record.monitor.started_at:
        return "it was updated before its monitor started (a clock jump?)"
    interval = timedelta(seconds=max(record.monitor.interval_seconds, 1))
    stale_after = max(STALE_INTERVALS * interval, STALE_MINIMUM)
    if running and now - record.monitor.updated_at > stale_after:
        since = clock.timestamp(_whole(record.monitor.updated_at))
        return (
            f"the monitor has not written since {since} "
            "(the container or the host was down, or the monitor is broken)"
        )
    return ""


def _lease_signal(
    root: volume.Tree,
    now: datetime,
    max_lease: timedelta,
    signals: dict[str, Any],
    unknown: list[str],
) -> tuple[datetime | None, datetime | None]:
    """The leases' reach (when in the future) and the latest time they covered."""
    try:
        content = root.read(LEASES, MAX_BYTES)
        leases = parse_leases(content).leases if content is not None else []
    except Unreadable as exc:
        signals["leases"] = {"state": f"unknown: {exc}"}
        unknown.append(f"the keep-alive leases cannot be read: {exc}")
        return None, None
    if any(lease.created_at > now + SKEW for lease in leases):
        signals["leases"] = {"state": "unknown: a lease is dated in the future (a clock jump?)"}
        unknown.append("a keep-alive lease is dated in the future (a clock jump?)")
        return None, None
    # A lease reaches at most max_lease past its creation: the policy's maximum, which a
    # user inside the container cannot raise.
    reaches = [min(utc(lease.until), utc(lease.created_at) + max_lease) for lease in leases]
    reach = latest(*reaches)
    signals["leases"] = {
        "count": len(leases),
        "until": clock.timestamp(reach),
        "reasons": sorted({shown(lease.reason) for lease in leases if lease.reason}),
    }
    covered = None if reach is None else min(reach, now)
    return (reach if reach is not None and reach > now else None), covered


def utc(value: datetime) -> datetime:
    """A time in UTC, whole seconds (records may carry an offset or fractions)."""
    return value.astimezone(UTC).replace(microsecond=0)


def _whole(value: datetime | None) -> datetime | None:
    return None if value is None else utc(value)
