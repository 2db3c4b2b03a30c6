"""The value rules shared by the input models, the CLI and the docs: names, sizes, durations.

Each check returns `None` for a good value or the problem as `(message, fix)`, so the same rule
gives the same words wherever it is applied (containers.json, users.nix, `create` options).

Every pattern is applied with `fullmatch`: with `match` and a trailing `$`, a value ending in a
line break ("box" and a newline) passes, and such a value breaks every unit file it reaches.
Digits are written [0-9] (a digit class also matches other scripts' digits) and blanks as a
space (the white-space class matches a line break).
"""

from __future__ import annotations

import json
import math
import re
from datetime import date

CONTAINER_NAME = re.compile(r"[a-z](?:[a-z0-9-]{1,61}[a-z0-9])")
USER_NAME = re.compile(r"[a-z](?:[a-z0-9-]{0,30}[a-z0-9])?")
# A fleet host's name: a DNS label as networking.hostName takes it (lowercase here, so one host
# has one spelling), and a colmena node name.
HOST_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
# The attributes of colmena's hive that are not nodes (src/nix/hive/eval.nix, colmena 0.4.0).
RESERVED_HOST_NAMES = frozenset({"meta", "defaults", "network"})
# A host label (gpu, fast-disk): a short word a container can ask for.
LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?")
# Where SSH reaches a host: [user@]host, the host a DNS name, an IPv4 address or [IPv6]. Never
# starting with "-": the destination is a word of ssh's command line.
SSH_DESTINATION = re.compile(
    r"(?:[a-z_][a-z0-9_-]{0,31}@)?"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}))*"
    r"|\[[0-9A-Fa-f:.]{2,45}\])"
)
# Podman's size form: a whole number with an optional binary unit (k, m, g, t; any case).
MEMORY = re.compile(r"([1-9][0-9]{0,15})([bkmgtBKMGT]?)")
# An image reference as the NixOS module loads it: registry/path:tag, lowercase path.
IMAGE = re.compile(
    r"[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)+"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"
)
# systemd calendar events and time spans: a conservative alphabet, checked for real by
# `systemd-analyze verify` in the tests. Anything outside it cannot be a valid value anyway.
CALENDAR = re.compile(r"[A-Za-z0-9*~:.,/ -]{1,100}")
TIMESPAN = re.compile(
    r"(?: *[0-9]{1,12} *(?:us|usec|ms|msec|s|sec|second|seconds|m|min|minute|minutes|h|hr|hour"
    r"|hours|d|day|days|w|week|weeks|M|month|months|y|year|years)?){1,10} *"
)
# The times and days containers.json holds (RFC 3339, as devbox writes them, with an offset or
# Z), before Python's own parser, which accepts any character between the date and the time.
TIMESTAMP = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?"
    r"(?:Z|[+-][0-9]{2}:[0-9]{2})"
)
DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# A uid as sudo writes SUDO_UID.
UID = re.compile(r"[0-9]{1,10}")
# A DNS name is at most 253 characters.
SSH_DESTINATION_MAX = 253 + 33
MEMORY_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
# Podman refuses less than 6 MiB.
MEMORY_MIN_BYTES = 6 * 1024**2
MAX_TEXT = 200

Issue = tuple[str, str] | None


def show(value: object, limit: int = 60) -> str:
    """Quote a value for an error message: JSON form, long values shortened."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 4] + '…"'


def count(number: int, noun: str) -> str:
    """A count with its noun: "1 container", "2 containers"."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def container_name(value: str) -> Issue:
    """A container name becomes a DNS label and a Tailscale host name."""
    if CONTAINER_NAME.fullmatch(value):
        return None
    return (
        f"{show(value)} is not a valid name",
        "use 3–63 lowercase letters, digits and hyphens, starting with a letter and "
        "ending with a letter or digit",
    )


def user_name(value: str) -> Issue:
    """A user name is a Linux user name and part of the tag `tag:<user>-container`."""
    if USER_NAME.fullmatch(value):
        return None
    return (
        f"{show(value)} is not a valid user name",
        "use 1–32 lowercase letters, digits and hyphens, starting with a letter and ending "
        "with a letter or digit (it becomes the Tailscale tag tag:<user>-container)",
    )


def host_name(value: str) -> Issue:
    """A fleet host's name: its NixOS host name and its colmena node name."""
    if value in RESERVED_HOST_NAMES:
        return (
            f"{show(value)} cannot be a host name: colmena's hive uses it for itself",
            "name the host otherwise (and set its networking.hostName to match)",
        )
    if HOST_NAME.fullmatch(value):
        return None
    return (
        f"{show(value)} is not a valid host name",
        "use 1–63 lowercase letters, digits and hyphens, starting and ending with a letter or "
        "digit (the host's networking.hostName)",
    )


def label(value: str) -> Issue:
    """A host label a container can ask for (gpu)."""
    if LABEL.fullmatch(value):
        return None
    return (
        f"{show(value)} is not a valid label",
        "use 1–32 lowercase letters, digits and hyphens, e.g. gpu or fast-disk",
    )


def ssh_destination(value: str) -> Issue:
    """How SSH reaches a host: [user@]host."""
    if len(value) <= SSH_DESTINATION_MAX and SSH_DESTINATION.fullmatch(value):
        return None
    return (
        f"{show(value)} is not an SSH destination",
        'write [user@]host, e.g. "root@alpha.example.ts.net" or "root@10.0.0.2"',
    )


def memory_bytes(value: str) -> int | None:
    """The number of bytes a podman memory size means, or None if it is not one."""
    match = MEMORY.fullmatch(value)
    if not match:
        return None
    return int(match.group(1)) * MEMORY_UNITS[match.group(2).lower()]


def memory(value: str) -> Issue:
    """A memory size in podman's form, at least podman's minimum."""
    size = memory_bytes(value)
    if size is None:
        return (
            f"{show(value)} is not a memory size",
            'write a whole number with a unit, e.g. "512M" or "4G"',
        )
    if size < MEMORY_MIN_BYTES:
        return (f"{show(value)} is less than podman's minimum of 6M", 'use e.g. "512M" or more')
    return None


def disk_size(value: str) -> Issue:
    """A size on disk, written like a memory size ("20G")."""
    if memory_bytes(value) is None:
        return (
            f"{show(value)} is not a size",
            'write a whole number with a unit, e.g. "500M" or "20G"',
        )
    return None


def cpu(value: float, shown: str | None = None) -> Issue:
    """A CPU count: positive, finite, at most two decimals. `shown`: the value as typed."""
    text = shown if shown is not None else show(value)
    if isinstance(value, bool) or not math.isfinite(value) or value <= 0:
        return (f"{text} is not a positive number of CPUs", "use e.g. 2 or 0.5")
    if round(value, 2) != value:
        return (f"{text} has more than two decimals", "round it, e.g. 1.5")
    return None


def format_cpu(value: float) -> str:
    """The CPU count as podman's --cpus takes it: 2 rather than 2.0."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def single_line(value: str, limit: int = MAX_TEXT) -> Issue:
    """Free text that ends up in messages, labels or logs: one line of printable characters."""
    if not value.strip():
        return ("is empty", "write a short text")
    if len(value) > limit:
        return (f"is {len(value)} characters long", f"keep it to {limit} characters")
    if any(not ch.isprintable() for ch in value):
        return (
            f"{show(value)} contains a line break or control character",
            "write it on one line",
        )
    return None


def reference_part(value: str) -> Issue:
    """A 1Password vault or field name: one line, and no slash.

    A slash would move the reference op://<vault>/<item>/<field> to another item.
    """
    issue = single_line(value, limit=100)
    if issue is None and "/" in value:
        return (f"{show(value)} contains a slash", "use the vault's or field's name without /")
    return issue


def image(value: str) -> Issue:
    """The image reference the units run, e.g. localhost/devbox/devcontainer:latest."""
    if IMAGE.fullmatch(value) and len(value) <= 255:  # noqa: PLR2004 - podman's limit
        return None
    return (
        f"{show(value)} is not an image reference",
        'use the form "localhost/devbox/devcontainer:latest"',
    )


def calendar(value: str) -> Issue:
    """A systemd calendar event such as `daily` or `*-*-* 03:00:00`."""
    if CALENDAR.fullmatch(value):
        return None
    return (
        f"{show(value)} is not a systemd calendar event",
        'use e.g. "daily" or "*-*-* 03:00:00" (see systemd.time(7))',
    )


def timespan(value: str) -> Issue:
    """A systemd time span such as `1h` or `30min`."""
    if TIMESPAN.fullmatch(value):
        return None
    return (f"{show(value)} is not a systemd time span", 'use e.g. "1h" or "30min"')


def timestamp(value: str) -> Issue:
    """An RFC 3339 time with its offset, as containers.json holds them."""
    if TIMESTAMP.fullmatch(value):
        return None
    return (f"{show(value)} is not a time in UTC", 'write it like "2026-11-26T09:30:00Z"')


def parse_day(value: str) -> date | None:
    """The day a text names in the one form devbox reads ("2026-12-24"), or None."""
    if not DAY.fullmatch(value):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def uid(value: str) -> bool:
    """Whether a text is a uid written in ASCII digits (SUDO_UID)."""
    return UID.fullmatch(value) is not None
