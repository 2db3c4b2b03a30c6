"""The only module that writes files: the generated tree, and single files such as containers.json.

The generated tree is replaced as a whole, so a kill at any moment leaves the old tree or the
new one, never a mix: the new tree is built in a sibling staging directory (files whose content
did not change are hard links to the old ones, so they keep their mtime), then the two
directories are swapped in one `renameat2(RENAME_EXCHANGE)`. Where the file system cannot
exchange, two renames are used and the next run restores the old tree if a crash fell between
them. Single files are written to a temporary file, flushed, and renamed over the old one.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from devbox.errors import UsageError

Contents = dict[str, bytes]
MANIFEST = "manifest.json"
_RENAME_EXCHANGE = 2
_WRITERS = 8
_AT_FDCWD = -100
# Sparse files: the block a hole is made of, and how often a new unique name is tried.
_BLOCK = 4096
_ZEROS = memoryview(bytes(4 << 20))
_ATTEMPTS = 16


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


_held: set[Path] = set()


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on a directory (the config directory) while writing in it.

    Other processes wait for it; within this process the lock is re-entrant, so `create` can
    hold it across recording, generating and committing.
    """
    key = directory.resolve()
    if key in _held:
        yield
        return
    fd = os.open(key, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        _held.add(key)
        yield
    finally:
        _held.discard(key)
        os.close(fd)


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


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_bytes(path: Path, content: bytes, mode: int = 0o644, *, sync: bool = True) -> None:
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode), "wb") as file:
        file.write(content)
        if sync:
            file.flush()
            os.fsync(file.fileno())


def _sync_filesystem(directory: Path) -> None:
    """Flush everything written on directory's file system: one syncfs(2), not one fsync a file."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.syncfs(fd) != 0:
            os.sync()
    except (OSError, AttributeError):
        os.sync()
    finally:
        os.close(fd)


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
            _write_bytes(Path(target), content, sync=False)

    # Creating files is bound by the file system's metadata work, which overlaps well across
    # threads (about 2.5 times faster for 20,000 new files on ext4); map re-raises any error.
    with ThreadPoolExecutor(max_workers=_WRITERS) as pool:
        list(pool.map(place, new.items(), chunksize=64))
    _sync_filesystem(stage)


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
    _fsync_dir(root.parent)


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


def write_file(path: Path, content: bytes, *, parents: bool = False, mode: int = 0o644) -> None:
    """Replace one file atomically: a crash leaves the old content or the new, never a mix.

    An existing file keeps its permissions; a new one gets `mode`.
    """
    if parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.devbox-tmp-{os.getpid()}")
    mode = path.stat().st_mode & 0o777 if path.exists() else mode
    try:
        _write_bytes(temporary, content, mode)
        temporary.replace(path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def remove_file(path: Path) -> None:
    """Remove a file if it is there."""
    path.unlink(missing_ok=True)


def remove_tree(path: Path) -> None:
    """Remove a directory devbox wrote (a generated tree) with everything in it, if it is there."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)


def append_line(path: Path, line: str, mode: int = 0o640) -> None:
    """Append one line to a log file in a single write, creating it (and its directory)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, mode)
    try:
        os.write(fd, (line.rstrip("\n") + "\n").encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)


class SparseFile:
    """A new file written in order, with every all-zero block left as a hole.

    A tar stream stores a sparse file's holes as zeros; kept as holes they cost no disk.
    `stored` counts the bytes of the blocks actually written: what the file costs.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.length = 0
        self.stored = 0
        self._pending = bytearray()
        self.finished = False

    def write(self, data: bytes) -> None:
        """Append data; whole blocks go to disk (or become holes) as they complete."""
        view = memoryview(data)
        if self._pending:
            fill = min(-len(self._pending) % _BLOCK, len(view))
            self._pending += view[:fill]
            view = view[fill:]
            if len(self._pending) % _BLOCK:
                return
            self._put(memoryview(bytes(self._pending)))
            self._pending.clear()
        whole = len(view) - len(view) % _BLOCK
        if whole:
            self._put(view[:whole])
        self._pending += view[whole:]

    def _put(self, data: memoryview) -> None:
        """Write runs of non-zero blocks with one pwrite each; skip zero blocks."""
        if data == _ZEROS[: len(data)]:
            self.length += len(data)
            return
        run = -1
        for start in range(0, len(data) + _BLOCK, _BLOCK):
            block = data[start : start + _BLOCK]
            if block and block != _ZEROS[: len(block)]:
                run = start if run < 0 else run
                continue
            if run >= 0:
                os.pwrite(self.fd, data[run:start], self.length + run)
                self.stored += start - run
                run = -1
        self.length += len(data)

    def finish(self) -> None:
        """Write the last partial block, set the length (a trailing hole too), sync; once."""
        if self.finished:
            return
        self.finished = True
        if self._pending:
            self._put(memoryview(bytes(self._pending)))
            self._pending.clear()
        os.ftruncate(self.fd, self.length)
        os.fsync(self.fd)


def allocated(info: os.stat_result) -> int:
    """The bytes a file takes on disk (holes take none)."""
    return info.st_blocks * 512


@contextlib.contextmanager
def new_sparse_file(
    directory: Path, name: Callable[[], str], mode: int = 0o600
) -> Iterator[tuple[Path, SparseFile]]:
    """A file under a name no other file has, created exclusively, kept only if the block succeeds.

    `name` proposes a name (with something random in it); a taken one is never replaced, a new
    one is proposed. The file is removed again if the block raises. It is flock(2)ed while the
    block runs, so `in_use` tells a file being written from one a killed process left.
    """
    for _ in range(_ATTEMPTS):
        path = directory / name()
        try:
            fd = os.open(
                path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode
            )
        except FileExistsError:
            continue
        break
    else:
        raise FileExistsError(errno.EEXIST, "no free name after several attempts", str(directory))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        sparse = SparseFile(fd)
        yield path, sparse
        sparse.finish()
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)
    _fsync_dir(directory)


def in_use(path: Path) -> bool:
    """Whether a file made by `new_sparse_file` is still being written (by any process)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def write_new(path: Path, content: bytes, mode: int = 0o600) -> None:
    """Write a file that must not exist yet; it appears whole, and never replaces another.

    The content goes to a temporary file that is then hard-linked to path: link(2), unlike
    rename(2), fails when path exists (FileExistsError).
    """
    temporary = path.with_name(f".{path.name}.devbox-tmp-{os.getpid()}")
    try:
        _write_bytes(temporary, content, mode)
        os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def ensure_directory(path: Path, mode: int = 0o750) -> Path:
    """Create a directory (and its parents) if it is missing; return it."""
    path.mkdir(mode=mode, parents=True, exist_ok=True)
    return path


def link(target: Path, path: Path) -> None:
    """Make path a symbolic link to target."""
    os.symlink(target, path)


@contextlib.contextmanager
def temporary_directory(prefix: str) -> Iterator[Path]:
    """A private directory (mode 0700) removed with everything in it when the block ends."""
    directory = tempfile.mkdtemp(prefix=prefix)
    try:
        yield Path(directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
