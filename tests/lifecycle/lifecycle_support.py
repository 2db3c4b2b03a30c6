"""Helpers for the lifecycle tests: runtimes over in-memory declarations, filled volumes."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from devbox import hostconfig, identity, models, resolve
from devbox.context import Runtime


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


def fill_volume(container: str, files: dict[str, bytes]) -> Path:
    """Create a container's volume and write files into it from the host; return its path."""
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
    return root
