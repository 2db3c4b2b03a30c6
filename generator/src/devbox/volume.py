"""The only way devbox reaches into a user's files: a container's volume, or a user's home.

Everything on a volume belongs to the container's user, who may replace any of it at any
moment: the volume's own directory with a link to another user's home, a file with a FIFO or
a 1 GiB sparse file, a directory with a link between root's check and its use. So:

- a tree is opened once, by its path, one component at a time from `/` without following a
  link at any step (O_NOFOLLOW | O_DIRECTORY); every directory passed must belong to root, to
  the user or to the user's subordinate range, and the tree's own directory to the user as
  rootless podman maps them (below); after that, nothing uses the path again;
- what is read or written below it is reached relative to that one descriptor, one component
  at a time, never through a link, and files are read only when regular and at most a limit;
- root never touches the files itself: each piece of work runs in a child process that has
  dropped to the tree's owner (setgroups, setresgid, setresuid), so the kernel allows it
  exactly what the user could do, and a file it writes is the user's;
- the work has a deadline: a child still running then is killed with everything it started
  (git included), and the caller gets `OutOfTime`, which reads as *unknown*.

Who owns a volume: the containers run in their owner's rootless podman, with the owner's
subordinate range `uid * 65536`, 65536 ids (docs/manifest.md) and no `UserNS=` option, so
uid 0 in the container is the owner and uid N ≥ 1 is `uid * 65536 + N - 1` on the host. A
volume is created owned by the owner; its first mount chowns it to the image's /home/dev,
which is dev (uid 1000), so from then on it is `uid * 65536 + 999`. Those two are accepted.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import errno
import json
import os
import select
import shutil
import signal
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Self

from devbox.errors import ToolError
from devbox.tools.podman import Podman

# Each owner's GC roots on the host, mounted into their containers (the units' Volume=).
NIX_ROOTS = Path("/nix/var/nix/gcroots/devbox")
SUBUID_COUNT = 65536  # the size of each user's subordinate range (manifest.SUBUID_COUNT)
DEV_UID = 1000  # the image's user dev, who owns /home/dev in the container
# A child's answer larger than this is refused (the largest is a file of MAX_BYTES, in base64).
ANSWER_BYTES = 4 << 20
_PR_SET_DUMPABLE = 4


class Unreadable(Exception):  # noqa: N818 - a state of the user's files, not a failure of devbox
    """A file or tree of the user's that cannot be trusted; the message says why."""


class OutOfTime(Unreadable):
    """The time budget ran out before the user's files were read."""


def subordinate_start(uid: int) -> int:
    """The first id of a user's subordinate range (docs/manifest.md: uid * 65536)."""
    return uid * SUBUID_COUNT


def mapped(uid: int, inner: int) -> int:
    """The host id of id `inner` in a container of the user `uid` (rootless podman)."""
    return uid if inner == 0 else subordinate_start(uid) + inner - 1


@dataclass(frozen=True)
class Budget:
    """Until when work on a user's files may run, and which budget that is (for messages)."""

    deadline: float  # time.monotonic()
    what: str

    @classmethod
    def of(cls, seconds: float, what: str, within: Budget | None = None) -> Budget:
        """A budget of some seconds from now, cut short by the budget it is part of."""
        own = cls(time.monotonic() + seconds, what)
        return own if within is None or own.deadline <= within.deadline else within

    def remaining(self) -> float:
        """Seconds left; OutOfTime when none are."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise OutOfTime(f"{self.what} ran out")
        return left


# Opening a tree


@dataclass
class Tree:
    """A user's directory, open and verified: work below it runs as its owner, in time."""

    fd: int
    uid: int
    gid: int
    what: str
    budget: Budget

    def close(self) -> None:
        """Close the descriptor (a closed tree cannot be used)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def call(self, work: Callable[[int], Any], *, mounted: bool = False) -> Any:
        """work(fd of the tree) in a child process as the tree's owner; its JSON-able result.

        With `mounted`, the child first binds the tree's descriptor onto a directory of its
        own, in a mount namespace of its own, and `mounted_path()` names it there: for a
        program such as git that needs a path, and as the owner could not reach the tree by
        its real path (the owner's home is theirs alone, and the tree belongs to the
        container's dev).

        Raises Unreadable with the child's message for an Unreadable or OSError in it, and
        OutOfTime when the budget ran out (the child and everything it started are killed).
        """
        if self.fd < 0:
            raise Unreadable(f"{self.what} is closed")
        left = self.budget.remaining()
        target = _mount_target() if mounted and os.geteuid() == 0 else None
        reader, writer = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child; its result is what the tests check
            os.close(reader)
            _child(self, work, writer, target)
        os.close(writer)
        try:
            answer = _collect(reader, pid, left)
        finally:
            os.close(reader)
            if target is not None:
                with contextlib.suppress(OSError):
                    target.rmdir()
        if answer is None:
            raise OutOfTime(f"{self.budget.what} ran out while reading {self.what}")
        return _result(answer)

    def read(self, relative: PurePosixPath, limit: int) -> bytes | None:
        """A regular file below the tree, at most `limit` bytes; None when it does not exist."""
        encoded = self.call(lambda fd: _encoded(read_below(fd, relative, limit)))
        return None if encoded is None else base64.b64decode(encoded)

    def write(self, relative: PurePosixPath, content: bytes, mode: int = 0o644) -> None:
        """Replace a file below the tree atomically, as its owner, creating its directories."""
        self.call(lambda fd: write_below(fd, relative, content, mode))

    def remove(self, relative: PurePosixPath) -> bool:
        """Remove a file below the tree (a link itself, never its target); True if it was."""
        return bool(self.call(lambda fd: remove_below(fd, relative)))


def open_volume(podman: Podman, name: str, budget: Budget, *, new: bool = False) -> Tree | None:
    """A container's volume, opened as the module docstring says; None when it does not exist.

    The path is podman's (`podman volume inspect`, as the owner) and must end in
    `volumes/<name>/_data`, where podman's local driver keeps a volume's files. `new`: one
    this process just created (a move's import), whose directory a rootful podman leaves
    root's; the walk to it still refuses every link and mount.
    """
    try:
        mountpoint = podman.volume_mountpoint(name, timeout=min(budget.remaining(), 60))
    except ToolError as exc:
        raise Unreadable(f"podman could not find the volume: {exc.message}") from exc
    if mountpoint is None:
        return None
    if mountpoint.parts[-3:] != ("volumes", name, "_data"):
        raise Unreadable(f"podman puts the volume {name} at {mountpoint}, not in its storage")
    owners = frozenset({podman.uid, mapped(podman.uid, DEV_UID), *([0] if new else [])})
    return open_tree(
        mountpoint,
        uid=podman.uid,
        owners=owners,
        gid=mapped(podman.uid, DEV_UID),
        what=f"the volume {name}",
        budget=budget,
        mount_point=False,
    )


def remove_nix_roots(uid: int, owner: str, container: str, budget: Budget) -> bool:
    """Remove a container's GC roots, `NIX_ROOTS/<owner>/<container>`; True when it was there.

    The owner's directory is mounted into every container of theirs (docs/nix-in-containers.md),
    so it and all below it are the user's, opened as a volume is and changed only by a child
    that has become a directory's owner, links never followed. Two owners take part: the
    container's directory and what is in it are its dev's (rootless podman's mapping, which
    made them), while the owner's directory is the owner's after a switch (the module's
    tmpfiles rule) and dev's again after a container's start (`:U`). So the contents go as the
    container directory's owner, then the emptied directory as the owner directory's.
    """
    base = NIX_ROOTS / owner
    dev = mapped(uid, DEV_UID)
    owners = frozenset({uid, dev})
    what = f"{owner}'s Nix GC roots"
    try:
        info = os.lstat(base / container)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise Unreadable(f"{what}: {container}: {exc.strerror}") from exc
    if stat.S_ISDIR(info.st_mode):
        with open_tree(
            base / container, uid=uid, owners=owners, gid=dev, what=what, budget=budget
        ) as tree:
            tree.call(empty_below)
    with open_tree(base, uid=uid, owners=owners, gid=dev, what=what, budget=budget) as tree:
        return bool(tree.call(lambda fd: remove_tree_below(fd, container)))


def open_home(uid: int, gid: int, home: Path, budget: Budget) -> Tree:
    """A user's home directory on the host (their own Quadlet files are read from it)."""
    return open_tree(
        home, uid=uid, owners=frozenset({uid}), gid=gid, what=f"the home {home}", budget=budget
    )


def open_tree(
    path: Path,
    *,
    uid: int,
    owners: frozenset[int],
    gid: int,
    what: str,
    budget: Budget,
    mount_point: bool = True,
) -> Tree:
    """Open path without following links; check who owns each directory on the way.

    Every directory passed must belong to root, to the user `uid` or to the user's
    subordinate range; the last one to one of `owners`, and unless `mount_point` allows
    it, on the file system of its parent (a user may mount FUSE on a directory of theirs).
    Work in the tree then runs as that directory's owner and the group `gid`.
    """
    if not path.is_absolute() or any(part in (".", "..") for part in path.parts):
        raise Unreadable(f"{what}: {path} is not an absolute, normal path")
    start = subordinate_start(uid)

    def trusted(owner: int) -> bool:
        return owner in (0, uid) or start <= owner < start + SUBUID_COUNT

    fd, parent_device = _walk_path(path, trusted, what)
    try:
        _check_owner(fd, owners.__contains__, what)
        if not mount_point:
            _check_device(fd, parent_device, what)
    except BaseException:
        os.close(fd)
        raise
    return Tree(fd, os.fstat(fd).st_uid, gid, what, budget)


def _walk_path(path: Path, trusted: Callable[[int], bool], what: str) -> tuple[int, int]:
    """The directory at path, opened component by component; and its parent's device."""
    fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    device = os.fstat(fd).st_dev
    try:
        for part in path.parts[1:]:
            _check_owner(fd, trusted, f"{what}: a directory on the way to it")
            device = os.fstat(fd).st_dev
            following = _open_directory(fd, part, what)
            os.close(fd)
            fd = following
    except BaseException:
        os.close(fd)
        raise
    return fd, device


def _check_device(fd: int, parent_device: int, what: str) -> None:
    if os.fstat(fd).st_dev != parent_device:
        raise Unreadable(f"{what} is a mount point, not a directory of podman's storage")


def _check_owner(fd: int, allowed: Callable[[int], bool], what: str) -> None:
    owner = os.fstat(fd).st_uid
    if not allowed(owner):
        raise Unreadable(f"{what} belongs to uid {owner}, not to its user")


def _open_directory(directory: int, name: str, what: str) -> int:
    try:
        return os.open(
            name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=directory
        )
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise Unreadable(f"{what}: {name} is a link or not a directory") from exc
        if exc.errno == errno.ENOENT:
            raise Unreadable(f"{what}: {name} does not exist") from exc
        raise Unreadable(f"{what}: {name}: {exc.strerror}") from exc


# The child that does the work


def _child(  # pragma: no cover - runs in the child
    tree: Tree, work: Callable[[int], Any], writer: int, target: Path | None
) -> None:
    """Drop to the tree's owner, do the work, send the answer, exit; never returns."""
    code = 0
    try:
        os.setsid()  # its own process group: a timeout kills it with git and the rest
        answer: dict[str, Any]
        try:
            if target is not None:
                _bind(tree.fd, target)
            _become(tree.uid, tree.gid)
            # Root's $TMPDIR may be root's alone; the owner's scratch files go to /tmp.
            tempfile.tempdir = SHARED_TMP
            root = tree.fd if target is None else _mounted_root(tree, target)
            os.fchdir(root)
            answer = {"ok": work(root)}
        except Unreadable as exc:
            answer = {"unreadable": str(exc)}
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            answer = {"unreadable": f"{where}{exc.strerror or exc}"}
        except Exception as exc:  # noqa: BLE001 - whatever failed, root hears why, in words
            answer = {"unreadable": f"{type(exc).__name__}: {exc}"}
        data = json.dumps(answer).encode("utf-8")
        view = memoryview(data)
        while view:
            view = view[os.write(writer, view) :]
    except BaseException:  # noqa: BLE001 - a child must exit, whatever happened
        code = 1
    finally:
        os._exit(code)


_mounted: Path | None = None
# Where a volume's owner can reach what root makes for it, and make scratch files of its own:
# only ever through mkdtemp, whose directories are new, unique and private.
SHARED_TMP = "/tmp"  # noqa: S108 - see above
# Linux's numbers (x86_64 and aarch64 share these system call numbers).
_CLONE_NEWNS = 0x00020000
_MS_REC = 16384
_MS_PRIVATE = 1 << 18
_SYS_OPEN_TREE = 428
_SYS_MOVE_MOUNT = 429
_OPEN_TREE_CLONE = 1
_OPEN_TREE_CLOEXEC = os.O_CLOEXEC
_AT_EMPTY_PATH = 0x1000
_AT_FDCWD = -100
_MOVE_MOUNT_F_EMPTY_PATH = 4


def mounted_path() -> Path:
    """In a child of Tree.call(mounted=True): where the tree is (in its namespace only)."""
    if _mounted is None:
        raise Unreadable("the tree is not mounted in this process")
    return _mounted


def _mount_target() -> Path:
    """An empty directory, root's, that a child binds a tree onto; removed after the child.

    In /tmp, not $TMPDIR: the owner the child becomes must be able to pass every directory
    above it, and root's $TMPDIR may lie below directories only root can enter.
    """
    target = Path(tempfile.mkdtemp(prefix="devbox-volume-", dir=SHARED_TMP))
    target.chmod(0o755)  # the path to the tree, for the owner the child becomes
    return target


def _bind(fd: int, target: Path) -> None:  # pragma: no cover - runs in the child
    """Bind the tree's descriptor (not a path) onto target, in a mount namespace of its own.

    open_tree(2) clones the mount of the descriptor itself, detached from every namespace;
    the child then enters a namespace of its own, where nothing it mounts propagates to the
    host's, and move_mount(2) attaches the clone at target.
    """
    global _mounted  # noqa: PLW0603 - the child's one mount, for mounted_path()
    libc = ctypes.CDLL(None, use_errno=True)
    clone = _checked_call(
        "open_tree",
        libc.syscall(
            _SYS_OPEN_TREE, fd, b"", _OPEN_TREE_CLONE | _OPEN_TREE_CLOEXEC | _AT_EMPTY_PATH
        ),
    )
    _checked_call("unshare", libc.unshare(_CLONE_NEWNS))
    _checked_call("mount", libc.mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None))
    _checked_call(
        "move_mount",
        libc.syscall(
            _SYS_MOVE_MOUNT, clone, b"", _AT_FDCWD, bytes(target), _MOVE_MOUNT_F_EMPTY_PATH
        ),
    )
    os.close(clone)
    _mounted = target


def _checked_call(name: str, result: int) -> int:  # pragma: no cover - runs in the child
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), f"{name} of the tree")
    return result


def _mounted_root(tree: Tree, target: Path) -> int:  # pragma: no cover - runs in the child
    """The tree as this namespace reaches it, checked to be the same directory.

    What is opened below it, and the paths git resolves from there, lead to the mount.
    """
    root = os.open(target, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    mine, theirs = os.fstat(root), os.fstat(tree.fd)
    if (mine.st_dev, mine.st_ino) != (theirs.st_dev, theirs.st_ino):
        raise Unreadable(f"{tree.what} is not what was mounted")
    return root


def _become(uid: int, gid: int) -> None:  # pragma: no cover - runs in the child
    """Take the user's identity for good: no groups of root's, no way back, not traceable."""
    os.environ.clear()
    os.environ.update({"PATH": _PATH, "LC_ALL": "C", "HOME": "/nonexistent"})
    os.umask(0o022)
    if os.geteuid() != 0:
        return
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    with contextlib.suppress(OSError, AttributeError):
        # The user must not attach a debugger to a process that talks to root.
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)


_PATH = os.environ.get("PATH", "/run/current-system/sw/bin:/usr/bin:/bin")


def _collect(reader: int, pid: int, seconds: float) -> dict[str, Any] | None:
    """The child's answer; None when it ran out of time (then it is killed)."""
    deadline = time.monotonic() + seconds
    chunks: list[bytes] = []
    size = 0
    while True:
        left = deadline - time.monotonic()
        ready = select.select([reader], [], [], max(left, 0))[0] if left > 0 else []
        if not ready:
            _kill(pid)
            return None
        chunk = os.read(reader, 1 << 16)
        if not chunk:
            break
        size += len(chunk)
        if size > ANSWER_BYTES:
            _kill(pid)
            return {"unreadable": "the answer was too large"}
        chunks.append(chunk)
    # The child exits right after writing; what it started is its own (and killed with it).
    _kill(pid)
    try:
        answer = json.loads(b"".join(chunks).decode("utf-8"))
    except ValueError:
        return {"unreadable": "the work on it failed"}
    return answer if isinstance(answer, dict) else {"unreadable": "the work on it failed"}


def _kill(pid: int) -> None:
    # The child's process group (git and whatever else it started), then the child itself in
    # case it was killed before it made its group.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def _result(answer: dict[str, Any]) -> Any:
    if "ok" in answer:
        return answer["ok"]
    raise Unreadable(str(answer.get("unreadable", "the work on it failed")))


def _encoded(content: bytes | None) -> str | None:
    return None if content is None else base64.b64encode(content).decode("ascii")


# Work below a tree's descriptor (in the child)


def parts_of(relative: PurePosixPath | str) -> tuple[str, ...]:
    """The components of a path inside a tree; Unreadable for one that could leave it."""
    parts = tuple(str(relative).split("/"))
    if not parts or any(part in ("", ".", "..") for part in parts):
        raise Unreadable(f"{relative} is not a path inside the tree")
    return parts


def open_below(
    root: int, parts: tuple[str, ...], *, create: bool = False, directory: bool = True
) -> int:
    """A descriptor for root/parts, refusing a link at every step.

    With `create`, missing directories are made (mode 0755); with `directory` False, the
    last component may be any kind of file and is opened without blocking (a FIFO).
    """
    fd = os.dup(root)
    try:
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            if create and not (last and not directory):
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o755, dir_fd=fd)
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
            flags |= os.O_NONBLOCK if last and not directory else os.O_DIRECTORY
            following = os.open(part, flags, dir_fd=fd)
            os.close(fd)
            fd = following
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_fd(fd: int, what: str, limit: int) -> bytes:
    """The content of an open regular file of at most `limit` bytes; Unreadable otherwise."""
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise Unreadable(f"{what} is not a regular file")
    if info.st_size > limit:
        raise Unreadable(f"{what} is larger than {limit} bytes")
    content = os.read(fd, limit + 1)
    if len(content) > limit:
        raise Unreadable(f"{what} is larger than {limit} bytes")
    return content


def read_below(root: int, relative: PurePosixPath | str, limit: int) -> bytes | None:
    """A regular file below root (see read_fd), or None when it does not exist."""
    try:
        fd = open_below(root, parts_of(relative), directory=False)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise Unreadable(f"{relative}: {exc.strerror or exc}") from exc
    try:
        return read_fd(fd, str(relative), limit)
    finally:
        os.close(fd)


def head_below(root: int, relative: PurePosixPath | str, limit: int) -> bytes:
    """The first `limit` bytes of a regular file below root; empty for anything else."""
    try:
        fd = open_below(root, parts_of(relative), directory=False)
    except OSError:
        return b""
    try:
        return os.read(fd, limit) if stat.S_ISREG(os.fstat(fd).st_mode) else b""
    finally:
        os.close(fd)


def write_below(root: int, relative: PurePosixPath | str, content: bytes, mode: int) -> None:
    """Replace root/relative atomically (a temporary file renamed over it)."""
    *parents, name = parts_of(relative)
    directory = open_below(root, tuple(parents), create=True)
    temporary = f".{name}.devbox-tmp-{os.getpid()}"
    try:
        fd = os.open(
            temporary,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            mode,
            dir_fd=directory,
        )
        try:
            view = memoryview(content)
            while view:
                view = view[os.write(fd, view) :]
            os.fchmod(fd, mode)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(temporary, name, src_dir_fd=directory, dst_dir_fd=directory)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary, dir_fd=directory)
        raise
    finally:
        os.close(directory)


def remove_below(root: int, relative: PurePosixPath | str) -> bool:
    """Remove root/relative if it is there (a link itself, never its target)."""
    *parents, name = parts_of(relative)
    try:
        directory = open_below(root, tuple(parents))
    except (FileNotFoundError, NotADirectoryError):
        return False
    try:
        os.unlink(name, dir_fd=directory)
    except FileNotFoundError:
        return False
    finally:
        os.close(directory)
    return True


def remove_tree_below(root: int, name: str) -> bool:
    """Remove root/name: a directory with all below it, or any other file (a link itself).

    shutil.rmtree on a descriptor opens each directory without following a link, and checks
    that what it opened is what it listed. True if it was there.
    """
    parts = parts_of(name)
    if len(parts) != 1:
        raise Unreadable(f"{name} is not a name in the directory")
    try:
        info = os.stat(name, dir_fd=root, follow_symlinks=False)
    except FileNotFoundError:
        return False
    if stat.S_ISDIR(info.st_mode):
        shutil.rmtree(name, dir_fd=root)
    else:
        os.unlink(name, dir_fd=root)
    return True


def empty_below(root: int) -> None:
    """Remove everything in the directory root (links themselves, never what they name)."""
    for name in sorted(os.listdir(root)):
        remove_tree_below(root, name)


def walk(
    root: int, *, max_depth: int, max_directories: int, skip: frozenset[str] = frozenset()
) -> Iterator[tuple[tuple[str, ...], list[os.DirEntry[str]]]]:
    """Every directory below root (depth first, sorted), with its entries; links not followed.

    Yields the directory's components and its entries; a caller prunes a subtree by removing
    its entry from the list. Unreadable when there are more than `max_directories`.
    """
    seen = 0
    stack: list[tuple[str, ...]] = [()]
    while stack:
        here = stack.pop()
        seen += 1
        if seen > max_directories:
            message = f"more than {max_directories} directories: too many to look through"
            raise Unreadable(message)
        try:
            fd = open_below(root, here) if here else os.dup(root)
        except OSError:
            continue  # gone, or replaced by a link since it was listed: not followed
        try:
            with os.scandir(fd) as listing:
                entries = sorted(listing, key=lambda entry: entry.name)
        finally:
            os.close(fd)
        yield here, entries
        if len(here) >= max_depth:
            continue
        below = [
            (*here, entry.name)
            for entry in entries
            if entry.is_dir(follow_symlinks=False) and entry.name not in skip
        ]
        stack.extend(reversed(below))
