"""The generator's pipeline in one place: load → validate → model → render → diff → write.

`desired` returns the validated, resolved model or raises one InputError with every problem
in both files; `build` renders it to the tree of files the generated directory must hold.
`generate`, `check` and `plan` are the three commands' whole work; `write_out` is the one
step that puts a rendered tree on disk (generate, and every change a runtime verb makes).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devbox.declare import generated_tree, load, render, validate
from devbox.declare import plan as planning
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
    # Where users.nix's evaluation is kept (root's state directory); None: evaluated each time.
    users_cache: Path | None = None

    @classmethod
    def choose(
        cls, users: Path | None = None, containers: Path | None = None, out: Path | None = None
    ) -> Paths:
        """The defaults: users.nix here; containers.json and generated/ beside users.nix.

        Beside users.nix, as the NixOS module's containersFile and generatedDirInRepo are: one
        `--users devbox/users.nix` finds the whole declaration wherever the command runs.
        """
        users = users or Path(DEFAULT_USERS)
        return cls(
            users=users,
            containers=containers or users.parent / DEFAULT_CONTAINERS,
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
    users_raw = _attempt(
        lambda: load.read_users(load.Source.of(paths.users), paths.users_cache), problems
    )
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
    return resolve(users.users, users.policy, records.records, users.hosts)


def build(paths: Paths) -> tuple[Desired, generated_tree.Contents]:
    """The desired state and the generated tree it renders to."""
    state = desired(paths)
    return state, render.render(state)


def write_out(
    paths: Paths, tree: generated_tree.Contents, *, dry_run: bool = False
) -> generated_tree.Report:
    """Replace the generated tree with `tree`, writing only changed files (or, dry_run, none)."""
    return generated_tree.write_tree(paths.out, tree, dry_run=dry_run)


@dataclass(frozen=True)
class Generated:
    """What `generate` wrote, or would write."""

    out: Path
    dry_run: bool
    report: generated_tree.Report

    def counts(self) -> dict[str, int]:
        """How many files were created, updated, left unchanged, moved, removed.

        Moved (a single host's tree becoming its slice of a fleet) only when there are any.
        """
        counts = {change.value: self.report.count(change) for change in generated_tree.Change}
        if not counts[generated_tree.Change.MOVED]:
            del counts[generated_tree.Change.MOVED]
        return counts

    def as_json(self) -> dict[str, Any]:
        """`generate --json`."""
        return {
            "out": str(self.out),
            "dryRun": self.dry_run,
            "files": {path: change.value for path, change in self.report.changes.items()},
            "moves": self.report.moves,
            "counts": self.counts(),
        }


def generate(paths: Paths, *, dry_run: bool = False) -> Generated:
    """Render the inputs and write the generated tree."""
    _, tree = build(paths)
    return Generated(paths.out, dry_run, write_out(paths, tree, dry_run=dry_run))


@dataclass(frozen=True)
class Drift:
    """How the generated directory differs from what the inputs produce."""

    out: Path
    on_disk: generated_tree.Contents
    expected: generated_tree.Contents
    changes: dict[str, generated_tree.Change]

    def as_json(self) -> dict[str, Any]:
        """`check --json`."""
        return {
            "out": str(self.out),
            "upToDate": not self.changes,
            "files": {p: c.value for p, c in self.changes.items()},
        }

    def diff(self, path: str) -> str:
        """The unified diff of one file, from the directory to what the inputs produce."""
        old, new = self.on_disk.get(path), self.expected.get(path)
        before = [] if old is None else old.decode("utf-8", "replace").splitlines(keepends=True)
        after = [] if new is None else new.decode("utf-8", "replace").splitlines(keepends=True)
        lines = difflib.unified_diff(
            before,
            after,
            fromfile=f"{self.out}/{path}" if old is not None else "/dev/null",
            tofile=f"{self.out}/{path} (from the inputs)" if new is not None else "/dev/null",
        )
        return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def check(paths: Paths) -> Drift:
    """Compare the generated directory with what the inputs produce."""
    _, tree = build(paths)
    on_disk = generated_tree.read_tree(paths.out)
    changes: dict[str, generated_tree.Change] = {
        path: change
        for path, change in generated_tree.compare(on_disk, tree).items()
        if change is not generated_tree.Change.UNCHANGED
    }
    return Drift(paths.out, on_disk, tree, changes)


def plan(paths: Paths) -> planning.Plan:
    """What a rebuild would change, and the generated files edited by hand."""
    desired_state, tree = build(paths)
    if desired_state.fleet:
        on_disk = generated_tree.read_tree(paths.out)
        return planning.compute_fleet(paths.out, desired_state, tree, on_disk)
    old = planning.read_old(paths.out)
    result = planning.compute(old, desired_state, tree)
    result.drifted = planning.drift(old, generated_tree.read_tree(paths.out))
    return result
