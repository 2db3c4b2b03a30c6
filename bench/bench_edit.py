"""Benchmark of one declaration change (declare.edit): prints numbers, asserts nothing.

For 100, 1,000 and 10,000 containers it times, as the best of three runs, one change the way
devbox-ctl makes it (a stop: one record's state), under the config lock: read containers.json,
validate (with the one Nix evaluation of users.nix), render the whole tree, write
containers.json and the tree, commit. Beside it, the part of that time spent keeping the old
tree in memory so a failed write or commit can put it back (`generated_tree.read_tree`).

Run: .venv/bin/python bench/bench_edit.py [--dir DIR] [--sizes 100,1000,10000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

from bench_generate import USERS_FOR, containers_json, users_nix

from devbox.declare import edit, generated_tree, pipeline, render


def _repository(root: Path, count: int) -> pipeline.Paths:
    users = USERS_FOR.get(count, max(count // 5, 1))
    (root / "devbox").mkdir(parents=True)
    paths = pipeline.Paths(
        users=root / "devbox/users.nix",
        containers=root / "devbox/containers.json",
        out=root / "devbox/generated",
    )
    paths.users.write_text(users_nix(users, count))
    paths.containers.write_text(json.dumps(containers_json(count, users), indent=2))
    generated_tree.write_tree(paths.out, render.render(pipeline.desired(paths)))
    git = ["git", "-C", str(root), "-c", "user.name=bench", "-c", "user.email=bench@host"]
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "bench"], check=True)
    return paths


def _best(runs: list[float]) -> str:
    return f"{min(runs):8.3f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--sizes", default="100,1000,10000")
    args = parser.parse_args()
    print(f"{'containers':>10}  {'edit':>10}  {'keep old tree':>13}")
    for count in (int(size) for size in args.sizes.split(",")):
        with tempfile.TemporaryDirectory(dir=args.dir) as scratch:
            root = Path(scratch)
            paths = _repository(root, count)
            edits, keeps = [], []
            for run in range(3):
                state = "stopped" if run % 2 == 0 else "running"

                def change(records: edit.Records, state: str = state) -> str:
                    records[0]["state"] = state
                    return f"bench: {state}"

                started = time.perf_counter()
                edit.edit(paths, root, change, who="bench")
                edits.append(time.perf_counter() - started)
                started = time.perf_counter()
                generated_tree.read_tree(paths.out)
                keeps.append(time.perf_counter() - started)
            print(f"{count:>10}  {_best(edits):>10}  {_best(keeps):>13}")


if __name__ == "__main__":
    main()
