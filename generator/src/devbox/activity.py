"""Activity: the monitor's record and the keep-alive leases on a container's volume.

Two sides share the formats of docs/container-interface.md:

- inside the container, `devbox-ctl monitor` (monitor.py) and `devbox-ctl keepalive` write
  `~/.local/state/devbox/activity.json` and `keepalive.json` with the models and functions
  here;
- on the host, `observe` reads both straight from the volume's directory, without starting
  the container, and turns them into the signals the lifecycle engine (lifecycle.py) decides
  on.

Reading is fail-safe: a record that is missing, unreadable, of an unknown version, dated in
the future or no longer updated while the container should be running makes activity
*unknown*, and unknown counts as activity now, never as idleness (docs/lifecycle.md).
The host reads files the container's user controls, as root: every path is opened below the
volume's directory one component at a time without following symbolic links, only regular
files are read, and at most a megabyte of each.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictInt, StrictStr
from pydantic import ValidationError as PydanticValidationError
from pydantic.alias_generators import to_camel

from devbox import resolve, write

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

    last_seen: AwareDatetime | None = None
    sessions: StrictInt | None = None


class MonitorState(Reader):
    """When the monitor that wrote the record started and last wrote."""

    started_at: AwareDatetime
    updated_at: AwareDatetime
    interval_seconds: StrictInt = INTERVAL


class Record(Reader):
    """activity.json."""

    version: StrictInt
    container: StrictStr
    monitor: MonitorState
    signals: dict[str, SignalState] = Field(default_factory=dict)

    def to_json(self) -> bytes:
        """The record exactly as docs/container-interface.md shows it."""
        signals: dict[str, dict[str, Any]] = {}
        for name in sorted(self.signals, key=_signal_order):
            state = self.signals[name]
            signals[name] = {"lastSeen": resolve.timestamp(state.last_seen)}
            if state.sessions is not None:
                signals[name]["sessions"] = state.sessions
        body = {
            "version": self.version,
            "container": self.container,
            "monitor": {
                "startedAt": resolve.timestamp(self.monitor.started_at),
                "updatedAt": resolve.timestamp(self.monitor.updated_at),
                "intervalSeconds": self.monitor.interval_seconds,
            },
            "signals": signals,
        }
        return (json.dumps(body, indent=2) + "\n").encode("utf-8")


class Lease(Reader):
    """A keep-alive lease: activity until a time, with the reason."""

    id: StrictStr
    until: AwareDatetime
    reason: StrictStr = ""
    created_at: AwareDatetime


class Leases(Reader):
    """keepalive.json."""

    version: StrictInt
    leases: list[Lease] = Field(default_factory=list)

    def to_json(self) -> bytes:
        """The leases as docs/container-interface.md shows them."""
        body = {
            "version": self.version,
            "leases": [
                {
                    "id": lease.id,
                    "until": resolve.timestamp(lease.until),
                    "reason": lease.reason,
                    "createdAt": resolve.timestamp(lease.created_at),
                }
                for lease in self.leases
            ],
        }
        return (json.dumps(body, indent=2) + "\n").encode("utf-8")


def _signal_order(name: str) -> tuple[int, str]:
    return (SIGNALS.index(name) if name in SIGNALS else len(SIGNALS), name)


class Unreadable(Exception):  # noqa: N818 - a state of a file, not a failure of devbox
    """A file on the volume that cannot be trusted; the message says why."""


# Reading from a volume, as root, without following the container user's links


def read_inside(root: Path, relative: PurePosixPath, limit: int = MAX_BYTES) -> bytes | None:
    """A regular file below root, or None when it does not exist.

    Raises Unreadable for a link, a device, a fifo, a file larger than the limit, or an error.
    """
    try:
        fd = _open_inside(root, relative)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise Unreadable(f"{relative}: {exc.strerror or exc}") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise Unreadable(f"{relative} is not a regular file")
        if info.st_size > limit:
            raise Unreadable(f"{relative} is larger than {limit} bytes")
        return os.read(fd, limit + 1)
    finally:
        os.close(fd)


def mtime_inside(root: Path, relative: PurePosixPath) -> datetime | None:
    """The modification time of a file below root (UTC, whole seconds), or None."""
    try:
        fd = _open_inside(root, relative)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise Unreadable(f"{relative}: {exc.strerror or exc}") from exc
    try:
        return from_epoch(os.fstat(fd).st_mtime)
    finally:
        os.close(fd)


def _open_inside(root: Path, relative: PurePosixPath) -> int:
    """Open root/relative, refusing a symbolic link at every step."""
    parts = relative.parts
    if not parts or any(part in ("..", "/", "") for part in parts):
        raise FileNotFoundError(errno.ENOENT, "not a path inside the volume", str(relative))
    directory = write.open_volume_root(root)
    try:
        for part in parts[:-1]:
            following = os.open(
                part,
                os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                dir_fd=directory,
            )
            os.close(directory)
            directory = following
        return os.open(
            parts[-1],
            os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
            dir_fd=directory,
        )
    finally:
        os.close(directory)


def from_epoch(seconds: float) -> datetime:
    """A file time (seconds since the epoch) in UTC, whole seconds."""
    return datetime.fromtimestamp(int(seconds), UTC)


# Parsing


def _parse(model: type[ReaderModel], content: bytes) -> ReaderModel:
    raw = _json(content)
    version = raw.get("version") if isinstance(raw, dict) else None
    if version != VERSION:
        raise Unreadable(f"version {version!r} is not one this devbox-ctl reads ({VERSION})")
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


def _json(content: bytes) -> Any:
    try:
        return json.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise Unreadable(f"not JSON ({exc})") from exc


def _first_error(exc: PydanticValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "the document"
    return f"{where}: {error['msg']}"


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


def observe(
    root: Path | None,
    *,
    container: str,
    running: bool,
    now: datetime,
    max_lease: timedelta,
) -> Observation:
    """Read the record and the leases below a volume's directory (None: no volume)."""
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
    root: Path,
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
        signals[name] = {"lastSeen": resolve.timestamp(_whole(state.last_seen))} | (
            {} if state.sessions is None else {"sessions": state.sessions}
        )
    problem = _record_problem(record, container, running, now)
    signals["monitor"] = {
        "startedAt": resolve.timestamp(_whole(record.monitor.started_at)),
        "updatedAt": resolve.timestamp(_whole(record.monitor.updated_at)),
        "state": f"unknown: {problem}" if problem else "ok",
    }
    if problem:
        unknown.append(f"the activity record cannot be used: {problem}")
        return None
    return latest(*(_whole(s.last_seen) for s in record.signals.values()))


def _read_record(root: Path) -> Record:
    content = read_inside(root, RECORD)
    if content is None:
        raise Unreadable(f"{RECORD} does not exist (the monitor has not written yet)")
    return parse_record(content)


def _record_problem(record: Record, container: str, running: bool, now: datetime) -> str:
    """Why a parsed record says nothing reliable about now ("" when it does)."""
    if record.container != container:
        return f"it was written for {record.container!r} (a restored volume?)"
    times = [record.monitor.started_at, record.monitor.updated_at] + [
        s.last_seen for s in record.signals.values() if s.last_seen is not None
    ]
    future = [t for t in times if t > now + SKEW]
    if future:
        return (
            f"it is dated {resolve.timestamp(_whole(max(future)))}, in the future (a clock jump?)"
        )
    if record.monitor.updated_at < record.monitor.started_at:
        return "it was updated before its monitor started (a clock jump?)"
    interval = timedelta(seconds=max(record.monitor.interval_seconds, 1))
    stale_after = max(STALE_INTERVALS * interval, STALE_MINIMUM)
    if running and now - record.monitor.updated_at > stale_after:
        since = resolve.timestamp(_whole(record.monitor.updated_at))
        return (
            f"the monitor has not written since {since} "
            "(the container or the host was down, or the monitor is broken)"
        )
    return ""


def _lease_signal(
    root: Path,
    now: datetime,
    max_lease: timedelta,
    signals: dict[str, Any],
    unknown: list[str],
) -> tuple[datetime | None, datetime | None]:
    """The leases' reach (when in the future) and the latest time they covered."""
    try:
        content = read_inside(root, LEASES)
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
        "until": resolve.timestamp(reach),
        "reasons": sorted({lease.reason for lease in leases if lease.reason}),
    }
    covered = None if reach is None else min(reach, now)
    return (reach if reach is not None and reach > now else None), covered


def utc(value: datetime) -> datetime:
    """A time in UTC, whole seconds (records may carry an offset or fractions)."""
    return value.astimezone(UTC).replace(microsecond=0)


def _whole(value: datetime | None) -> datetime | None:
    return None if value is None else utc(value)
