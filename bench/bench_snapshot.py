"""Benchmark of a snapshot's export: prints numbers, asserts nothing.

A real podman volume (rootful, in storage of its own under --dir) holds one file of --size
MiB, sparse (a few bytes, then a hole) or full of random bytes. For each, as the best of a
few runs, it times:

- podman:    `podman volume export` into /dev/null, on its own;
- snapshot:  the export as a snapshot takes it (process.run_streamed, the sha256 and
             write.SparseFile), into a file in --dir;
- sha256:    the part of that snapshot spent hashing the stream (its best run's);

and prints the archive's length and the bytes the snapshot takes on disk.

Run: .venv/bin/python bench/bench_snapshot.py [--dir DIR] [--size 1024] [--runs 3]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from timing import best

from devbox import write
from devbox.tools import process
from devbox.tools.podman import Podman


def podman_environment(base: Path) -> dict[str, str]:
    """Podman storage of the benchmark's own."""
    storage = base / "storage.conf"
    storage.write_text(
        f'[storage]\ndriver = "vfs"\nrunroot = "{base}/run"\ngraphroot = "{base}/root"\n'
    )
    return {"CONTAINERS_STORAGE_CONF": str(storage)}


def volume(name: str, size: int, *, sparse: bool) -> None:
    """A volume holding one file of `size` bytes."""
    subprocess.run(["podman", "volume", "create", name], check=True, capture_output=True)
    out = subprocess.run(
        ["podman", "volume", "inspect", name, "--format", "{{.Mountpoint}}"],
        check=True,
        capture_output=True,
        text=True,
    )
    with (Path(out.stdout.strip()) / "file").open("wb") as file:
        if sparse:
            file.write(b"head")
            file.truncate(size)
        else:
            for _ in range(size >> 20):
                file.write(os.urandom(1 << 20))


def snapshot(podman: Podman, name: str, directory: Path) -> tuple[int, int, float]:
    """Export as `snapshots.take` does; the archive's length, its bytes on disk and the
    seconds spent in the sha256."""
    sha256 = hashlib.sha256()
    hashing = 0.0
    with write.new_sparse_file(directory, lambda: f"{time.time_ns()}.tar") as (path, out):

        def keep(chunk: bytes) -> None:
            nonlocal hashing
            start = time.perf_counter()
            sha256.update(chunk)
            hashing += time.perf_counter() - start
            out.write(chunk)

        podman.export_volume(name, keep)
        out.finish()
        length, stored = out.length, write.allocated(path.stat())
    path.unlink()
    return length, stored, hashing


def timed(action: Callable[[], tuple[int, int, float]]) -> tuple[float, tuple[int, int, float]]:
    """The seconds action() took, and what it returned."""
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=None, help="where podman and files go")
    parser.add_argument("--size", type=int, default=1024, help="the file's size in MiB")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="devbox-bench-") as name:
        base = Path(name)
        os.environ.update(podman_environment(base))
        # podman as this user, by its absolute path, as the runtime builds it (host/context.py)
        podman = Podman("root", os.geteuid(), process.absolute("podman"))
        size = args.size << 20
        print(
            f"{'file':<22} {'podman s':>9} {'snapshot s':>11} {'sha256 s':>9}"
            f" {'archive':>14} {'on disk':>12}"
        )
        for kind, sparse in (("sparse", True), ("random", False)):
            volume(kind, size, sparse=sparse)
            export = ["podman", "volume", "export", kind]
            raw = best(
                args.runs,
                lambda: subprocess.run(export, check=True, stdout=subprocess.DEVNULL),  # noqa: B023
            )
            runs = [timed(lambda: snapshot(podman, kind, base)) for _ in range(args.runs)]  # noqa: B023
            taken, (length, stored, hashing) = min(runs, key=lambda run: run[0])
            label = f"{args.size} MiB {kind}"
            print(
                f"{label:<22} {raw:>9.2f} {taken:>11.2f} {hashing:>9.2f}"
                f" {length:>14,} {stored:>12,}"
            )
            subprocess.run(["podman", "volume", "rm", kind], check=True, capture_output=True)


if __name__ == "__main__":
    main()
