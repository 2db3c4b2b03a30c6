"""Unsaved git work on a volume: what protectUnpushedWork looks for before an auto-destroy.

Work is uncommitted changes (modified, staged or untracked files) in a git repository under
/home/dev, or commits on no remote (a local branch ahead of every remote, a repository with
no remote at all, a stash). The host finds repositories by walking the volume (not following
links, a few levels deep, skipping caches) and asks git.

All of it runs through volume.py: in a child process that is the volume's owner, relative to
the volume's one verified descriptor (which git sees bound onto a directory of the child's
own mount namespace), within the container's time budget (a git that hangs is killed with
the child). A repository's own configuration can make git run programs
(core.fsmonitor, filter drivers, includes), so git never reads it: each repository is
inspected through a scratch git directory of devbox's own, whose refs, objects and index are
links to descriptors opened below the volume without following links (/proc/self/fd/N), with
HEAD copied and a minimal configuration keeping only the repository format and extensions,
the system and global configuration off, optional locks off and submodules ignored. Before
git runs, the parts it would open are checked to be regular files and directories, so a
FIFO (as an index, a ref or `objects/info/alternates`) cannot make it wait. Anything that
cannot be inspected is reported as a doubt, which refuses the destroy like work does.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from devbox import volume, write
from devbox.errors import ToolError
from devbox.escaping import shown
from devbox.tools import process
from devbox.wording import counted

# How deep below /home/dev repositories are looked for, and how much walking is too much.
MAX_DEPTH = 6
MAX_DIRECTORIES = 20_000
MAX_REPOSITORIES = 200
# Directories that hold caches and tools, not people's repositories.
SKIPPED = frozenset(
    {
        ".cache",
        ".cargo",
        ".local",
        ".npm",
        ".rustup",
        ".venv",
        ".zed_server",
        "__pycache__",
        "node_modules",
    }
)
# What of a git directory the scratch directory links in (the configuration and hooks never).
LINKED = ("objects", "refs", "packed-refs", "reftable", "shallow", "info")
# Directories whose every file git may open: checked to hold only files and directories.
CHECKED = ("refs", "reftable", "objects/info", "objects/pack", "info")
MAX_CHECKED = 10_000
GIT_TIMEOUT = 60
SMALL = 4096
HOME = PurePosixPath("/home/dev")


@dataclass(frozen=True)
class Work:
    """What protectUnpushedWork found on a volume: repositories with work, and doubts."""

    found: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)

    @property
    def clear(self) -> bool:
        """Nothing to lose: no repository with work, and every one could be inspected."""
        return not self.found and not self.unknown


def unsaved(tree: volume.Tree) -> Work:
    """Every repository on a volume with uncommitted or unpushed work, and every doubt."""
    # git is found by root, on root's PATH, and named by its real path: the owner the child
    # becomes neither searches root's PATH nor needs to pass the directories of its links.
    git = shutil.which("git", path=process.search_path())
    git = os.path.realpath(git) if git is not None else None
    try:
        found, unknown = tree.call(lambda root: _inspect(root, git), mounted=True)
    except volume.Unreadable as exc:
        return Work([], [shown(exc)])
    return Work([shown(item) for item in found], [shown(item) for item in unknown])


class _Doubt(Exception):  # noqa: N818 - a state of one repository
    pass


def _inspect(root: int, git: str | None) -> tuple[list[str], list[str]]:
    """In the volume owner's child: (work found, doubts)."""
    repositories = find_repositories(root)
    if not repositories:
        return [], []
    if git is None:
        return [], ["git is not installed on the host, so no repository was read"]
    found: list[str] = []
    unknown: list[str] = []
    if len(repositories) > MAX_REPOSITORIES:
        unknown.append(f"more than {MAX_REPOSITORIES} repositories: only the first were read")
    for parts in repositories[:MAX_REPOSITORIES]:
        where = "~/" + "/".join(parts) if parts else "~"
        try:
            found += [f"{where}: {item}" for item in _repository_work(git, root, parts)]
        except (_Doubt, volume.Unreadable) as exc:
            unknown.append(f"{where}: {exc}")
        except OSError as exc:
            unknown.append(f"{where}: {exc.strerror or exc}")
    return found, unknown


def find_repositories(root: int) -> list[tuple[str, ...]]:
    """Directories below the volume that hold a .git (a directory or a file), as components."""
    found = []
    for here, entries in volume.walk(
        root, max_depth=MAX_DEPTH, max_directories=MAX_DIRECTORIES, skip=SKIPPED
    ):
        if any(entry.name == ".git" for entry in entries):
            found.append(here)
            entries.clear()  # the repository's own tree is git's to read
    return found


def _resolve(base: tuple[str, ...], text: str) -> tuple[str, ...]:
    """A path a repository file names (gitdir:, commondir), as components below the volume.

    Relative paths count from `base`; absolute ones must be below /home/dev, where the
    volume is mounted in the container.
    """
    path = PurePosixPath(text.strip())
    if path.is_absolute():
        if not path.is_relative_to(HOME):
            raise _Doubt(f"{shown(text.strip(), 80)} leads outside the volume")
        parts: list[str] = []
        names = path.relative_to(HOME).parts
    else:
        parts, names = list(base), path.parts
    for name in names:
        if name == "..":
            if not parts:
                raise _Doubt(f"{shown(text.strip(), 80)} leads outside the volume")
            parts.pop()
        elif name != ".":
            parts.append(name)
    return tuple(parts)


def _open(root: int, parts: tuple[str, ...], what: str, *, directory: bool) -> int:
    """A part of a repository, never through a link; a doubt when it is not what it should be."""
    try:
        fd = volume.open_below(root, parts, directory=directory) if parts else os.dup(root)
    except OSError as exc:
        if _is_link(root, parts):
            raise _Doubt(f"{what} is a link") from exc
        raise _Doubt(f"{what} cannot be opened ({exc.strerror})") from exc
    kind = os.fstat(fd).st_mode
    if not (stat.S_ISDIR(kind) if directory else stat.S_ISREG(kind)):
        os.close(fd)
        raise _Doubt(f"{what} is not a {'directory' if directory else 'regular file'}")
    return fd


def _is_link(root: int, parts: tuple[str, ...]) -> bool:
    try:
        info = os.stat(parts[-1], dir_fd=_parent(root, parts), follow_symlinks=False)
    except OSError:
        return False
    return stat.S_ISLNK(info.st_mode)


def _small(root: int, parts: tuple[str, ...], what: str) -> str:
    fd = _open(root, parts, what, directory=False)
    try:
        return volume.read_fd(fd, what, SMALL).decode("utf-8", "replace")
    except volume.Unreadable as exc:
        raise _Doubt(str(exc)) from exc
    finally:
        os.close(fd)


def _exists(root: int, parts: tuple[str, ...]) -> bool:
    try:
        os.stat(parts[-1], dir_fd=_parent(root, parts), follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _parent(root: int, parts: tuple[str, ...]) -> int:
    return _Descriptors.current.keep(volume.open_below(root, parts[:-1]))


class _Descriptors:
    """The descriptors git is given for one repository, closed when it is done."""

    current: _Descriptors

    def __init__(self) -> None:
        self.fds: list[int] = []

    def keep(self, fd: int) -> int:
        self.fds.append(fd)
        return fd

    def close(self) -> None:
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)


def _git_directories(root: int, worktree: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
    """The repository's git directory (HEAD, index) and common directory (refs, objects)."""
    dot_git = (*worktree, ".git")
    info = os.stat(".git", dir_fd=_parent(root, dot_git), follow_symlinks=False)
    if stat.S_ISLNK(info.st_mode):
        raise _Doubt(".git is a link")
    if stat.S_ISDIR(info.st_mode):
        git_dir = dot_git
    else:
        text = _small(root, dot_git, ".git")
        if not text.startswith("gitdir:"):
            raise _Doubt(".git is neither a directory nor a gitdir file")
        git_dir = _resolve(worktree, text.removeprefix("gitdir:"))
    common = git_dir
    if _exists(root, (*git_dir, "commondir")):
        common = _resolve(git_dir, _small(root, (*git_dir, "commondir"), ".git/commondir"))
    return git_dir, common


def _checked(root: int, common: tuple[str, ...]) -> None:
    """Refuse a repository whose refs or object lists git would open hold anything else."""
    seen = 0
    for name in CHECKED:
        parts = (*common, *name.split("/"))
        if not _exists(root, parts):
            continue
        fd = _open(root, parts, f".git/{name}", directory=True)
        os.close(fd)
        try:
            for _here, entries in volume.walk(
                _Descriptors.current.keep(volume.open_below(root, parts)),
                max_depth=8,
                max_directories=MAX_CHECKED,
            ):
                seen += len(entries)
                if seen > MAX_CHECKED:
                    raise _Doubt(f"more than {MAX_CHECKED} refs and object lists")
                odd = next(
                    (
                        e.name
                        for e in entries
                        if not (e.is_file(follow_symlinks=False) or e.is_dir(follow_symlinks=False))
                    ),
                    None,
                )
                if odd is not None:
                    raise _Doubt(f".git/{name} holds {shown(odd, 80)}, a link, FIFO or device")
        except volume.Unreadable as exc:
            raise _Doubt(str(exc)) from exc


def _format_settings(git: str, root: int, common: tuple[str, ...], scratch: Path) -> str:
    """The repository format and extensions from its configuration, read as a plain file.

    `git config --file` reads one file (a copy here) without includes and runs nothing.
    """
    if not _exists(root, (*common, "config")):
        return ""
    fd = _open(root, (*common, "config"), ".git/config", directory=False)
    try:
        content = volume.read_fd(fd, ".git/config", 1 << 20)
    except volume.Unreadable as exc:
        raise _Doubt(str(exc)) from exc
    finally:
        os.close(fd)
    copy = scratch / "repository-config"
    write.write_file(copy, content)
    result = _run([git, "config", "--file", str(copy), "--list"], Path(os.devnull))
    version, extensions = "0", []
    for line in result.splitlines():
        key, _, value = line.partition("=")
        if key == "core.repositoryformatversion":
            version = value
        elif key.startswith("extensions.") and "\n" not in value:
            extensions.append(f"\t{key.removeprefix('extensions.')} = {value}\n")
    body = f"[core]\n\trepositoryformatversion = {version}\n\tbare = false\n"
    return body + ("[extensions]\n" + "".join(extensions) if extensions else "")


def _scratch(
    git: str, root: int, scratch: Path, git_dir: tuple[str, ...], common: tuple[str, ...]
) -> None:
    """Fill a scratch git directory that reads the repository but not its configuration."""
    head = _small(root, (*git_dir, "HEAD"), ".git/HEAD")
    write.write_file(scratch / "HEAD", head.encode("utf-8"))
    settings = _format_settings(git, root, common, scratch)
    write.write_file(scratch / "config", settings.encode("utf-8"))
    for source, name in [(common, name) for name in LINKED] + [(git_dir, "index")]:
        parts = (*source, name)
        if not _exists(root, parts):
            continue
        info = os.stat(name, dir_fd=_parent(root, parts), follow_symlinks=False)
        if stat.S_ISLNK(info.st_mode):
            # The repository's own parts, not somewhere else it could lead git.
            raise _Doubt(f".git/{name} is a link")
        directory = stat.S_ISDIR(info.st_mode)
        fd = _Descriptors.current.keep(_open(root, parts, f".git/{name}", directory=directory))
        write.link(Path(f"/proc/self/fd/{fd}"), scratch / name)


def _environment(home: Path) -> dict[str, str]:
    return {
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_ATTR_NOSYSTEM": "1",
        "GIT_OPTIONAL_LOCKS": "0",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_NO_REPLACE_OBJECTS": "1",
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home),
        "LC_ALL": "C",
    }


SAFE_SETTINGS = (
    "core.fsmonitor=false",
    "core.hooksPath=/dev/null",
    "core.untrackedCache=false",
    "core.splitIndex=false",
    "safe.directory=*",
    "protocol.allow=never",
)


def _repository_work(git: str, root: int, worktree: tuple[str, ...]) -> list[str]:
    """What is unsaved in one repository (empty: nothing)."""
    _Descriptors.current = descriptors = _Descriptors()
    try:
        with write.temporary_directory("devbox-git-") as scratch:
            git_dir, common = _git_directories(root, worktree)
            _checked(root, common)
            _scratch(git, root, scratch, git_dir, common)
            base = [git, *(arg for s in SAFE_SETTINGS for arg in ("-c", s))]
            base += [f"--git-dir={scratch}", f"--work-tree={_work_tree(root, worktree)}"]
            status = _run(
                [*base, "status", "--porcelain", "-z", "--ignore-submodules=all"], scratch
            )
            commits = _run(
                [
                    *base,
                    "rev-list",
                    "--count",
                    "--branches",
                    "--glob=refs/stash*",
                    "--not",
                    "--remotes",
                ],
                scratch,
            )
    finally:
        descriptors.close()
    work = []
    changed = [entry for entry in status.split("\0") if entry.strip()]
    if changed:
        work.append(f"uncommitted changes ({counted(len(changed), 'file')})")
    if not commits.strip().isdigit():
        raise _Doubt(f"git counted {shown(commits.strip(), 40)!r} commits")
    count = int(commits.strip())
    if count:
        work.append(f"{counted(count, 'commit')} on no remote (a branch not pushed, or a stash)")
    return work


def _work_tree(root: int, worktree: tuple[str, ...]) -> str:
    """The path git is given for the work tree.

    git needs a path. As root, the volume is bound (by its verified descriptor) onto a
    directory of the child's own mount namespace, and the path leads there; what git then
    resolves below it, it resolves as the volume's owner. Otherwise the path is the
    descriptor's own (/proc/self/fd/N), which works where the caller can reach the volume.
    """
    try:
        return str(volume.mounted_path().joinpath(*worktree))
    except volume.Unreadable:
        fd = _Descriptors.current.keep(_open(root, worktree, "the work tree", directory=True))
        return f"/proc/self/fd/{fd}"


def _run(argv: list[str], home: Path) -> str:
    try:
        result = process.run(
            argv,
            env=_environment(home),
            timeout=GIT_TIMEOUT,
            pass_fds=tuple(_Descriptors.current.fds),
        )
    except ToolError as exc:
        raise _Doubt(exc.message) from exc
    if not result.ok:
        raise _Doubt(f"git failed: {_first_line(result.stderr)}")
    return result.stdout


def _first_line(text: str) -> str:
    return next((line for line in text.splitlines() if line.strip()), "no message")
