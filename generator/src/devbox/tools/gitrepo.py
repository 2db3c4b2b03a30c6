"""The config repository: every change devbox-ctl makes is a commit that says who did what."""

from __future__ import annotations

import socket
from collections.abc import Sequence
from pathlib import Path

from devbox.errors import ToolError
from devbox.tools import process

COMMITTER = "devbox-ctl"


def _git(repo: Path, *args: str) -> process.Result:
    email = f"devbox-ctl@{socket.gethostname() or 'localhost'}"
    return process.run(
        [
            "git",
            "-C",
            str(repo),
            "-c",
            f"user.name={COMMITTER}",
            "-c",
            f"user.email={email}",
            *args,
        ],
        timeout=120,
    )


def commit(repo: Path, paths: Sequence[Path], message: str) -> str | None:
    """Commit these paths with the message; None when nothing changed. Returns the commit id."""
    if not _git(repo, "rev-parse", "--git-dir").ok:
        raise ToolError(
            f"{repo} is not a git repository",
            hint="services.devbox.configRepo must be a git checkout (git init; commit users.nix)",
        )
    relative = [str(path.relative_to(repo)) for path in paths]
    added = _git(repo, "add", "--all", "--", *relative)
    if not added.ok:
        raise ToolError(f"git add failed in {repo}: {added.stderr.strip()}")
    if _git(repo, "diff", "--cached", "--quiet", "--", *relative).ok:
        return None
    committed = _git(repo, "commit", "--quiet", "--message", message, "--", *relative)
    if not committed.ok:
        # Leave the index as it was: the caller puts the files back.
        _git(repo, "reset", "--quiet", "--", *relative)
        raise ToolError(f"git commit failed in {repo}: {committed.stderr.strip()}")
    return _git(repo, "rev-parse", "--short", "HEAD").stdout.strip()
