"""The generated tree: read, compared with a new one, and replaced as a whole.

The tree is replaced as a whole, so a kill at any moment leaves the old tree or the new one,
never a mix: the new tree is built in a sibling staging directory (files whose content did
not change are hard links to the old ones, so they keep their mtime), then the two directories
are swapped in one `renameat2(RENAME_EXCHANGE)`. Where the file system cannot exchange, two
renames are used and the next run restores the old tree if a crash fell between them.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

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
    REMOVED = "removed"


@dataclass(frozen=True)
class Report:
    """Each file of the old and the new tree, with its change."""

    changes: dict[str, Change]

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


def _build(stage: Path, root: Path, old: Contents, new: Contents) -> None:
    """Fill the staging directory; its content is on disk before it is swapped in."""
    # Plain string paths: pathlib's parsing cost more than the file operations here.
    stage_dir, root_dir = os.fspath(stage), os.fspath(root)
    for parent in sorted({os.path.dirname(os.path.join(stage_dir, path)) for path in new}):
        os.makedirs(parent, exist_ok=True)

    def place(item: tuple[str, bytes]) -> None:
        path, content = item
        target = os.path.join(stage_dir, path)
        if old.get(path) == content:
            os.link(os.path.join(root_dir, path), target)
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


def write_tree(root: Path, new: Contents, *, dry_run: bool = False) -> Report:
    """Make the directory root hold exactly the tree new; report what changed per file."""
    _guard(root)
    if not dry_run:
        root.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.nullcontext() if dry_run else locked(root.parent):
        if not dry_run:
            recover(root)
        old = read_tree(root)
        report = Report(compare(old, new))
        if dry_run or (root.is_dir() and not report.changed):
            return report
        stage = _staging(root, "new")
        stage.mkdir()
        _build(stage, root, old, new)
        _swap_in(stage, root)
        return report
