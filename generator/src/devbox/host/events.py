"""The append-only event log of everything that happens to containers.

One JSON line per stop, start, create, destroy, restore, warning or pin, with who or what did
it, why, and the signals and policy at that moment.

The file is root's (`<stateDir>/events.jsonl`, mode 0640); `devbox-ctl events` reads it. The
git history of containers.json carries the declarative side.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from devbox import clock, write


def record(path: Path, action: str, container: str, actor: str, **details: Any) -> dict[str, Any]:
    """Append one event; return it."""
    event = {
        "time": clock.timestamp(clock.now()),
        "action": action,
        "container": container,
        "actor": actor,
        **{key: value for key, value in details.items() if value is not None},
    }
    # ASCII only: a control, line-separator or bidirectional character from a user's volume
    # is a \u escape in the file, never a byte a terminal or a line reader acts on.
    write.append_line(path, json.dumps(event, sort_keys=True, ensure_ascii=True, default=str))
    return event


def read(path: Path) -> list[dict[str, Any]]:
    """Every event, oldest first; a line that is not JSON (a torn write) is skipped."""
    if not path.is_file():
        return []
    events = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events


def select(
    events: list[dict[str, Any]],
    *,
    container: str | None = None,
    since: str | None = None,
    may_see: Callable[[dict[str, Any]], bool] = lambda _event: True,
) -> list[dict[str, Any]]:
    """The events of one container (or all), at or after a time (RFC 3339, UTC), may_see's."""
    return [
        event
        for event in events
        if (container is None or event.get("container") == container)
        and (since is None or str(event.get("time", "")) >= since)
        and may_see(event)
    ]
