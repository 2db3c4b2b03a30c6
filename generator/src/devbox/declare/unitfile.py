"""Escaping for systemd and Quadlet unit files: the one place where values meet unit syntax.

Templates pass every interpolated value through one of two filters, and the template
environment refuses output that went through neither (see `finalize`), so a value cannot reach
a unit file unescaped:

- `setting`: a whole setting value read as-is by systemd or Quadlet (`Description=`,
  `ContainerName=`, `OnCalendar=`): `%` starts a specifier, so it is doubled.
- `word`: one word of a list that Quadlet copies into the `ExecStart=` of the service it writes
  (`Environment=`, `Label=`, `Secret=`, `PodmanArgs=`): besides `%`, systemd expands `$` in
  `ExecStart=`, so it is doubled too, and the word is double-quoted when it holds white space,
  quotes or backslashes (Quadlet unquotes it and quotes it again for `ExecStart=`).

Neither can carry a line break or another control character: those are refused.
"""

from __future__ import annotations

import re

_NEEDS_QUOTES = re.compile(r"""[\s"'\\;]""")


class UnitValueError(ValueError):
    """A value that cannot be written into a unit file at all."""


class Escaped(str):
    """A value that has been escaped for a unit file."""

    __slots__ = ()


def check_line(value: str) -> str:
    """Return the value if it is one line of printable characters, else raise."""
    # isprintable() is False for line breaks, tabs and other control and separator
    # characters; the space is the one blank it accepts.
    if not value.isprintable():
        raise UnitValueError(f"{value!r} contains a control character or line break")
    return value


def escape_specifiers(value: str) -> str:
    """Double every `%`, so systemd reads it as a literal percent sign."""
    return value.replace("%", "%%")


def setting(value: object) -> Escaped:
    """Escape a whole setting value."""
    return Escaped(escape_specifiers(check_line(str(value))))


def word(value: object) -> Escaped:
    """Escape one word that Quadlet passes on to podman through `ExecStart=`."""
    text = escape_specifiers(check_line(str(value))).replace("$", "$$")
    if text and not _NEEDS_QUOTES.search(text):
        return Escaped(text)
    return Escaped('"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"')


def finalize(value: object) -> str:
    """Jinja's last step for every `{{ … }}`: only escaped values may be written."""
    if isinstance(value, Escaped):
        return value
    raise UnitValueError(f"template wrote {value!r} without the setting or word filter; escape it")
