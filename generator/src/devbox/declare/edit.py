"""Changing the declaration: containers.json, the generated tree and a commit, as one step.

Every change devbox-ctl makes (create, start, stop, destroy, pin, …) runs through `edit`:
under an exclusive lock on the config directory it reads containers.json, applies the change,
validates the result with every generator rule (limits included) and renders the generated
tree from it; only then does it write containers.json atomically, swap in the tree and commit
both with a message that says who did what. Two changes at once are serialised by the lock, so
neither a limit nor the file can be broken. A change that fails validation or rendering writes
nothing; one whose write or commit fails puts containers.json and the tree back as they were.

The change runs under the lock against the declaration as it is then, so it is where every
decision that depends on the declaration is re-checked. Records are identified by name *and*
owner and creation time (`same`), never by name alone: a name freed by a destroy can be taken
by another user at any moment.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from devbox import clock, rules, write
from devbox.declare import generated_tree, load, pipeline, render, unitfile
from devbox.declare.models import SCHEMA_VERSION
from devbox.declare.resolve import Container, Desired
from devbox.errors import InputError, Problem, UsageError
from devbox.tools import gitrepo

FIELD_ORDER = (
    "name",
    "owner",
    "host",
    "labels",
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


def record_named(records: Records, name: str) -> dict[str, Any] | None:
    """The record of a container, or None."""
    return next((r for r in records if isinstance(r, dict) and r.get("name") == name), None)


def same(record: object, container: Container) -> bool:
    """Whether a record is the one this container was resolved from (not a namesake)."""
    return (
        isinstance(record, dict)
        and record.get("name") == container.name
        and record.get("owner") == container.owner
        and _created(record.get("created")) == container.created
    )


def _created(value: object) -> datetime | None:
    """A record's creation time as the model reads it (None: absent or unreadable)."""
    if not isinstance(value, str) or rules.timestamp(value):
        return None
    try:
        return datetime.fromisoformat(value).astimezone(UTC).replace(microsecond=0)
    except ValueError:
        return None


def new_record(
    name: str,
    owner: str,
    *,
    cpu: object = None,
    memory: object = None,
    syncthing: bool = False,
    state: str,
    created: datetime,
    host: str | None = None,
    labels: tuple[str, ...] = (),
) -> dict[str, Any]:
    """A new container's record: only what differs from the users.nix defaults is written."""
    record: dict[str, Any] = {"name": name, "owner": owner}
    record |= {"host": host} if host is not None else {}
    record |= {"labels": sorted(labels)} if labels else {}
    record |= {"cpu": cpu} if cpu is not None else {}
    record |= {"memory": memory} if memory is not None else {}
    record |= {"syncthing": True} if syncthing else {}
    return record | {"state": state, "created": clock.timestamp(created)}


def required(records: Records, container: Container) -> dict[str, Any]:
    """The record of a container that must still be declared as it was read.

    Another change may have removed it, or removed it and given its name to someone else.
    """
    record = record_named(records, container.name)
    if record is None or not same(record, container):
        raise UsageError(
            f"{container.name} is no longer declared as it was (another change removed or "
            "replaced it)",
            hint=f"devbox-ctl status {container.name} shows it as it is now",
        )
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


def _checked(
    paths: pipeline.Paths, document: dict[str, Any]
) -> tuple[Desired, generated_tree.Contents]:
    """The declaration a document makes and the tree it renders to, or the reason it cannot.

    Rendering is part of the check: a value that validation let through but no unit file can
    hold must be refused before anything is written, not after.
    """
    desired = pipeline.desired(paths, containers_raw=document)
    try:
        tree = render.render(desired)
    except unitfile.UnitValueError as exc:
        raise InputError(
            [
                Problem(
                    str(paths.containers),
                    "",
                    f"cannot be written as unit files: {exc}",
                    "correct that value in containers.json or users.nix",
                )
            ]
        ) from exc
    return desired, tree


def preview(paths: pipeline.Paths, change: Callable[[Records], object]) -> Desired:
    """The declaration a change would make now, checked and rendered; nothing is written.

    A verb that acts on the host before it records its change (destroy) asks first, so a
    change that could not be recorded is refused before anything is done.
    """
    with write.locked(paths.containers.parent):
        document = _read(paths.containers)
        change(document["containers"])
        return _checked(paths, document)[0]


def edit(
    paths: pipeline.Paths, repo: Path, change: Callable[[Records], str], *, who: str
) -> Edited:
    """Apply a change to the records and record it; `change` returns the commit subject."""
    with write.locked(paths.containers.parent):
        document = _read(paths.containers)
        subject = change(document["containers"])
        desired, tree = _checked(paths, document)
        message = f"{subject}\n\nRequested by {who} with devbox-ctl."
        with _restored_on_failure(paths):
            write.write_file(paths.containers, dump(document))
            pipeline.write_out(paths, tree)
            commit = gitrepo.commit(repo, [paths.containers, paths.out], message)
    return Edited(desired, commit)


@contextlib.contextmanager
def _restored_on_failure(paths: pipeline.Paths) -> Iterator[None]:
    """Put containers.json and the generated tree back as they were if the block fails."""
    before = paths.containers.read_bytes() if paths.containers.exists() else None
    had_tree = paths.out.is_dir()
    tree = generated_tree.read_tree(paths.out)
    try:
        yield
    except BaseException:
        if before is None:
            write.remove_file(paths.containers)
        else:
            write.write_file(paths.containers, before)
        if had_tree:
            generated_tree.write_tree(paths.out, tree)
        else:
            write.remove_tree(paths.out)
        raise
