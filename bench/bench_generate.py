"""Benchmark of the generator: prints numbers, asserts nothing.

For 10, 100, 1,000 and 10,000 containers (over 5, 50, 500 and 2,000 users) it times, each as
the best of a few runs:

- eval:      the one Nix evaluation of users.nix (nix-instantiate), timed on its own;
- generate:  validate + resolve + render + manifest, in memory (excludes the Nix evaluation);
- write:     the first write of the tree to an empty directory on the disk under --dir;
- regen:     generate + write after one container's memory changed (every other file is
             hard-linked, so only two units and the manifest are written);
- plan:      generate + plan against the written tree, after the same change;

then the time per container and the ratio to the previous size (ten times more containers: a
ratio near 10 is linear). It also times `devbox-ctl --help` (median of 15 runs).

Run: .venv/bin/python bench/bench_generate.py [--dir DIR] [--sizes 10,100,1000,10000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from timing import best

from devbox.declare import generated_tree, load, pipeline, render
from devbox.declare import plan as planning
from devbox.declare.validate import Files

USERS_FOR = {10: 5, 100: 50, 1000: 500, 10000: 2000}


def users_nix(count: int, containers: int) -> str:
    users = "\n".join(f"    user{i} = {{ uid = {1000 + i}; }};" for i in range(count))
    per_user = -(-containers // count)
    limits = f"maxGlobal = {max(containers, 7)}; maxPerUser = {max(per_user, 5)};"
    return "{\n  users = {\n" + users + "\n  };\n" + f"  containers = {{ {limits} }};\n}}\n"


def containers_json(count: int, users: int) -> dict[str, Any]:
    return {
        "version": 1,
        "containers": [
            {
                "name": f"box-{i:05d}",
                "owner": f"user{i % users}",
                "cpu": 1 + i % 4,
                "memory": f"{2 + i % 6}G",
                "syncthing": i % 3 == 0,
                "state": "stopped" if i % 7 == 0 else "running",
                "created": "2026-11-20T09:30:00Z",
            }
            for i in range(count)
        ],
    }


def measure(size: int, base: Path) -> dict[str, float]:
    users = USERS_FOR.get(size, max(5, size // 5))
    case = base / f"n{size}"
    case.mkdir()
    (case / "users.nix").write_text(users_nix(users, size))
    records = containers_json(size, users)
    files = Files()
    runs = 3 if size <= 1000 else 2
    users_raw: Any = None

    def evaluate() -> None:
        nonlocal users_raw
        users_raw = load.read_users(load.Source.of(case / "users.nix"))

    results = {"users": float(users), "eval": best(runs, evaluate)}

    def generate() -> generated_tree.Contents:
        return render.render(pipeline.validated(users_raw, records, files))

    results["generate"] = best(runs, generate)
    tree = generate()

    attempt = iter(range(runs))

    def first_write() -> None:
        generated_tree.write_tree(case / f"first-{next(attempt)}", tree)

    results["write"] = best(runs, first_write)
    changed = json.loads(json.dumps(records))
    out = case / "generated"
    generated_tree.write_tree(out, tree)
    flip = [0]

    def regenerate() -> None:
        flip[0] ^= 1
        changed["containers"][size // 2]["memory"] = "9G" if flip[0] else "2G"
        generated_tree.write_tree(out, render.render(pipeline.validated(users_raw, changed, files)))

    results["regen"] = best(runs, regenerate)
    changed["containers"][size // 2]["memory"] = "11G"

    def plan() -> None:
        state = pipeline.validated(users_raw, changed, files)
        planning.compute(planning.read_old(out), state, render.render(state))

    results["plan"] = best(runs, plan)
    return results


def help_time() -> float:
    console = Path(sys.executable).parent / "devbox-ctl"
    times = []
    for _ in range(15):
        start = time.perf_counter()
        subprocess.run([str(console), "--help"], capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dir", type=Path, default=None, help="where to write (default: a temporary directory)"
    )
    parser.add_argument("--sizes", default="10,100,1000,10000")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    base = Path(tempfile.mkdtemp(prefix="devbox-bench-", dir=args.dir))
    print(f"devbox generator benchmark, Python {sys.version.split()[0]}, writing under {base}")
    print(
        f"{'containers':>10} {'users':>6} {'eval':>8} {'generate':>9} {'per ctr':>8} "
        f"{'ratio':>6} {'write':>8} {'regen':>8} {'plan':>8}"
    )
    previous = None
    try:
        for size in sizes:
            r = measure(size, base)
            ratio = f"{r['generate'] / previous:6.1f}" if previous else f"{'':>6}"
            previous = r["generate"]
            print(
                f"{size:>10} {int(r['users']):>6} {r['eval']:>7.3f}s {r['generate']:>8.3f}s "
                f"{r['generate'] / size * 1e6:>6.0f}µs {ratio} {r['write']:>7.3f}s "
                f"{r['regen']:>7.3f}s {r['plan']:>7.3f}s"
            )
    finally:
        shutil.rmtree(base)
    print(f"devbox-ctl --help: {help_time() * 1000:.0f} ms (median of 15)")


if __name__ == "__main__":
    main()
