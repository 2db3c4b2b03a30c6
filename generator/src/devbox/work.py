"""Unsaved git work on a volume: what protectUnpushedWork looks for before an auto-destroy.

Work is uncommitted changes (modified, staged or untracked files) in a git repository under
/home/dev, or commits on no remote (a local branch ahead of every remote, a repository with
no remote at all, a stash). The host finds repositories by walking the volume's directory
(not following links, a few levels deep, skipping caches) and asks git.

git runs as root over files the container's user controls, and a repository's own
configuration can make git run programs (core.fsmonitor, filter drivers, includes). So git
never reads it: each repository is inspected through a scratch git directory of devbox's own
(the repository's refs, objects and index linked in, HEAD copied, a minimal configuration
keeping only the repository format and extensions), with the system and global
configuration off, optional locks off (git writes nothing) and submodules ignored. Anything
that cannot be inspected is reported as a doubt, which refuses the destroy like work does.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from devbox import lifecycle, process, write
from devbox.errors import ToolError

# How deep below /home/dev repositories are looked for, and how much walking is too much.
MAX_DEPTH = 6
MAX_DIRECTORIES = 20_000
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
GIT_TIMEOUT = 120


def inspect(root: Path) -> lifecycle.Work:
    """Every repository under a volume's directory with uncommitted or unpushed work."""
    found: list[str] = []
    unknown: list[str] = []
    try:
        os.close(write.open_volume_root(root))
    except OSError as exc:
        # A link on the way to the volume (its owner can make one) would lead root elsewhere.
        return lifecycle.Work(
            [],
            [f"the volume's directory cannot be opened without following a link ({exc.strerror})"],
        )
    try:
        repositories = list(find_repositories(root))
    except _TooMuch as exc:
        return lifecycle.Work([], [str(exc)])
    if not repositories:
        return lifecycle.Work()
    git = shutil.which("git")
    if git is None:
        return lifecycle.Work([], ["git is not installed on the host, so no repository was read"])
    for worktree in repositories:
        shown = "~/" + worktree.relative_to(root).as_posix() if worktree != root else "~"
        try:
            found += [f"{shown}: {item}" for item in _repository_work(git, root, worktree)]
        except _Doubt as exc:
            unknown.append(f"{shown}: {exc}")
    return lifecycle.Work(found, unknown)


class _TooMuch(Exception):  # noqa: N818 - a state of the volume
    pass


class _Doubt(Exception):  # noqa: N818 - a state of one repository
    pass


def find_repositories(root: Path) -> Iterator[Path]:
    """Directories below root that hold a .git (a directory or a file); links not followed."""
    visited = 0
    for directory, subdirectories, files in os.walk(root, followlinks=False):
        visited += 1
        if visited > MAX_DIRECTORIES:
            message = f"more than {MAX_DIRECTORIES} directories: too many to look through"
            raise _TooMuch(message)
        here = Path(directory)
        if ".git" in subdirectories or ".git" in files:
            yield here
            subdirectories.clear()  # the repository's own tree is git's to read
            continue
        depth = len(here.relative_to(root).parts)
        subdirectories[:] = sorted(
            name for name in subdirectories if name not in SKIPPED and depth < MAX_DEPTH
        )


def _inside(root: Path, path: Path) -> Path:
    """Path with every link resolved, refusing one that leads out of the volume."""
    real = Path(os.path.realpath(path))
    if not real.is_relative_to(os.path.realpath(root)):
        raise _Doubt(f"{path.name} leads outside the volume")
    return real


def _git_directories(root: Path, worktree: Path) -> tuple[Path, Path]:
    """The repository's git directory (HEAD, index) and common directory (refs, objects)."""
    dot_git = worktree / ".git"
    if dot_git.is_symlink():
        raise _Doubt(".git is a link")
    if dot_git.is_dir():
        git_dir = dot_git
    else:
        text = _small(dot_git)
        if not text.startswith("gitdir:"):
            raise _Doubt(".git is neither a directory nor a gitdir file")
        git_dir = _inside(root, worktree / text.removeprefix("gitdir:").strip())
    common = git_dir
    if (git_dir / "commondir").is_file():
        common = _inside(root, git_dir / _small(git_dir / "commondir").strip())
    return git_dir, common


def _small(path: Path) -> str:
    """A small text file of the repository, not through a link."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise _Doubt(f"{path.name} cannot be read ({exc.strerror})") from exc
    try:
        return os.read(fd, 4096).decode("utf-8", "replace")
    finally:
        os.close(fd)


def _format_settings(git: str, common: Path) -> str:
    """The repository format and extensions from its configuration, read as a plain file.

    `git config --file` reads one file without includes and runs nothing.
    """
    config = common / "config"
    if config.is_symlink() or not config.is_file():
        return ""
    result = process.run(
        [git, "config", "--file", str(config), "--list"],
        env=_environment(Path(os.devnull)),
        timeout=GIT_TIMEOUT,
    )
    if not result.ok:
        raise _Doubt(f"its configuration cannot be read: {_first_line(result.stderr)}")
    version, extensions = "0", []
    for line in result.stdout.splitlines():
        key, _, value = line.partition("=")
        if key == "core.repositoryformatversion":
            version = value
        elif key.startswith("extensions.") and "\n" not in value:
            extensions.append(f"\t{key.removeprefix('extensions.')} = {value}\n")
    body = f"[core]\n\trepositoryformatversion = {version}\n\tbare = false\n"
    return body + ("[extensions]\n" + "".join(extensions) if extensions else "")


def _scratch(git: str, scratch: Path, git_dir: Path, common: Path) -> None:
    """Fill a scratch git directory that reads the repository but not its configuration."""
    head = _small(git_dir / "HEAD")
    write.write_file(scratch / "HEAD", head.encode("utf-8"))
    write.write_file(scratch / "config", _format_settings(git, common).encode("utf-8"))
    for source, name in [(common, name) for name in LINKED] + [(git_dir, "index")]:
        if (source / name).is_symlink():
            # The repository's own parts, not somewhere else root could be led to read.
            raise _Doubt(f".git/{name} is a link")
        if (source / name).exists():
            write.link(source / name, scratch / name)


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


def _repository_work(git: str, root: Path, worktree: Path) -> list[str]:
    """What is unsaved in one repository (empty: nothing)."""
    git_dir, common = _git_directories(root, worktree)
    with write.temporary_directory("devbox-git-") as scratch:
        _scratch(git, scratch, git_dir, common)
        base = [git, *(arg for s in SAFE_SETTINGS for arg in ("-c", s))]
        base += [f"--git-dir={scratch}", f"--work-tree={worktree}"]
        environment = _environment(scratch)
        status = _git(
            [*base, "status", "--porcelain", "-z", "--ignore-submodules=all"], environment
        )
        commits = _git(
            [
                *base,
                "rev-list",
                "--count",
                "--branches",
                "--glob=refs/stash*",
                "--not",
                "--remotes",
            ],
            environment,
        )
    work = []
    changed = [entry for entry in status.split("\0") if entry.strip()]
    if changed:
        work.append(f"uncommitted changes ({len(changed)} files)")
    count = int(commits.strip() or "0")
    if count:
        work.append(f"{count} commits on no remote (a branch not pushed, or a stash)")
    return work


def _git(argv: list[str], environment: dict[str, str]) -> str:
    try:
        result = process.run(argv, env=environment, timeout=GIT_TIMEOUT)
    except ToolError as exc:
        raise _Doubt(exc.message) from exc
    if not result.ok:
        raise _Doubt(f"git failed: {_first_line(result.stderr)}")
    return result.stdout


def _first_line(text: str) -> str:
    return next((line for line in text.splitlines() if line.strip()), "no message")
