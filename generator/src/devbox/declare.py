"""Changing the declaration: containers.json, the generated tree and a commit, as one step.

Every change devbox-ctl makes (create, start, stop, destroy, pin, …) runs through `edit`:
under an exclusive lock on the config directory it reads containers.json, applies the change,
validates the result with every generator rule (limits included), writes containers.json
atomically, regenerates the tree and commits both with a message that says who did what.
Two changes at once are serialised by the lock, so neither a limit nor the file can be broken;
a change that fails validation writes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devbox import gitrepo, load, pipeline, render, write
from devbox.errors import InputError, Problem, UsageError
from devbox.models import SCHEMA_VERSION
from devbox.resolve import Desired

FIELD_ORDER = (
    "name",
    "owner",
    "cpu",
    "memory",
    "syncthing",
    "state",
    "created",
    "stoppedAt",
    "pin",
)

Records = list[dict[str, Any]]


@dataclass(frozen=True)
class Edited:
    """The declaration after a change, and the commit that records it (None: no change)."""

    desired: Desired
    commit: str | None


def dump(document: dict[str, Any]) -> bytes:
    """containers.json as devbox-ctl writes it: fields in a fixed order, two-space indent."""

    def ordered(record: dict[str, Any]) -> dict[str, Any]:
        known = {key: record[key] for key in FIELD_ORDER if key in record}
        return known | {key: value for key, value in record.items() if key not in known}

    body = {
        "version": document.get("version", SCHEMA_VERSION),
        "containers": [ordered(r) for r in document.get("containers", [])],
    }
    return (json.dumps(body, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def find(records: Records, name: str) -> dict[str, Any] | None:
    """The record of a container, or None."""
    return next((r for r in records if isinstance(r, dict) and r.get("name") == name), None)


def required(records: Records, name: str) -> dict[str, Any]:
    """The record of a container that must still be declared (another change may have won)."""
    record = find(records, name)
    if record is None:
        raise UsageError(f"{name} is no longer declared (another change removed it)")
    return record


def _read(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {"version": SCHEMA_VERSION, "containers": []}
    document = load.read_containers(load.Source.of(path))
    if not isinstance(document, dict) or not isinstance(document.get("containers"), list):
        raise InputError(
            [Problem(str(path), "containers", "is not a list of records", "fix containers.json")]
        )
    return document


def current(paths: pipeline.Paths) -> Desired:
    """The declaration as it is now."""
    return pipeline.desired(paths, containers_raw=_read(paths.containers))


def edit(
    paths: pipeline.Paths, repo: Path, change: Callable[[Records], str], *, who: str
) -> Edited:
    """Apply a change to the records and record it; `change` returns the commit subject."""
    with write.locked(paths.containers.parent):
        document = _read(paths.containers)
        subject = change(document["containers"])
        desired = pipeline.desired(paths, containers_raw=document)
        write.write_file(paths.containers, dump(document))
        write.write_tree(paths.out, render.render(desired))
        message = f"{subject}\n\nRequested by {who} with devbox-ctl."
        commit = gitrepo.commit(repo, [paths.containers, paths.out], message)
    return Edited(desired, commit)
