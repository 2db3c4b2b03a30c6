"""Helpers for the lifecycle tests: runtimes over in-memory declarations, filled volumes."""

from __future__ import annotations

import http.server
import os
import subprocess
from pathlib import Path
from typing import Any, ClassVar

from devbox import volume
from devbox.declare import models, resolve
from devbox.host import hostconfig, identity
from devbox.host.context import Runtime
from support import require_root


def policy(**fields: Any) -> models.Policy:
    return models.Policy.model_validate(fields)


USERS = {
    "alice": models.User(uid=1001, admin=True),
    "bob": models.User(uid=1002),
}


def runtime(
    state_dir: Path,
    records: list[dict[str, Any]],
    *,
    caller: str = "root",
    config_repo: Path | None = None,
    **policy_fields: Any,
) -> Runtime:
    """A runtime over in-memory declarations (no users.nix is read)."""
    parsed = [models.ContainerRecord.model_validate(r) for r in records]
    desired = resolve.resolve(USERS, policy(**policy_fields), parsed)
    config = hostconfig.HostConfig(
        version=1, config_repo=config_repo or state_dir / "repo", state_dir=state_dir
    )
    who = (
        identity.Caller(0, "root", admin=True)
        if caller == "root"
        else identity.identify(USERS[caller].uid, USERS)
    )
    return Runtime(config=config, caller=who, _desired=desired)


def fill_volume(container: str, files: dict[str, bytes], owner_uid: int | None = None) -> Path:
    """Create a container's volume and write files into it from the host; return its path.

    With owner_uid, the files are given to that owner's dev, as rootless podman has them.
    """
    subprocess.run(
        ["podman", "volume", "create", f"{container}-data"], check=True, capture_output=True
    )
    mountpoint = subprocess.run(
        ["podman", "volume", "inspect", f"{container}-data", "--format", "{{.Mountpoint}}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    root = Path(mountpoint)
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return root if owner_uid is None else as_rootless(root, owner_uid)


# Volumes as rootless podman leaves them. podman runs rootful here, as root, so a volume's
# files belong to root; in the owner's rootless podman they belong to the container's dev as
# the owner's subordinate range maps it (uid x 65536 + 999, volume.py). These give them that
# owner, which is what volume.py accepts.


def dev_uid(owner_uid: int) -> int:
    """The host uid of the container's dev for an owner (rootless podman's mapping)."""
    return volume.mapped(owner_uid, volume.DEV_UID)


def as_rootless(root: Path, owner_uid: int = 1001) -> Path:
    """Give a volume's directory and everything in it to the owner's mapped dev; return it.

    The monitor's state directory is made first: the tests write the monitor's files as root,
    and a directory they made would be root's, where the owner could not write a notice.
    """
    require_root("gives the volume's files to the owner's mapped dev (chown)")
    uid = dev_uid(owner_uid)
    (root / ".local/state/devbox").mkdir(parents=True, exist_ok=True)
    os.chown(root, uid, uid)
    for directory, subdirectories, files in os.walk(root):
        for name in subdirectories + files:
            os.chown(Path(directory) / name, uid, uid, follow_symlinks=False)
    return root


def open_as_volume(root: Path, owner_uid: int = 1001, seconds: float = 60) -> volume.Tree:
    """A directory of the test's opened as a volume of the owner (made theirs first)."""
    as_rootless(root, owner_uid)
    return volume.open_tree(
        root,
        uid=owner_uid,
        owners=frozenset({owner_uid, dev_uid(owner_uid)}),
        gid=dev_uid(owner_uid),
        what=f"the test volume {root.name}",
        budget=volume.Budget.of(seconds, f"the test's {seconds} s"),
    )


def volume_path(container: str) -> Path:
    """Where podman keeps a container's volume."""
    return Path(
        subprocess.run(
            ["podman", "volume", "inspect", f"{container}-data", "--format", "{{.Mountpoint}}"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )


# What the monitor sees: a process table of the test's own


SSH_ARGV = [
    "/bin/tailscaled",
    "be-child",
    "ssh",
    "--login-shell=/bin/bash",
    "--uid=1000",
    "--local-user=dev",
    "--has-tty=true",
    "--tty-name=pts/3",
    "--shell",
]


def fake_proc(directory: Path, argvs: list[list[str]]) -> Path:
    """A process table with exactly these processes (what /proc/<pid>/cmdline holds)."""
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.iterdir():
        (old / "cmdline").unlink()
        old.rmdir()
    for pid, argv in enumerate(argvs, start=100):
        (directory / str(pid)).mkdir()
        (directory / str(pid) / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
    return directory


# Git repositories in a volume


GIT = [
    "git",
    "-c",
    "user.name=dev",
    "-c",
    "user.email=dev@example.org",
    "-c",
    "init.defaultBranch=main",
    # The test's git is root, in repositories the volume's owner has (as_rootless).
    "-c",
    "safe.directory=*",
]


def git(where: Path, *args: str) -> str:
    return subprocess.run(
        [*GIT, "-C", str(where), *args], check=True, capture_output=True, text=True
    ).stdout


def repository(home: Path, name: str, remote: Path | None) -> Path:
    path = home / name
    path.mkdir(parents=True)
    git(path, "init", "-q")
    (path / "README").write_text(f"{name}\n")
    git(path, "add", "README")
    git(path, "commit", "-qm", "first")
    if remote is not None:
        subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
        git(path, "remote", "add", "origin", str(remote))
        git(path, "push", "-q", "origin", "main")
    return path


# A webhook receiver standing in for ntfy


class Hook(http.server.BaseHTTPRequestHandler):
    """Records every POST it receives (headers and body) and answers 200."""

    received: ClassVar[list[tuple[dict[str, str], bytes]]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        Hook.received.append((dict(self.headers), self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass
