"""How text that a container's user wrote is shown: one function, for terminals and logs.

Signal names, lease reasons, repository paths, git's messages and everything else read from
a volume are the user's bytes. Printed as they are, an escape sequence would reach an
admin's terminal and a newline would forge a line of `cleanup --dry-run`, `status --why` or
the event log. `shown` is applied where such text enters devbox's own data (activity.py,
lifecycle/work.py, runtime/listing.py, and a container's tailscaled answer in
tools/tailscale.py) and again where text is printed (a fleet host's answers on the control
host: runtime/fleet.py, fleet_views.py), so both layers hold alone.
"""

from __future__ import annotations

# The longest text from a volume that is shown; the rest is cut off.
LIMIT = 200
_BYTE = 0x100
_BASIC = 0x10000


def shown(text: object, limit: int = LIMIT) -> str:
    r"""Text safe to print: every character that is not printable as itself is escaped.

    Control characters (C0, DEL, C1), line and paragraph separators, bidirectional and other
    format characters become `\xNN`, `\uNNNN` or `\UNNNNNNNN`; printable text, spaces
    included, stays as it is. The result is printable, so applying it again changes nothing.
    What is longer than `limit` is cut there and ends in `…`.
    """
    value = str(text)[: limit * 10 + 1]  # an escape is at most 10 characters long
    if not value.isprintable():
        value = "".join(ch if ch.isprintable() else _escape(ch) for ch in value)
    return value[:limit] + "…" if len(value) > limit else value


def _escape(ch: str) -> str:
    code = ord(ch)
    if code < _BYTE:
        return f"\\x{code:02x}"
    if code < _BASIC:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"
