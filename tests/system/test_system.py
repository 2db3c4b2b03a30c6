"""The host test in a Debian 13 virtual machine (tests/system/run.py): a real systemd, real
user managers, rootless podman with Quadlet, real sudo. Marked `system`; it skips only when
QEMU cannot run here, and fails instead under DEVBOX_REQUIRE_TOOLS=1 (scripts/test.sh, CI)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run  # noqa: E402 - the runner lives beside this test


@pytest.mark.system
def test_the_host_scenario_in_a_virtual_machine(tmp_path: Path) -> None:
    missing = run.missing_tools()
    if missing:
        message = f"the host test cannot run QEMU here: missing {', '.join(missing)}"
        if os.environ.get("DEVBOX_REQUIRE_TOOLS") == "1":
            pytest.fail(message + "; DEVBOX_REQUIRE_TOOLS=1 makes this a failure")
        pytest.skip(message)
    out = tmp_path / "system"
    # Progress goes to stderr as it happens (pytest -s shows it); the summary is the stdout.
    completed = subprocess.run(
        [sys.executable, str(HERE / "run.py"), "--out", str(out)],
        stdout=subprocess.PIPE,
        text=True,
        timeout=80 * 60,
        check=False,
    )
    results = out / "results.json"
    # The whole summary, boots included, is in results.json; stdout has it without the boots.
    summary = json.loads(results.read_text() if results.exists() else completed.stdout or "{}")
    boots = summary.get("boots", [])
    failed = [
        f"boot {boot.get('boot')}: {step['name']}: {step.get('error')}"
        for boot in boots
        for step in boot.get("steps", [])
        if not step.get("ok")
    ]
    message = f"the host test failed (results, journals and console log in {out}):\n" + "\n".join(
        failed or [summary.get("error", "no step result")]
    )
    assert summary.get("ok"), message
    assert completed.returncode == 0, message
