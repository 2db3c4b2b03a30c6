"""The writer: atomic replacement of the tree, unchanged files untouched, stale files removed."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devbox import write
from devbox.declare import generated_tree
from devbox.declare.generated_tree import Change
from devbox.errors import UsageError
from trees import tree

A = {"manifest.json": b"{}\n", "users/1001/a.container": b"a\n", "system/t.timer": b"t\n"}
B = {"manifest.json": b"{ }\n", "users/1001/b.container": b"b\n", "system/t.timer": b"t\n"}


def test_first_write_creates_every_file(tmp_path: Path) -> None:
    report = generated_tree.write_tree(tmp_path / "generated", A)
    assert report.changes == dict.fromkeys(sorted(A), Change.CREATED)
    assert generated_tree.read_tree(tmp_path / "generated") == A


def test_second_write_reports_each_change(tmp_path: Path) -> None:
    root = tmp_path / "generated"
    generated_tree.write_tree(root, A)
    report = generated_tree.write_tree(root, B)
    assert report.changes == {
        "manifest.json": Change.UPDATED,
        "system/t.timer": Change.UNCHANGED,
        "users/1001/a.container": Change.REMOVED,
        "users/1001/b.container": Change.CREATED,
    }
    assert generated_tree.read_tree(root) == B


def test_unchanged_files_keep_their_mtime_and_inode(tmp_path: Path) -> None:
    root = tmp_path / "generated"
    generated_tree.write_tree(root, A)
    timer = root / "system/t.timer"
    old_time = time.time() - 3600
    os.utime(timer, (old_time, old_time))
    before = timer.stat()
    generated_tree.write_tree(root, B)
    after = (root / "system/t.timer").stat()
    assert (after.st_mtime, after.st_ino) == (before.st_mtime, before.st_ino)
    assert (root / "manifest.json").stat().st_mtime > old_time


def test_nothing_changed_means_nothing_written(tmp_path: Path) -> None:
    root = tmp_path / "generated"
    generated_tree.write_tree(root, A)
    inode = root.stat().st_ino
    report = generated_tree.write_tree(root, A)
    assert not report.changed
    assert root.stat().st_ino == inode, "an unchanged tree must not even be swapped"


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "generated"
    report = generated_tree.write_tree(root, A, dry_run=True)
    assert report.count(Change.CREATED) == 3
    assert not root.exists()
    generated_tree.write_tree(root, A)
    assert generated_tree.write_tree(root, B, dry_run=True).changed
    assert generated_tree.read_tree(root) == A


def test_a_foreign_directory_is_refused_and_left_alone(tmp_path: Path) -> None:
    root = tmp_path / "src"
    root.mkdir()
    (root / "main.py").write_text("print('mine')\n")
    with pytest.raises(UsageError, match="not written by devbox-ctl"):
        generated_tree.write_tree(root, A)
    assert generated_tree.read_tree(root) == {"main.py": b"print('mine')\n"}


def test_files_outside_the_tree_are_never_touched(tmp_path: Path) -> None:
    (tmp_path / "users.nix").write_text("{ }\n")
    generated_tree.write_tree(tmp_path / "generated", A)
    generated_tree.write_tree(tmp_path / "generated", B)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["generated", "users.nix"]


def test_without_an_atomic_exchange_the_result_is_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(generated_tree, "_exchange", lambda a, b: False)
    root = tmp_path / "generated"
    generated_tree.write_tree(root, A)
    generated_tree.write_tree(root, B)
    assert generated_tree.read_tree(root) == B
    assert sorted(p.name for p in tmp_path.iterdir()) == ["generated"]


def test_a_crash_between_the_two_renames_is_undone(tmp_path: Path) -> None:
    """Fallback path, killed after moving the old tree aside: the next run restores it."""
    root = tmp_path / "generated"
    generated_tree.write_tree(root, A)
    root.rename(tmp_path / ".generated.devbox-old")
    (tmp_path / ".generated.devbox-new").mkdir()
    (tmp_path / ".generated.devbox-new" / "half").write_text("x")
    generated_tree.recover(root)
    assert generated_tree.read_tree(root) == A
    assert sorted(p.name for p in tmp_path.iterdir()) == ["generated"]


def test_write_file_replaces_content_and_keeps_mode(tmp_path: Path) -> None:
    path = tmp_path / "containers.json"
    path.write_text("old")
    path.chmod(0o640)
    write.write_file(path, b"new")
    assert path.read_bytes() == b"new"
    assert path.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["containers.json"]


WRITER = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from trees import tree
from devbox.declare.generated_tree import write_tree
root = Path(sys.argv[1])
trees = [tree("b"), tree("a")]
print("ready", flush=True)
i = 0
while True:
    write_tree(root, trees[i % 2])
    i += 1
"""


@pytest.mark.slow
def test_a_kill_at_any_moment_leaves_the_old_tree_or_the_new(tmp_path: Path) -> None:
    root = tmp_path / "generated"
    tree_a, tree_b = tree("a"), tree("b")
    generated_tree.write_tree(root, tree_b)
    started = time.monotonic()
    generated_tree.write_tree(root, tree_a)
    # Kill within the first few writes, wherever they are: building, syncing, swapping.
    window = 2 * (time.monotonic() - started) + 0.1
    rng = random.Random(20261126)
    seen = set()
    for _ in range(20):
        child = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(root), str(Path(__file__).parent)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, window))
        child.send_signal(signal.SIGKILL)
        child.wait()
        now = generated_tree.read_tree(root)
        assert now in (tree_a, tree_b), "the tree is a mix of two versions"
        seen.add(now[("manifest.json")])
        generated_tree.recover(
            root
        )  # what the next run does first: drop the half-built staging tree
    assert len(seen) == 2, "the kills never landed between two different trees"


WRITE_FILE = """
import sys
from pathlib import Path
from devbox.write import write_file
path = Path(sys.argv[1])
contents = [b'{"n": "' + str(i).encode() * 50000 + b'"}' for i in range(2)]
print("ready", flush=True)
i = 0
while True:
    write_file(path, contents[i % 2])
    i += 1
"""


@pytest.mark.slow
def test_a_kill_during_write_file_leaves_old_or_new(tmp_path: Path) -> None:
    path = tmp_path / "containers.json"
    path.write_bytes(b'{"n": ""}')
    rng = random.Random(7)
    for _ in range(20):
        child = subprocess.Popen(
            [sys.executable, "-c", WRITE_FILE, str(path)], stdout=subprocess.PIPE, text=True
        )
        assert child.stdout is not None
        child.stdout.readline()
        time.sleep(rng.uniform(0.0, 0.3))
        child.send_signal(signal.SIGKILL)
        child.wait()
        content = path.read_bytes()
        assert content in (
            b'{"n": ""}',
            b'{"n": "' + b"0" * 50000 + b'"}',
            b'{"n": "' + b"1" * 50000 + b'"}',
        )
