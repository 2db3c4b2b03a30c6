"""The journal of a move under way: <stateDir>/moves/<name>.json (runtime/moves.py).

It remembers what a rerun of an interrupted move cannot read from the declaration any more:
the source, the target and whether the container was running. It belongs to one container,
by owner and creation time, not by its name: a destroy removes its container's journal, and
a journal of another container of the same name (left from before destroys did) is set aside
where it is kept for an admin to read, never followed by a move or a drain.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devbox import clock, write
from devbox.declare.resolve import Container
from devbox.errors import UsageError
from devbox.host.context import Runtime

VERSION = 1


@dataclass(frozen=True)
class Journal:
    """What a move under way remembers."""

    name: str
    owner: str
    created: str | None
    source: str
    target: str
    was_running: bool

    def as_json(self) -> dict[str, Any]:
        """The journal file's content."""
        return {
            "version": VERSION,
            "name": self.name,
            "owner": self.owner,
            "created": self.created,
            "source": self.source,
            "target": self.target,
            "wasRunning": self.was_running,
        }


def path(rt: Runtime, name: str) -> Path:
    """Where the journal of a move of the container NAME is kept."""
    return rt.config.state_dir / "moves" / f"{name}.json"


def read(rt: Runtime, name: str) -> Journal | None:
    """The journal of a move of this container under way, or None."""
    file = path(rt, name)
    try:
        raw = json.loads(file.read_text(encoding="utf-8"))
        return Journal(
            name=str(raw["name"]),
            owner=str(raw["owner"]),
            created=raw.get("created"),
            source=str(raw["source"]),
            target=str(raw["target"]),
            was_running=bool(raw["wasRunning"]),
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(
            f"{file} cannot be read ({exc})",
            hint="it is the journal of a move; remove it once the container is known to be on "
            "one host only (devbox-ctl status NAME)",
        ) from exc


def save(rt: Runtime, journal: Journal) -> None:
    """Write the journal (atomically)."""
    file = path(rt, journal.name)
    write.ensure_directory(file.parent, mode=0o700)
    write.write_file(file, (json.dumps(journal.as_json(), indent=2) + "\n").encode())


def belongs(journal: Journal, container: Container) -> bool:
    """Whether the journal is of this container (its owner and creation, not its name)."""
    return (journal.owner, journal.created) == (
        container.owner,
        clock.timestamp(container.created),
    )


def of(rt: Runtime, container: Container) -> tuple[Journal | None, Path | None]:
    """The journal of a move of this very container, and where another's was set aside.

    A journal of another container of that name is renamed beside it, with that container's
    creation time in its name: kept for an admin, never followed.
    """
    journal = read(rt, container.name)
    if journal is None or belongs(journal, container):
        return journal, None
    # Letters and digits only: the name stays one file beside the journal, whatever it says.
    created = re.sub(r"[^0-9A-Za-z]", "", journal.created or "") or "unknown"
    aside = path(rt, container.name).with_name(f"{container.name}.{created}.json")
    path(rt, container.name).replace(aside)
    return None, aside


def forget(rt: Runtime, container: Container) -> None:
    """Remove the journal of this container (its destroy): another container's stays."""
    journal = read(rt, container.name)
    if journal is not None and belongs(journal, container):
        write.remove_file(path(rt, container.name))
