"""The generated tree: read, compared with a new one, and replaced as a whole.

The tree is replaced as a whole, so a kill at any moment leaves the old tree or the new one,
never a mix: the new tree is built in a sibling staging directory (files whose content did
not change are hard links to the old ones, so they keep their mtime), then the two directories
are swapped in one `renameat2(RENAME_EXCHANGE)`. Where the file system cannot exchange, two
renames are used and the next run restores the old tree if a crash fell between them.

When one host becomes a fleet, its tree becomes one host's slice (hosts/<host>/…): those files
are reported as moved, not as removed and created, and are linked like unchanged ones.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from devbox.declare import manifest
from devbox.errors import UsageError
from devbox.write import fsync_directory, locked, sync_filesystem, write_exclusive

Contents = dict[str, bytes]

MANIFEST = "manifest.json"
_RENAME_EXCHANGE = 2
_WRITERS = 8
_AT_FDCWD = -100


class Change(StrEnum):
    """What writing did, or would do, to one file."""

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    MOVED = "moved"  # the same bytes, now in this host's slice of a fleet (see `former_host`)
    REMOVED = "removed"


@dataclass(frozen=True)
class Report:
    """Each file of the old and the new tree, with its change.

    A moved file is listed at its new path; `moves` gives its old path.
    """

    changes: dict[str, Change]
    moves: dict[str, str] = field(default_factory=dict)  # new path -> old path

    @property
    def changed(self) -> bool:
        """Whether anything was (or would be) created, updated or removed."""
        return any(change is not Change.UNCHANGED for change in self.changes.values())

    def count(self, change: Change) -> int:
        """How many files had this change."""
        return sum(1 for c in self.changes.values() if c is change)


def read_tree(root: Path) -> Contents:
    """Every regular file under root, keyed by its relative POSIX path."""
    if not root.is_dir():
        return {}
    tree: Contents = {}
    top = os.fspath(root)
    for directory, _, files in os.walk(top):
        relative = os.path.relpath(directory, top)
        prefix = "" if relative == "." else relative.replace(os.sep, "/") + "/"
        for name in files:
            with open(os.path.join(directory, name), "rb") as file:
                tree[prefix + name] = file.read()
    return tree


def compare(old: Contents, new: Contents) -> dict[str, Change]:
    """The change of every path between two trees, sorted by path."""
    changes = {}
    for path in sorted(old.keys() | new.keys()):
        if path not in new:
            changes[path] = Change.REMOVED
        elif path not in old:
            changes[path] = Change.CREATED
        else:
            changes[path] = Change.UNCHANGED if old[path] == new[path] else Change.UPDATED
    return changes


def _manifest_of(tree: Contents, path: str) -> dict[str, object] | None:
    try:
        document = json.loads(tree[path])
    except (KeyError, ValueError, UnicodeDecodeError):
        return None
    return document if isinstance(document, dict) else None


def former_host(old: Contents, new: Contents) -> str | None:
    """The host whose slice of the new fleet tree the old single host's tree becomes, or None.

    When one host becomes a fleet (users.nix gains `hosts`, this host among them), nothing in
    the old tree names the host: it is the one host the new declaration puts most of the old
    containers on (docs/fleet.md: the existing containers get that host). None when the old
    tree is not a single host's, the new one not a fleet's, or no one host holds the most of
    them (no containers, or a tie): then nothing is taken for moved.
    """
    prefix = f"{manifest.HOSTS_DIR}/"
    # Paths first: a single host's manifest can be large, and is parsed only on the change.
    if any(path.startswith(prefix) for path in old):
        return None
    if not any(path.startswith(prefix) for path in new):
        return None
    index, before = _manifest_of(new, MANIFEST), _manifest_of(old, MANIFEST)
    fleet = index.get("fleet") if index is not None else None
    hosts = fleet.get("hosts") if isinstance(fleet, dict) else None
    containers = before.get("containers") if before is not None else None
    if not isinstance(hosts, dict) or not isinstance(containers, dict) or not containers:
        return None
    held: dict[str, int] = {}
    for host in hosts:
        part = _manifest_of(new, f"{prefix}{host}/{MANIFEST}")
        on_it = part.get("containers") if part is not None else None
        if isinstance(on_it, dict) and (count := len(containers.keys() & on_it.keys())):
            held[host] = count
    most = max(held.values(), default=0)
    leaders = [host for host, count in held.items() if count == most]
    return leaders[0] if len(leaders) == 1 else None


def moved(old: Contents, new: Contents) -> dict[str, str]:
    """The files of a single host's tree that its slice of the new fleet tree holds unchanged.

    New path -> old path: the same bytes under hosts/<former host>/ (`former_host`).
    """
    host = former_host(old, new)
    if host is None:
        return {}
    inside = f"{manifest.HOSTS_DIR}/{host}/"
    return {
        inside + path: path
        for path, content in old.items()
        if path != MANIFEST and path not in new and new.get(inside + path) == content
    }


def _staging(root: Path, role: str) -> Path:
    return root.with_name(f".{root.name}.devbox-{role}")


def _guard(root: Path) -> None:
    if root.exists() and not root.is_dir():
        raise UsageError(f"{root} is not a directory", hint="pass another --out")
    if root.is_dir() and any(root.iterdir()) and not (root / MANIFEST).is_file():
        raise UsageError(
            f"{root} is not empty and holds no {MANIFEST}: it was not written by devbox-ctl",
            hint="pass an empty or new directory with --out; devbox-ctl replaces it as a whole",
        )


def recover(root: Path) -> None:
    """Finish or undo what a crash interrupted: restore the old tree, drop half-built ones."""
    old, new = _staging(root, "old"), _staging(root, "new")
    if old.is_dir() and not root.exists():
        old.rename(root)
    for leftover in (old, new):
        if leftover.exists():
            shutil.rmtree(leftover)


def _build(stage: Path, root: Path, old: Contents, new: Contents, moves: dict[str, str]) -> None:
    """Fill the staging directory; its content is on disk before it is swapped in."""
    # Plain string paths: pathlib's parsing cost more than the file operations here.
    stage_dir, root_dir = os.fspath(stage), os.fspath(root)
    for parent in sorted({os.path.dirname(os.path.join(stage_dir, path)) for path in new}):
        os.makedirs(parent, exist_ok=True)

    def place(item: tuple[str, bytes]) -> None:
        path, content = item
        target = os.path.join(stage_dir, path)
        source = path if old.get(path) == content else moves.get(path)
        if source is not None:
            os.link(os.path.join(root_dir, source), target)
        else:
            write_exclusive(Path(target), content, sync=False)

    # Creating files is bound by the file system's metadata work, which overlaps well across
    # threads (about 2.5 times faster for 20,000 new files on ext4); map re-raises any error.
    with ThreadPoolExecutor(max_workers=_WRITERS) as pool:
        list(pool.map(place, new.items(), chunksize=64))
    sync_filesystem(stage)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two directories atomically; False where the system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    result = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(a))


def _swap_in(stage: Path, root: Path) -> None:
    if not root.exists():
        stage.rename(root)
    elif _exchange(stage, root):
        shutil.rmtree(stage)
    else:
        old = _staging(root, "old")
        root.rename(old)
        stage.rename(root)
        shutil.rmtree(old)
    fsync_directory(root.parent)


def _report(old: Contents, new: Contents) -> Report:
    """Each path's change, a moved file once, at its new path."""
    changes = compare(old, new)
    moves = moved(old, new)
    for target, source in moves.items():
        changes[target] = Change.MOVED
        del changes[source]
    return Report(dict(sorted(changes.items())), moves)


def write_tree(root: Path, new: Contents, *, dry_run: bool = False) -> Report:
    """Make the directory root hold exactly the tree new; report what changed per file."""
    _guard(root)
    if not dry_run:
        root.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.nullcontext() if dry_run else locked(root.parent):
        if not dry_run:
            recover(root)
        old = read_tree(root)
        report = _report(old, new)
        if dry_run or (root.is_dir() and not report.changed):
            return report
        stage = _staging(root, "new")
        stage.mkdir()
        _build(stage, root, old, new, report.moves)
        _swap_in(stage, root)
        return report
