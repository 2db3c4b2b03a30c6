"""A fleet's generated tree for the Nix tests, written by the real `devbox-ctl generate`.

users.nix declares three hosts (alpha with two owners' containers, beta with one, gamma with
none) and containers.json gives each container its host; the generator writes one slice per
host and the fleet index (docs/manifest.md#fleet).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from support import run_cli

USERS = {"alice": 1001, "bob": 1002, "carol": 1003}

# alpha: two owners; beta: one container; gamma: a declared host without containers.
HOSTS: dict[str, dict[str, Any]] = {
    "alpha": {
        "reach": "root@alpha.example.ts.net",
        "labels": [],
        "capacity": {"cpus": 16, "memory": "64G", "memoryBytes": 64 << 30, "containers": 8},
        "containers": [
            {"name": "web", "owner": "alice"},
            {"name": "api", "owner": "bob", "memory": "2G"},
        ],
    },
    "beta": {
        "reach": "beta.example.ts.net",
        "labels": ["gpu"],
        "capacity": {"cpus": 32, "memory": "128G", "memoryBytes": 128 << 30, "containers": 10},
        "containers": [{"name": "train", "owner": "alice", "cpu": 8, "memory": "32G"}],
    },
    "gamma": {
        "reach": "admin@gamma",
        "labels": [],
        "capacity": {"cpus": 8, "memory": "32G", "memoryBytes": 32 << 30, "containers": 4},
        "containers": [],
    },
}


def users_nix() -> str:
    users = " ".join(f"{name} = {{ uid = {uid}; }};" for name, uid in USERS.items())
    hosts = " ".join(
        f'{name} = {{ reach = "{entry["reach"]}"; labels = [ '
        + " ".join(f'"{label}"' for label in entry["labels"])
        + " ]; capacity = { "
        + " ".join(
            f"{key} = {json.dumps(entry['capacity'][key])};"
            for key in ("cpus", "memory", "containers")
        )
        + " }; };"
        for name, entry in HOSTS.items()
    )
    return f'{{ users = {{ {users} }}; hosts = {{ {hosts} }}; containers = {{ opVault = "DevBox"; }}; }}'


def fleet_tree(root: Path) -> Path:
    """root/work/generated: what devbox-ctl generate writes for the fleet of HOSTS."""
    work = root / "work"
    work.mkdir(parents=True)
    (work / "users.nix").write_text(users_nix())
    records = [
        container | {"host": host}
        for host, entry in HOSTS.items()
        for container in entry["containers"]
    ]
    (work / "containers.json").write_text(json.dumps({"version": 1, "containers": records}))
    result = run_cli("generate", "-q", cwd=work)
    assert result.code == 0, result.err
    return work / "generated"


def index(generated: Path) -> Any:
    return json.loads((generated / "manifest.json").read_text())


def slice_manifest(generated: Path, host: str) -> Any:
    return json.loads((generated / "hosts" / host / "manifest.json").read_text())
