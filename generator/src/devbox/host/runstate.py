"""The run state: whether each container is to be running on this host, kept outside the store.

`stop` and `start` change it at once and run no rebuild; the declaration (containers.json,
committed) records the same change for the audit trail and for `check`. What a switch
installs (the manifest, the units) carries no run state a boot could act on: the units have
no [Install] section, and `devbox-ctl apply`, run by the module at boot and after each switch,
starts the containers whose run state is `running` (docs/orchestrator.md, "Where the run
state lives").

One file per container, `<stateDir>/run-state/<user>/<name>`, holding `running` or
`stopped`. A missing file, or one holding anything else, is no record: the declaration's state
counts. The files are root's (stateDir is 0700); each user's directory is also the lock that
apply and the verbs take before they read, act and write, so a stop never meets an apply of
the same user half-way.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from devbox import write

DIRECTORY = "run-state"
RUNNING = "running"
STOPPED = "stopped"
STATES = (RUNNING, STOPPED)
_MOST = 64  # bytes read of a record: it is one word


def _user_dir(state_dir: Path, user: str) -> Path:
    return state_dir / DIRECTORY / user


@contextmanager
def held(state_dir: Path, user: str) -> Iterator[None]:
    """Hold the user's run-state lock (re-entrant in this process), creating the directory."""
    directory = _user_dir(state_dir, user)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    with write.locked(directory):
        yield


def read(state_dir: Path, user: str, name: str) -> str | None:
    """The recorded run state of a container, or None when there is no usable record."""
    try:
        fd = os.open(_user_dir(state_dir, user) / name, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        text = os.read(fd, _MOST).decode("ascii", "replace").strip()
    except OSError:
        return None
    finally:
        os.close(fd)
    return text if text in STATES else None


def record(state_dir: Path, user: str, name: str, state: str) -> None:
    """Record a container's run state (atomic: a crash leaves the old record or the new).

    Under the user's lock (held already by a caller that acts on the container beside it).
    """
    if state not in STATES:
        raise ValueError(f"not a run state: {state!r}")
    with held(state_dir, user):
        if read(state_dir, user, name) != state:
            path = _user_dir(state_dir, user) / name
            write.write_file(path, f"{state}\n".encode(), mode=0o600)


def forget(state_dir: Path, user: str, name: str) -> None:
    """Remove a container's record (its declaration is gone), under the user's lock."""
    with held(state_dir, user):
        write.remove_file(_user_dir(state_dir, user) / name)
