"""Where the dev-container image is stored: three designs measured in one boot of the guest.

    sudo python3 tests/system/bench_image.py [--out DIR] [--reps N] [--read-reps N] [--keep]

Issue 22, part 2. Boots the host test's Debian 13 guest (tests/system/build-base.sh's cached
base, booted by run.py's own functions) with a test disk of its own, whose guest/boot.sh is
guest/image_designs/boot.sh: it runs guest/image_designs.py, which measures, as real rootless
users in their systemd managers,

- today: the image loaded into each user's storage by the module's loader;
- nixstore: the image's files in /nix/store once, a minimal image per user linking into it;
- addstore: root's read-only additional image store (force_mask=shared, fuse-overlayfs),

and writes one JSON document. This script prints a table (stderr, and DIR/table.md) and one
JSON document on stdout (also DIR/summary.json; the guest's own in DIR/image-designs.json).
tests/system/image-designs.md holds a run's numbers and what they mean.

The guest needs Debian 13's nix-setup-systemd for a real nix-daemon: when the cached base does
not have it, the .deb (9 KB) goes on the test disk from the guest build's package cache, or is
downloaded once into the VM cache with apt-get from the trixie suite of this machine's mirror.
Exit 0 when every design was measured, 1 when one failed (its failure is in the JSON), 2 when
the guest could not be built or booted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run  # noqa: E402  (tests/system/run.py: the host test's build, boot and read-back)

DESIGNS = ("today", "nixstore", "addstore")
MIB = 1 << 20


def nix_setup_deb(cache_root: Path) -> Path | None:
    """Debian 13's nix-setup-systemd .deb: from the guest build's cache, or downloaded once."""
    for folder in (cache_root / "debs", cache_root / "extra-debs"):
        found = sorted(folder.glob("nix-setup-systemd_*.deb"))
        if found:
            return found[-1]
    extra = cache_root / "extra-debs"
    lists = extra / "lists"
    (lists / "partial").mkdir(parents=True, exist_ok=True)
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    uri = ""
    if sources.exists():
        uri = next(
            (
                line.split()[1]
                for line in sources.read_text().splitlines()
                if line.startswith("URIs:")
            ),
            "",
        )
    if not uri and Path("/etc/apt/sources.list").exists():
        uri = next(
            (
                line.split()[1]
                for line in Path("/etc/apt/sources.list").read_text().splitlines()
                if line.startswith("deb ")
            ),
            "",
        )
    if not uri:
        return None
    (extra / "sources.list").write_text(f"deb {uri} trixie main\n")
    options = [
        "-o",
        f"Dir::Etc::sourcelist={extra / 'sources.list'}",
        "-o",
        "Dir::Etc::sourceparts=-",
        "-o",
        f"Dir::State::Lists={lists}",
    ]
    subprocess.run(["apt-get", *options, "update"], check=False, stdout=sys.stderr)
    subprocess.run(
        ["apt-get", *options, "download", "nix-setup-systemd"],
        check=False,
        cwd=extra,
        stdout=sys.stderr,
    )
    found = sorted(extra.glob("nix-setup-systemd_*.deb"))
    return found[-1] if found else None


def stage(work: Path, deb: Path | None, reps: int, read_reps: int) -> Path:
    """run.py's test disk (the guest scripts, devbox, the image's files), with this benchmark's
    boot.sh in place of guest/boot.sh, its settings and the nix-setup-systemd .deb."""
    disk = run.stage(work, bench=False)
    extra = work / "bench-extra"
    extra.mkdir()
    config = extra / "bench-config.json"
    config.write_text(json.dumps({"reps": reps, "read_reps": read_reps}))
    commands = [
        "rm /guest/boot.sh",
        f"write {HERE / 'guest' / 'image_designs' / 'boot.sh'} /guest/boot.sh",
        f"write {config} /bench-config.json",
    ]
    if deb is not None:
        commands += ["mkdir /debs", f"write {deb} /debs/{deb.name}"]
    script = extra / "debugfs.cmds"
    script.write_text("\n".join(commands) + "\n")
    subprocess.run(["debugfs", "-w", "-f", str(script), str(disk)], check=True, capture_output=True)
    listed = subprocess.run(
        ["debugfs", "-R", "cat /guest/boot.sh", str(disk)],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    if "image_designs.py" not in listed:
        raise SystemExit("the test disk's guest/boot.sh is not this benchmark's")
    return disk


def mean(values: list[float]) -> float | None:
    return round(statistics.mean(values), 2) if values else None


def ratio(value: float | None, base: float | None) -> float | None:
    if value is None or not base:
        return None
    return round(value / base, 2)


def summarise(result: dict[str, Any]) -> dict[str, Any]:
    """The numbers the choice rests on, per design, and their ratios to today's."""
    designs = result.get("designs", {})
    rows: dict[str, dict[str, Any]] = {}
    for name in DESIGNS:
        d = designs.get(name, {})
        users = d.get("users", [])
        step = d.get("root_step", {})
        row: dict[str, Any] = {"ok": d.get("ok", False), "error": d.get("error")}
        row["reference"] = d.get("reference")
        if name == "nixstore" and step:
            row["one_time_root_seconds"] = round(
                step.get("nix_store_add_seconds", 0) + step.get("minimal_image_seconds", 0), 1
            )
        elif name == "addstore" and step:
            row["one_time_root_seconds"] = step.get("load_seconds")
        else:
            row["one_time_root_seconds"] = 0.0
        loads = [u["load_seconds"] for u in users if "load_seconds" in u]
        row["load_seconds_each"] = loads
        row["load_first_user"] = loads[0] if loads else None
        row["load_later_users_mean"] = mean(loads[1:])
        row["run_seconds_each"] = [u.get("run_seconds") for u in users]
        first = users[0] if users else {}
        row["to_running_first_user"] = first.get("to_running_seconds")
        row["to_ready_first_user"] = first.get("to_ready_seconds")
        for count in (1, 4):
            disk = d.get(f"disk_{count}")
            if not disk:
                continue
            row[f"disk_{count}_total_allocated"] = disk["total_allocated"]
            row[f"disk_{count}_total_apparent"] = disk["total_apparent"]
            row[f"disk_{count}_users_allocated"] = sum(
                u["allocated"] for u in disk["users"].values()
            )
            row[f"disk_{count}_shared"] = disk["shared"]
        if "disk_1_total_allocated" in row and "disk_4_total_allocated" in row:
            row["disk_each_added_user_allocated"] = round(
                (row["disk_4_total_allocated"] - row["disk_1_total_allocated"]) / 3
            )
            row["disk_each_added_user_apparent"] = round(
                (row["disk_4_total_apparent"] - row["disk_1_total_apparent"]) / 3
            )
        start = d.get("start", {})
        row["start_median"] = start.get("median")
        row["start_to_record_median"] = start.get("ready_median")
        row["reads"] = {
            label: {
                "median": r.get("median"),
                "first": r.get("first"),
                "exec_median": r.get("exec_median"),
                "output": (r.get("outputs") or [None])[0],
                "error": r.get("error"),
            }
            for label, r in d.get("reads", {}).items()
        }
        row["ownership_in_container"] = d.get("ownership_in_container")
        for key in ("by_name", "modes_before_workaround", "workaround", "by_id"):
            if key in d:
                row[key] = d[key]
        rows[name] = row
    base = rows.get("today", {})
    for name in ("nixstore", "addstore"):
        row = rows.get(name)
        if not row:
            continue
        row["ratios"] = {
            "load_first_user": ratio(row.get("load_first_user"), base.get("load_first_user")),
            "disk_4_total_allocated": ratio(
                row.get("disk_4_total_allocated"), base.get("disk_4_total_allocated")
            ),
            "disk_each_added_user_allocated": ratio(
                row.get("disk_each_added_user_allocated"),
                base.get("disk_each_added_user_allocated"),
            ),
            "start": ratio(row.get("start_median"), base.get("start_median")),
            "start_to_record": ratio(
                row.get("start_to_record_median"), base.get("start_to_record_median")
            ),
            "reads": {
                label: ratio(r["median"], base.get("reads", {}).get(label, {}).get("median"))
                for label, r in row["reads"].items()
            },
        }
    return rows


def table(rows: dict[str, dict[str, Any]]) -> str:
    """A Markdown table: one line per measure, a column per design and the ratios to today."""

    def cell(value: Any, unit: str = "") -> str:
        if value is None:
            return "–"
        if unit == "MiB":
            return f"{value / MIB:.1f}"
        if isinstance(value, float):
            return f"{value:.2f}"
        return str(value)

    def line(label: str, key: Any, unit: str = "") -> str:
        values = [key(rows.get(n, {})) for n in DESIGNS]
        ratios = [ratio(values[1], values[0]), ratio(values[2], values[0])]
        return (
            f"| {label} | "
            + " | ".join([cell(v, unit) for v in values] + [cell(r) for r in ratios])
            + " |"
        )

    out = [
        "| measure | today | nixstore (a) | addstore (b) | (a)/today | (b)/today |",
        "|---|---:|---:|---:|---:|---:|",
        line("one-time root step per image (s)", lambda r: r.get("one_time_root_seconds")),
        line("load, 1st user (s)", lambda r: r.get("load_first_user")),
        line("load, users 2–4, mean (s)", lambda r: r.get("load_later_users_mean")),
        line(
            "to running, 1st user: load + podman run (s)", lambda r: r.get("to_running_first_user")
        ),
        line("to the monitor's first record, 1st user (s)", lambda r: r.get("to_ready_first_user")),
        line("disk, 1 user, all (MiB allocated)", lambda r: r.get("disk_1_total_allocated"), "MiB"),
        line(
            "disk, 4 users, all (MiB allocated)", lambda r: r.get("disk_4_total_allocated"), "MiB"
        ),
        line("disk, 4 users, all (MiB apparent)", lambda r: r.get("disk_4_total_apparent"), "MiB"),
        line(
            "disk, 4 users' storages only (MiB allocated)",
            lambda r: r.get("disk_4_users_allocated"),
            "MiB",
        ),
        line(
            "disk, each added user (MiB allocated)",
            lambda r: r.get("disk_each_added_user_allocated"),
            "MiB",
        ),
        line("podman start, median (s)", lambda r: r.get("start_median")),
        line(
            "start to the monitor's record, median (s)", lambda r: r.get("start_to_record_median")
        ),
    ]
    labels = list(rows.get("today", {}).get("reads", {}))
    for label in labels:
        out.append(
            line(
                "`{}`, median (s)".format(label.replace("|", "\\|")),
                lambda r, lb=label: r.get("reads", {}).get(lb, {}).get("median"),
            )
        )
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="Directory for the results and the console log.")
    parser.add_argument("--reps", type=int, default=5, help="Repetitions of each start.")
    parser.add_argument(
        "--read-reps", type=int, default=3, help="Repetitions of each read (after a first one)."
    )
    parser.add_argument("--keep", action="store_true", help="Keep the overlay and the test disk.")
    args = parser.parse_args()
    missing = run.missing_tools()
    if missing:
        print(json.dumps({"ok": False, "error": f"cannot run: missing {', '.join(missing)}"}))
        return 2
    out = args.out or Path(tempfile.mkdtemp(prefix="devbox-image-designs-"))
    out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"ok": False, "out": str(out), "phases": {}}
    start = time.monotonic()
    built = subprocess.run(
        ["bash", str(HERE / "build-base.sh")], stdout=subprocess.PIPE, text=True, check=False
    )
    summary["phases"]["base image (build or cache)"] = round(time.monotonic() - start, 1)
    if built.returncode != 0:
        summary["error"] = "the guest image could not be built (see above)"
        print(json.dumps(summary, indent=2))
        return 2
    cache = Path(built.stdout.strip().splitlines()[-1])
    summary["cache"] = str(cache)
    deb = nix_setup_deb(cache.parent)
    summary["nix_setup_systemd_deb"] = deb.name if deb else None
    work = Path(tempfile.mkdtemp(prefix="devbox-image-vm-", dir=os.environ.get("TMPDIR")))
    try:
        disk = stage(work, deb, args.reps, args.read_reps)
        before = work / "test-before.img"
        subprocess.run(["cp", "--sparse=always", str(disk), str(before)], check=True)
        overlay = work / "boot.qcow2"
        run.overlay_on(cache / "base.img", "raw", overlay)
        log = out / "console.log"
        seconds, panicked = run.boot(cache, overlay, disk, 1, log)
        if panicked and run.read_back(disk, "image-designs.json", out) is None:
            run.say("the guest's kernel panicked; booting once more from the same disks")
            summary["retried"] = True
            run.overlay_on(cache / "base.img", "raw", overlay)
            subprocess.run(["cp", "--sparse=always", str(before), str(disk)], check=True)
            more, _ = run.boot(cache, overlay, disk, 1, log)
            seconds += more
        summary["phases"]["boot"] = round(seconds, 1)
        run.read_back(disk, "journal.txt", out)
        found = run.read_back(disk, "image-designs.json", out)
    finally:
        if args.keep:
            run.say(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if found is None:
        summary["error"] = "the guest left no result (see console.log)"
        print("\n".join(log.read_text().splitlines()[-60:]), file=sys.stderr)
        print(json.dumps(summary, indent=2))
        return 2
    result = json.loads(found.read_text())
    rows = summarise(result)
    summary.update(
        ok=bool(result.get("ok")),
        guest_seconds=result.get("guest_seconds"),
        guest_phases=result.get("phases"),
        environment=result.get("environment"),
        error=result.get("error"),
        native_overlay_probe=result.get("native_overlay_probe"),
        designs=rows,
    )
    text = table(rows)
    (out / "table.md").write_text(text + "\n")
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(text, file=sys.stderr)
    print(json.dumps(summary, indent=2))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
