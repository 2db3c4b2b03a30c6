"""The host test: devbox on a real init system, in a Debian 13 virtual machine under QEMU.

    python3 tests/system/run.py [--out DIR] [--bench] [--keep]

1. build-base.sh builds the guest (debootstrap trixie, cached outside the repository by the
   hash of its package list and build scripts) or reuses it;
2. a test disk is made with what changes with the code: the devbox source, the image's real
   entrypoint and nix.conf, the module's load-image script, the stand-ins, the scenario and
   its config;
3. the guest boots from a qcow2 overlay of the cached image (the cache stays clean) and runs
   the scenario's boot 1 (guest/scenario.py), then powers off; a reboot is a second boot of
   the same disk (boot 2), on an overlay of boot 1's. A boot whose guest kernel panicked
   (TCG, the emulator, has panicked a guest on interrupt once in about forty runs) is run once
   more from the disks as they were before it; the summary says so (`retried`), and a second
   panic fails the test;
4. the results come back from the test disk with debugfs: one JSON per boot, and the guest's
   journal, which is printed for a failed step.

Prints progress with timestamps and, last, one JSON document: ok, the steps of every boot,
timings, findings and how long each phase took. Exit 0 when every step passed, 1 when one
failed, 2 when the VM could not be built or booted. Needs root (debootstrap, chroot),
qemu-system-x86_64, qemu-img, debootstrap and e2fsprogs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
BOOT_TIMEOUT = {1: 45 * 60, 2: 25 * 60}
TOOLS = ("qemu-system-x86_64", "qemu-img", "debootstrap", "mkfs.ext4", "debugfs")


def say(message: str) -> None:
    print(f"{datetime.now(UTC):%H:%M:%S} system-test: {message}", file=sys.stderr, flush=True)


def missing_tools() -> list[str]:
    """What keeps the host test from running here (empty: it can run)."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if os.geteuid() != 0:
        missing.append("root (debootstrap and chroot)")
    return missing


def load_image_script() -> str:
    """The module's image loader: its own file, or (until that exists) the module's inline text.

    nixos/scripts/load-image.sh is the module's script file (args: ARCHIVE REFERENCE, run as
    the owner with HOME and XDG_RUNTIME_DIR set). While the module still has the script inline
    in orchestrator.nix (loadImage's `text`), the text is taken from there, so the test never
    runs a copy that could drift from the module.
    """
    script = REPO / "nixos" / "scripts" / "load-image.sh"
    if script.is_file():
        return script.read_text()
    module = (REPO / "nixos" / "orchestrator.nix").read_text()
    match = re.search(
        r"loadImage = pkgs\.writeShellApplication \{.*?text = ''\n(.*?)\n\s*'';", module, re.DOTALL
    )
    if match is None:
        raise SystemExit("orchestrator.nix: no loadImage text and no nixos/scripts/load-image.sh")
    body = match.group(1).replace("''${", "${").replace("'''", "''")
    lines = body.splitlines()
    indent = min(len(line) - len(line.lstrip()) for line in lines if line.strip())
    return (
        "# Taken at test time from nixos/orchestrator.nix (loadImage's text).\n"
        + "\n".join(line[indent:] for line in lines)
        + "\n"
    )


def stage(work: Path, bench: bool) -> Path:
    """The test disk: everything that changes with the code, and room for the results."""
    root = work / "stage"
    shutil.copytree(HERE / "guest", root / "guest")
    shutil.copytree(
        REPO / "generator" / "src" / "devbox",
        root / "src" / "devbox",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    files = root / "files"
    files.mkdir()
    for name in ("entrypoint.sh", "nix.conf"):
        shutil.copy(REPO / "containers" / "devcontainer" / name, files / name)
    shutil.copytree(HERE / "guest" / "image", files / "image")
    for name in ("op.py", "common.py"):
        shutil.copy(REPO / "tests" / "stand_ins" / name, files / name)
    (files / "load-image").mkdir()
    (files / "load-image" / "load-image.sh").write_text(load_image_script())
    shutil.copytree(HERE / "config", root / "config")
    (root / "results").mkdir()
    if bench:
        (root / "bench").write_text("")
    disk = work / "test.img"
    # mkfs.ext4 says "Creating regular file …" on stdout even with -q: stdout is the summary's.
    subprocess.run(
        ["mkfs.ext4", "-q", "-F", "-L", "devbox-test", "-d", str(root), str(disk), "1G"],
        check=True,
        stdout=sys.stderr,
    )
    return disk


def read_back(disk: Path, name: str, into: Path) -> Path | None:
    """A file of the test disk's results/ directory, copied out with debugfs."""
    target = into / name
    subprocess.run(
        ["debugfs", "-R", f"dump /results/{name} {target}", str(disk)],
        capture_output=True,
        check=False,
    )
    return target if target.exists() and target.stat().st_size > 0 else None


PANIC = "Kernel panic - not syncing"


def overlay_on(backing: Path, fmt: str, overlay: Path) -> None:
    """A qcow2 overlay whose writes leave `backing` as it was."""
    overlay.unlink(missing_ok=True)
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-F", fmt, "-b", str(backing), str(overlay)],
        check=True,
        stdout=sys.stderr,
    )


def boot(cache: Path, overlay: Path, disk: Path, number: int, log: Path) -> tuple[float, bool]:
    """One boot of the guest until it powers off: its duration, and whether its kernel panicked."""
    argv = [
        "qemu-system-x86_64",
        "-accel",
        "tcg",
        "-cpu",
        "max",
        "-m",
        "3584",
        "-smp",
        "2",
        "-nographic",
        "-no-reboot",
        "-monitor",
        "none",
        "-kernel",
        str(cache / "vmlinuz"),
        "-initrd",
        str(cache / "initrd.img"),
        "-drive",
        f"file={overlay},format=qcow2,if=virtio",
        "-drive",
        f"file={disk},format=raw,if=virtio",
        "-nic",
        "user,model=virtio-net-pci",
        "-append",
        "console=ttyS0 root=/dev/vda rw quiet systemd.show_status=0 panic=1",
    ]
    say(f"boot {number}: starting QEMU (TCG, 2 CPUs, 3.5 GiB)")
    start = time.monotonic()
    panicked = False
    with (
        log.open("a") as console,
        subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        ) as qemu,
    ):
        assert qemu.stdout is not None

        def pump() -> None:
            assert qemu.stdout is not None
            nonlocal panicked
            for raw in qemu.stdout:
                line = raw.decode("utf-8", "replace").rstrip()
                console.write(line + "\n")
                panicked = panicked or PANIC in line
                if "devbox-test" in line or "activate:" in line or "FINDING" in line:
                    say(f"boot {number} | {line.strip()[-300:]}")

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        try:
            qemu.wait(timeout=BOOT_TIMEOUT[number])
        except subprocess.TimeoutExpired:
            say(f"boot {number}: no power-off within {BOOT_TIMEOUT[number]} s; stopping QEMU")
            qemu.kill()
            qemu.wait()
        reader.join(timeout=10)
    seconds = time.monotonic() - start
    say(f"boot {number}: QEMU exited after {seconds:.0f} s{' (the kernel panicked)' * panicked}")
    return seconds, panicked


def failed_steps(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for step in result.get("steps", []) if not step.get("ok")]


def report(number: int, result: dict[str, Any], out: Path) -> None:
    """One boot's steps, and for a failure its diagnostics and the end of its journal."""
    for step in result["steps"]:
        state = "ok    " if step.get("ok") else "FAILED"
        say(f"boot {number}: {state} {step['seconds']:7.1f}s  {step['name']}")
    for step in failed_steps(result):
        say(f"  {step['name']}: {step.get('error')}")
    for label, text in result.get("diagnostics", {}).items():
        say(f"diagnostics, {label}:\n{text}")
    journal = out / f"journal-boot{number}.txt"
    if failed_steps(result) and journal.exists():
        say(f"boot {number}: the guest's journal (last 150 lines; all in {out}):")
        lines = journal.read_text(errors="replace").splitlines()
        print("\n".join(lines[-150:]), file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, help="Directory for results.json, the journals and the console log."
    )
    parser.add_argument(
        "--bench", action="store_true", help="Also measure the timings beside their baselines."
    )
    parser.add_argument("--keep", action="store_true", help="Keep the overlay and the test disk.")
    args = parser.parse_args()
    missing = missing_tools()
    if missing:
        print(json.dumps({"ok": False, "error": f"cannot run: missing {', '.join(missing)}"}))
        return 2
    out = args.out or Path(tempfile.mkdtemp(prefix="devbox-system-"))
    out.mkdir(parents=True, exist_ok=True)
    phases: dict[str, float] = {}
    summary: dict[str, Any] = {"ok": False, "out": str(out), "phases": phases, "boots": []}

    start = time.monotonic()
    built = subprocess.run(
        ["bash", str(HERE / "build-base.sh")], stdout=subprocess.PIPE, text=True, check=False
    )
    phases["base image (build or cache)"] = round(time.monotonic() - start, 1)
    if built.returncode != 0:
        summary["error"] = "the guest image could not be built (see above)"
        print(json.dumps(summary, indent=2))
        return 2
    cache = Path(built.stdout.strip().splitlines()[-1])
    summary["cache"] = str(cache)

    work = Path(tempfile.mkdtemp(prefix="devbox-vm-", dir=os.environ.get("TMPDIR")))
    try:
        start = time.monotonic()
        disk = stage(work, args.bench)
        phases["test disk and overlay"] = round(time.monotonic() - start, 1)
        log = out / "console.log"
        backing, fmt = cache / "base.img", "raw"
        summary["retried"] = []
        for number in (1, 2):
            overlay = work / f"boot{number}.qcow2"
            overlay_on(backing, fmt, overlay)
            before = work / f"test-before-boot{number}.img"
            subprocess.run(["cp", "--sparse=always", str(disk), str(before)], check=True)
            seconds, panicked = boot(cache, overlay, disk, number, log)
            if panicked and read_back(disk, f"boot{number}.json", out) is None:
                # The guest's kernel died, not a step: the same boot again, from the same disks.
                say(f"boot {number}: the guest's kernel panicked; booting it once more")
                summary["retried"].append(number)
                overlay_on(backing, fmt, overlay)
                subprocess.run(["cp", "--sparse=always", str(before), str(disk)], check=True)
                more, _ = boot(cache, overlay, disk, number, log)
                seconds += more
            phases[f"boot {number}"] = round(seconds, 1)
            backing, fmt = overlay, "qcow2"
            result_file = read_back(disk, f"boot{number}.json", out)
            for name in (
                f"journal-boot{number}.txt",
                f"journal-boot{number}-alice.txt",
                f"journal-boot{number}-bob.txt",
            ):
                read_back(disk, name, out)
            if result_file is None:
                summary["boots"].append(
                    {
                        "boot": number,
                        "ok": False,
                        "error": "the guest left no result (see console.log)",
                    }
                )
                say(f"boot {number}: no result; last console lines:")
                print("\n".join(log.read_text().splitlines()[-60:]), file=sys.stderr)
                break
            result = json.loads(result_file.read_text())
            summary["boots"].append(result)
            report(number, result, out)
            if result.get("next") != "reboot":
                break
        boots = summary["boots"]
        summary["ok"] = len(boots) == 2 and all(b.get("ok") for b in boots)
        summary["timings"] = {k: v for b in boots for k, v in b.get("timings", {}).items()}
        summary["findings"] = [f for b in boots for f in b.get("findings", [])]
    finally:
        if args.keep:
            say(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    (out / "results.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: v for k, v in summary.items() if k != "boots"}, indent=2))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
