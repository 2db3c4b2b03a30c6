"""Writing files so that nothing is lost, and the lock a writer holds.

Single files replaced atomically, new files that never replace another, sparse files and
appended log lines. A single file is written to a temporary file, flushed, and renamed over
the old one (or linked, when it must be new), so a crash leaves the old content or the new.
The generated tree, replaced as a whole, is declare/generated_tree.py's, built from these.
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
from pathlib import Path

from devbox import timings

# Sparse files: the block a hole is made of, and how often a new unique name is tried.
_BLOCK = 4096
_ZEROS = memoryview(bytes(4 << 20))
_ATTEMPTS = 16


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
        with timings.stage("waiting for the config lock"):
            fcntl.flock(fd, fcntl.LOCK_EX)
        _held.add(key)
        yield
    finally:
        _held.discard(key)
        os.close(fd)


def fsync_directory(path: Path) -> None:
    """Make a directory's entries (a rename, a new file) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_exclusive(path: Path, content: bytes, mode: int = 0o644, *, sync: bool = True) -> None:
    """Create a file that must not exist yet (O_EXCL) with content; flushed to disk with sync."""
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode), "wb") as file:
        file.write(content)
        if sync:
            file.flush()
            os.fsync(file.fileno())


def sync_filesystem(directory: Path) -> None:
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


def write_file(path: Path, content: bytes, *, parents: bool = False, mode: int = 0o644) -> None:
    """Replace one file atomically: a crash leaves the old content or the new, never a mix.

    An existing file keeps its permissions; a new one gets `mode`.
    """
    if parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.devbox-tmp-{os.getpid()}")
    mode = path.stat().st_mode & 0o777 if path.exists() else mode
    try:
        write_exclusive(temporary, content, mode)
        temporary.replace(path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


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
    fsync_directory(directory)


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
        write_exclusive(temporary, content, mode)
        os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    fsync_directory(path.parent)


def ensure_directory(path: Path, mode: int = 0o750) -> Path:
    """Create a directory (and its parents) if it is missing; return it."""
    path.mkdir(mode=mode, parents=True, exist_ok=True)
    return path


def link(target: Path, path: Path) -> None:
    """Make path a symbolic link to target."""
    path.symlink_to(target)


@contextlib.contextmanager
def temporary_directory(prefix: str) -> Iterator[Path]:
    """A private directory (mode 0700) removed with everything in it when the block ends."""
    directory = tempfile.mkdtemp(prefix=prefix)
    try:
        yield Path(directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
