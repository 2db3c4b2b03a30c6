"""The snapshot store's own guarantees: sparse files, exclusive names, quotas while writing,
and what a killed export leaves behind. Real podman volumes (tests/lifecycle/conftest.py)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from lifecycle_support import fill_volume, runtime

from devbox import write
from devbox.errors import UsageError
from devbox.lifecycle import snapshot_quota, snapshots
from devbox.tools.podman import Podman


def test_a_sparse_file_keeps_its_bytes_and_its_holes(tmp_path: Path) -> None:
    data = os.urandom(5000) + bytes(3 << 20) + os.urandom(7) + bytes(9000) + b"end"
    with write.new_sparse_file(tmp_path, lambda: "sparse") as (path, out):
        # Pieces of odd sizes, as a pipe hands them over.
        for start in range(0, len(data), 65_531):
            out.write(data[start : start + 65_531])
    assert path.read_bytes() == data
    assert out.length == len(data)
    assert write.allocated(path.stat()) <= 6 * 4096 < len(data) // 100
    assert out.stored <= 6 * 4096


def test_a_new_file_never_replaces_one_that_exists(tmp_path: Path) -> None:
    (tmp_path / "taken").write_bytes(b"first")
    proposals = iter(["taken", "taken", "free"])
    with write.new_sparse_file(tmp_path, lambda: next(proposals)) as (path, out):
        out.write(b"second")
    assert path.name == "free"
    assert (tmp_path / "taken").read_bytes() == b"first"
    with (
        pytest.raises(FileExistsError),
        write.new_sparse_file(tmp_path, lambda: "taken") as (_, out),
    ):
        out.write(b"never")
    assert (tmp_path / "taken").read_bytes() == b"first"


def _fail_halfway(directory: Path) -> None:
    with write.new_sparse_file(directory, lambda: "x") as (_, out):
        out.write(b"partial")
        raise RuntimeError


def test_a_failed_block_leaves_no_file(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError):
        _fail_halfway(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_write_new_refuses_to_replace(tmp_path: Path) -> None:
    (tmp_path / "d.json").write_text("first")
    with pytest.raises(FileExistsError):
        write.write_new(tmp_path / "d.json", b"second")
    assert (tmp_path / "d.json").read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["d.json"]


def test_an_export_past_the_bytes_left_is_stopped_and_removed(
    tmp_path: Path, volumes: Callable[[str], str], now
) -> None:
    name = volumes("snap")
    fill_volume(name, {"work.bin": os.urandom(4 << 20)})
    rt = runtime(
        tmp_path / "state",
        [{"name": name, "owner": "bob"}],
        maxSnapshotBytesPerUser="1M",
    )
    with pytest.raises(UsageError, match=r"takes more than the 1\.0 MiB left of bob's"):
        snapshots.take(rt, rt.container(name))
    assert list((tmp_path / "state/snapshots").iterdir()) == []


def test_the_tightest_limit_bounds_the_export(
    tmp_path: Path, volumes: Callable[[str], str], now
) -> None:
    name = volumes("snap")
    fill_volume(name, {"a": os.urandom(64 << 10)})
    rt = runtime(
        tmp_path / "state",
        [{"name": name, "owner": "bob"}],
        maxSnapshotBytesPerUser="10M",
        maxSnapshotBytesGlobal="12M",
    )
    first = snapshots.choose(rt, name, snapshots.take(rt, rt.container(name)).stem)
    room = snapshot_quota.room(rt, "bob", name, snapshots.every(rt))
    # bob's 10M leave less room than the host's 12M (which also count the description).
    assert room.bound.field == "maxSnapshotBytesPerUser"
    assert room.bytes == 10 * 1024**2 - first.stored
    debris = rt.config.snapshots_dir / ".left.devbox-tmp-1"
    debris.write_bytes(os.urandom(3 << 20))  # a killed export's file takes disk too
    room = snapshot_quota.room(rt, "bob", name, snapshots.every(rt))
    assert room.bound.field == "maxSnapshotBytesGlobal"
    assert room.bytes < 9 * 1024**2


def test_prune_sweeps_what_killed_exports_left(
    tmp_path: Path, volumes: Callable[[str], str], now
) -> None:
    name = volumes("snap")
    fill_volume(name, {"a": b"a"})
    rt = runtime(tmp_path / "state", [{"name": name, "owner": "bob"}])
    kept = snapshots.take(rt, rt.container(name))
    directory = rt.config.snapshots_dir
    (directory / f"{name}-20261102T090000Z-0000dead.tar").write_bytes(b"half an export")
    (directory / f"{name}-20261102T090000Z-0000dead.reserved").write_text('{"owner": "bob"}')
    old = directory / ".x.json.devbox-tmp-4242"
    old.write_bytes(b"{")
    os.utime(old, (0, 0))
    fresh = directory / ".y.json.devbox-tmp-4243"  # between its write and its link
    fresh.write_bytes(b"{")
    with write.new_sparse_file(directory, lambda: f"{name}-20261102T090000Z-0000live.tar") as (
        live,
        _,
    ):
        reservation = snapshot_quota.reserve(live, "bob", 1024)
        assert snapshots.prune(rt, now.now) == []
        assert sorted(p.name for p in directory.iterdir()) == sorted(
            [kept.name, kept.with_suffix(".json").name, fresh.name, live.name, reservation.name]
        )


def test_an_export_being_written_holds_its_room_and_a_killed_one_none(
    tmp_path: Path, volumes: Callable[[str], str]
) -> None:
    rt = runtime(tmp_path / "state", [], maxSnapshotBytesPerUser="10M", maxSnapshotsPerUser=2)
    directory = write.ensure_directory(rt.config.snapshots_dir, mode=0o700)
    before = snapshot_quota.room(rt, "bob", "box", []).bytes
    with write.new_sparse_file(directory, lambda: "box-1.tar") as (data, _):
        snapshot_quota.reserve(data, "bob", 4 << 20)
        assert snapshot_quota.room(rt, "bob", "box", []).bytes == before - (4 << 20)
        with write.new_sparse_file(directory, lambda: "box-2.tar") as (second, _):
            snapshot_quota.reserve(second, "bob", 1 << 20)
            with pytest.raises(UsageError, match="already holds 2 snapshots, the limit of 2"):
                snapshot_quota.room(rt, "bob", "box", [])
        assert snapshot_quota.room(rt, "alice", "box", []).bytes == 10 << 20
    # The writer is gone (as if killed): its reservation file is left, and holds nothing.
    (directory / "box-1.tar").write_bytes(b"")
    assert (directory / "box-1.reserved").exists()
    assert snapshot_quota.room(rt, "bob", "box", []).bytes == before


def test_two_exports_at_once_never_count_on_the_same_room(
    tmp_path: Path, volumes: Callable[[str], str], now, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = volumes("snap"), volumes("snap")
    for name in (first, second):
        fill_volume(name, {"work.bin": os.urandom(3 << 20)})
    rt = runtime(
        tmp_path / "state",
        [{"name": first, "owner": "bob"}, {"name": second, "owner": "bob"}],
        maxSnapshotBytesPerUser="10M",
    )
    exporting, go_on = threading.Event(), threading.Event()
    original = Podman.export_volume

    def slow_first(self: Podman, volume: str, on_chunk: Callable[[bytes], None]) -> None:
        def chunk(data: bytes) -> None:
            on_chunk(data)
            if volume == f"{first}-data":
                exporting.set()
                go_on.wait(30)

        original(self, volume, chunk)

    monkeypatch.setattr(Podman, "export_volume", slow_first)
    taken: list[Path] = []
    writer = threading.Thread(target=lambda: taken.append(snapshots.take(rt, rt.container(first))))
    writer.start()
    assert exporting.wait(30)
    # The first export holds bob's room (not the directory's lock): the second is refused
    # at once instead of both fitting on their own and overflowing together.
    with pytest.raises(UsageError, match="bob's snapshot store already holds snapshots taking"):
        snapshots.take(rt, rt.container(second))
    go_on.set()
    writer.join(30)
    assert len(taken) == 1
    assert [s.container for s in snapshots.every(rt)] == [first]
    assert snapshots.take(rt, rt.container(second)).is_file()
