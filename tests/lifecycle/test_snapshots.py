"""Snapshots: a real podman volume exported before a destroy, described beside its data."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from lifecycle_support import fill_volume, runtime, volume_path

from devbox.errors import NoVolumeError, ToolError, UsageError
from devbox.lifecycle import snapshots


def test_take_exports_the_volume_and_describes_it(
    tmp_path: Path, volumes: Callable[[str], str], now
) -> None:
    name = volumes("snap")
    fill_volume(name, {"project/main.py": b"print('hi')\n", ".bashrc": b"# mine\n"})
    rt = runtime(tmp_path / "state", [{"name": name, "owner": "bob", "memory": "2G"}])

    data = snapshots.take(rt, rt.container(name))

    assert data.parent == tmp_path / "state/snapshots"
    # The container, the time and a random part: ids of one second never collide.
    assert re.fullmatch(rf"{name}-20261102T090000Z-[0-9a-f]{{8}}\.tar", data.name)
    with tarfile.open(data) as archive:
        assert archive.extractfile("project/main.py").read() == b"print('hi')\n"
    description = json.loads(data.with_suffix(".json").read_text())
    assert description == {
        "version": 1,
        "id": data.name.removesuffix(".tar"),
        "container": name,
        "owner": "bob",
        "created": "2026-11-02T09:00:00Z",
        "volume": f"{name}-data",
        "sha256": hashlib.sha256(data.read_bytes()).hexdigest(),
        "size": data.stat().st_size,
        "stored": data.stat().st_blocks * 512,
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


def tree(root: Path) -> dict[str, tuple]:
    """Every entry below root: type, mode, owner and content (or link target)."""
    found = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        if path.is_symlink():
            what: object = ("link", str(path.readlink()))
        elif path.is_dir():
            what = ("dir",)
        else:
            what = ("file", path.read_bytes())
        found[path.relative_to(root).as_posix()] = (*what, info.st_mode, info.st_uid, info.st_gid)
    return found


def test_a_snapshot_restores_to_the_same_bytes(
    tmp_path: Path, volumes: Callable[[str], str], now
) -> None:
    name, copy = volumes("snap"), volumes("copy")
    root = fill_volume(
        name,
        {
            "project/main.py": b"print('hi')\n",
            "project/data.bin": bytes(range(256)) * 64,
            ".ssh/authorized_keys": b"ssh-ed25519 AAAA test\n",
            ".local/share/tailscale/tailscaled.state": b"node identity",
            ".local/state/devbox/notice": b"old warning\n",
        },
    )
    (root / "project" / "link").symlink_to("main.py")
    (root / "empty").mkdir()
    (root / ".ssh").chmod(0o700)
    (root / ".ssh/authorized_keys").chmod(0o600)
    os.chown(root / "project/main.py", 1000, 1000)
    rt = runtime(
        tmp_path / "state", [{"name": name, "owner": "bob"}, {"name": copy, "owner": "bob"}]
    )
    snapshots.take(rt, rt.container(name))
    snapshot = snapshots.choose(rt, name)
    snapshots.verify(snapshot)

    snapshots.import_snapshot(rt, snapshot, rt.container(copy))

    expected = {
        path: entry
        for path, entry in tree(root).items()
        if not path.startswith(".local/share/tailscale") and path != ".local/state/devbox/notice"
    }
    assert tree(volume_path(copy)) == expected


def test_a_damaged_snapshot_is_refused(tmp_path: Path, volumes: Callable[[str], str], now) -> None:
    name = volumes("snap")
    fill_volume(name, {"a": b"a"})
    rt = runtime(tmp_path / "state", [{"name": name, "owner": "bob"}])
    data = snapshots.take(rt, rt.container(name))
    with data.open("r+b") as file:
        file.seek(600)
        file.write(b"X")
    with pytest.raises(ToolError, match="is damaged"):
        snapshots.verify(snapshots.choose(rt, name))


def test_snapshots_are_found_by_container_and_pruned_after_retention(
    tmp_path: Path, volumes: Callable[[str], str], now
) -> None:
    name = volumes("snap")
    fill_volume(name, {"a": b"a"})
    rt = runtime(tmp_path / "state", [{"name": name, "owner": "bob"}], snapshotRetentionDays=30)
    first = snapshots.take(rt, rt.container(name))
    now.advance(days=10)
    second = snapshots.take(rt, rt.container(name))
    assert snapshots.choose(rt, name).path == second
    assert snapshots.choose(rt, name, first.name.removesuffix(".tar")).path == first
    with pytest.raises(UsageError, match=f"no snapshot nope of {name}"):
        snapshots.choose(rt, name, "nope")
    with pytest.raises(UsageError, match="no snapshot at all of other"):
        snapshots.choose(rt, "other")

    now.advance(days=21)  # the first is 31 days old, the second 21
    assert [s.path for s in snapshots.prune(rt, now.now)] == [first]
    assert not first.exists()
    assert not first.with_suffix(".json").exists()
    assert [s.path for s in snapshots.every(rt)] == [second]
