"""Benchmark of devbox on a real host: prints numbers, asserts nothing.

Runs the host test (tests/system/run.py) with --bench: a Debian 13 guest under QEMU (TCG, so
about ten times slower than the machine) with systemd, lingering user managers, rootless
podman with Quadlet and sudo. From inside the guest it measures:

- create-to-joined: `devbox-ctl create` by a user through sudo, until the container is on the
  (stand-in) tailnet; baseline: a bare `podman run -d` of the same image, volume and secret,
  until its tailscaled reports Running;
- stop and start: `devbox-ctl stop`/`start`, until the container's unit is inactive/active
  (devbox acts on systemd first) and until the command ends (the record and its commit; no
  rebuild); baselines: the owner's own `systemctl --user stop`/`start` of the same unit;
- apply after a one-container change: the whole switch (activation, reload, the restart of
  that container); baseline: the bare podman run of one container;
- boot-to-all-running: kernel start until the last declared container's unit is active;
  baseline: the guest's own boot to multi-user.target;
- list: `devbox-ctl list --all` by an admin (through sudo).

Then, for create, stop and start, where the verb's time went (`devbox-ctl --timings`,
docs/cli.md): the caller's devbox-ctl, sudo and the login shell, root's start and imports,
each program root ran, the config lock, devbox's own work.

Each figure is printed beside its baseline, as a ratio: the ratio takes the TCG factor out.

Run (as root): .venv/bin/python bench/bench_host.py [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PAIRS = [
    ("create to joined", "create_to_joined", "baseline.podman_run_to_joined"),
    ("stop: until the container stopped", "stop.until_stopped", "baseline.systemctl_stop"),
    ("stop: until the command returned", "stop", "baseline.systemctl_stop"),
    ("start: until the container runs", "start.until_running", "baseline.systemctl_start"),
    ("start: until the command returned", "start", "baseline.systemctl_start"),
    (
        "apply after a one-container change",
        "apply_after_one_container_change",
        "baseline.podman_run_to_joined",
    ),
    ("boot to all running", "boot_to_all_running", "baseline.boot_to_multi_user"),
    ("list --all", "list", None),
]


def print_stages(timings: dict[str, float]) -> None:
    """Each verb's `--timings` stages, as the host test recorded them (`<verb>.<who>.<what>`)."""
    for verb in ("create", "stop", "start"):
        stages = {
            key.removeprefix(f"{verb}."): value
            for key, value in timings.items()
            if key.startswith(f"{verb}.")
            and key.count(".") >= 1
            and key.split(".")[1] in ("caller", "root", "sudo_and_login")
        }
        if not stages:
            continue
        print(f"\n{verb}: where the time went")
        for name, seconds in sorted(stages.items(), key=lambda item: -item[1]):
            print(f"  {name:<58} {seconds:8.2f}s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="Where the host test keeps its results.")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="devbox-bench-host-"))
    subprocess.run(
        [sys.executable, str(REPO / "tests" / "system" / "run.py"), "--bench", "--out", str(out)],
        stdout=subprocess.DEVNULL,
        check=False,
    )
    results = out / "results.json"
    if not results.exists():
        print(f"the host test left no results in {out}", file=sys.stderr)
        return 1
    summary = json.loads(results.read_text())
    timings = summary.get("timings", {})
    print(f"{'measure':<40} {'devbox':>9} {'baseline':>9} {'ratio':>6}")
    for label, key, baseline in PAIRS:
        value = timings.get(key)
        base = timings.get(baseline) if baseline else None
        shown = f"{value:8.1f}s" if value is not None else "      n/a"
        shown_base = f"{base:8.1f}s" if base is not None else "       —"
        ratio = f"{value / base:6.2f}" if value is not None and base else "     —"
        print(f"{label:<40} {shown:>9} {shown_base:>9} {ratio:>6}")
    print_stages(timings)
    print(f"\nphases: {json.dumps(summary.get('phases', {}))}")
    print(f"host test ok: {summary.get('ok')} (results in {out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
