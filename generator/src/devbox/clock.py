"""The time, from one place.

Now, how devbox writes a time and a day, and the durations people type (90m, 48h, 3d, 2w).
Tests move the time by monkeypatching `devbox.clock.now`.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from devbox.errors import UsageError

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_DURATION = re.compile(r"([0-9]{1,6})([smhdw])")


def now() -> datetime:
    """The current time in UTC, whole seconds."""
    return datetime.now(UTC).replace(microsecond=0)


def timestamp(value: datetime | None) -> str | None:
    """A time as devbox writes it: UTC, whole seconds, with a Z."""
    return None if value is None else value.strftime("%Y-%m-%dT%H:%M:%SZ")


def day(value: date) -> str:
    """A calendar day as devbox writes it."""
    return value.isoformat()


def parse_duration(text: str) -> timedelta:
    """A duration like 90m, 48h, 3d or 2w; UsageError otherwise."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise UsageError(
            f"{text!r} is not a duration", hint="write a number and a unit: 90m, 48h, 3d, 2w"
        )
    if int(match.group(1)) == 0:
        raise UsageError(
            f"{text!r} is no time at all: a duration must be positive",
            hint="write at least 1m, e.g. 90m, 48h, 3d, 2w",
        )
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
