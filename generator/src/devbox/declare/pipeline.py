"""The generator's pipeline in one place: load → validate → model → render.

`desired` returns the validated, resolved model or raises one InputError with every problem
in both files; `build` renders it to the tree of files the generated directory must hold.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devbox.declare import load, render, validate
from devbox.declare.resolve import Desired, resolve
from devbox.errors import InputError, Problem

DEFAULT_USERS = "users.nix"
DEFAULT_CONTAINERS = "containers.json"
DEFAULT_OUT = "generated"


@dataclass(frozen=True)
class Paths:
    """Where the inputs are and where the generated tree goes."""

    users: Path
    containers: Path
    out: Path

    @classmethod
    def choose(
        cls, users: Path | None = None, containers: Path | None = None, out: Path | None = None
    ) -> Paths:
        """The defaults: users.nix and containers.json here, generated/ beside users.nix."""
        users = users or Path(DEFAULT_USERS)
        return cls(
            users=users,
            containers=containers or Path(DEFAULT_CONTAINERS),
            out=out or users.parent / DEFAULT_OUT,
        )

    @property
    def files(self) -> validate.Files:
        """How messages name the inputs."""
        return validate.Files(users=str(self.users), containers=str(self.containers))


_UNREAD = object()  # a file that could not be read at all (JSON null is a value)


def _attempt(read: Callable[[], Any], problems: list[Problem]) -> Any:
    try:
        return read()
    except InputError as exc:
        problems.extend(exc.problems)
        return _UNREAD


def desired(paths: Paths, containers_raw: Any = _UNREAD) -> Desired:
    """Read and validate both inputs; resolve them, or raise every problem at once.

    `containers_raw` replaces the content of containers.json (devbox-ctl checks a change
    before it writes it).
    """
    files = paths.files
    problems: list[Problem] = []
    users_raw = _attempt(lambda: load.read_users(load.Source.of(paths.users)), problems)
    if containers_raw is _UNREAD:
        containers_raw = _attempt(
            lambda: load.read_containers(load.Source.of(paths.containers)), problems
        )
    return validated(users_raw, containers_raw, files, problems)


def validated(
    users_raw: Any,
    containers_raw: Any,
    files: validate.Files,
    problems: list[Problem] | None = None,
) -> Desired:
    """Validate the two inputs' values and resolve them, or raise every problem at once."""
    problems = [] if problems is None else problems
    users = validate.check_users(users_raw, files.users) if users_raw is not _UNREAD else None
    records = (
        validate.check_containers(containers_raw, files.containers)
        if containers_raw is not _UNREAD
        else None
    )
    for checked in (users, records):
        if checked is not None:
            problems += checked.problems
    if users is not None and records is not None:
        problems += validate.cross_check(users, records, files)
    if problems or users is None or users.policy is None or records is None:
        raise InputError(problems)
    return resolve(users.users, users.policy, records.records)


def build(paths: Paths) -> tuple[Desired, render.Tree]:
    """The desired state and the generated tree it renders to."""
    state = desired(paths)
    return state, render.render(state)
