"""Snapshots: a real podman volume exported before a destroy, described beside its data."""

from __future__ import annotations

import hashlib
import json
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from lifecycle_support import fill_volume, runtime

from devbox import snapshots
from devbox.errors import NoVolumeError


def test_take_exports_the_volume_and_describes_it(
    tmp_path: Path, volumes: Callable[[str], str], now
) -> None:
    name = volumes("snap")
    fill_volume(name, {"project/main.py": b"print('hi')\n", ".bashrc": b"# mine\n"})
    rt = runtime(tmp_path / "state", [{"name": name, "owner": "bob", "memory": "2G"}])

    data = snapshots.take(rt, rt.container(name))

    assert data == tmp_path / "state/snapshots" / f"{name}-20261102T090000Z.tar"
    with tarfile.open(data) as archive:
        assert archive.extractfile("project/main.py").read() == b"print('hi')\n"
    description = json.loads(data.with_suffix(".json").read_text())
    assert description == {
        "version": 1,
        "id": f"{name}-20261102T090000Z",
        "container": name,
        "owner": "bob",
        "created": "2026-11-02T09:00:00Z",
        "volume": f"{name}-data",
        "sha256": hashlib.sha256(data.read_bytes()).hexdigest(),
        "size": data.stat().st_size,
        "settings": {"cpu": 2, "memory": "2G", "syncthing": False},
        "file": data.name,
    }
    assert data.stat().st_mode & 0o777 == 0o600
    assert data.parent.stat().st_mode & 0o777 == 0o700


def test_take_refuses_a_missing_volume(tmp_path: Path, volumes: Callable[[str], str]) -> None:
    name = volumes("snap")
    rt = runtime(tmp_path / "state", [{"name": name, "owner": "bob"}])
    with pytest.raises(NoVolumeError, match="nothing to snapshot"):
        snapshots.take(rt, rt.container(name))
    assert not list((tmp_path / "state").glob("snapshots/*"))
