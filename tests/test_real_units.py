"""Every unit the golden cases and examples produce passes the real tools.

Quadlet (podman's own generator) must turn each users/<UID>/ directory into services, in the
layout the NixOS module installs; systemd-analyze verify must accept those services and the
cleanup service and timer.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from support import REPO, quadlet_dryrun, quadlet_generate, systemd_verify

TREES = sorted(
    [p / "expected" / "generated" for p in (REPO / "tests" / "golden").iterdir()]
    + [p / "generated" for p in (REPO / "examples").iterdir()],
)
TREES = [t for t in TREES if (t / "manifest.json").is_file()]
# A fleet's tree is one slice per host, each installed as a single host's tree is.
TREES = sorted(
    slice_dir
    for tree in TREES
    for slice_dir in (sorted((tree / "hosts").iterdir()) if (tree / "hosts").is_dir() else [tree])
)


def test_there_are_trees_to_check() -> None:
    assert len(TREES) >= 4
    assert any(t.parent.name == "hosts" for t in TREES), "a fleet's slices are checked too"


@pytest.mark.parametrize("tree", TREES, ids=[str(t.relative_to(REPO)) for t in TREES])
def test_quadlet_and_systemd_accept_the_tree(
    tree: Path, tmp_path: Path, quadlet: str, systemd_analyze: str
) -> None:
    services: list[Path] = []
    for uid_dir in sorted((tree / "users").glob("*")):
        output = quadlet_dryrun(quadlet, uid_dir)
        containers = sorted(uid_dir.glob("*.container"))
        for unit in containers:
            service = f"---{unit.read_text().split('ServiceName=')[1].split()[0]}.service---"
            assert service in output
        services += quadlet_generate(quadlet, uid_dir, tmp_path / "quadlet" / uid_dir.name)
    system = sorted((tree / "system").glob("*"))
    assert [p.name for p in system] == ["devbox-cleanup.service", "devbox-cleanup.timer"]
    systemd_verify(systemd_analyze, system + services, tmp_path / "root")


def test_the_checks_can_fail(tmp_path: Path, quadlet: str, systemd_analyze: str) -> None:
    """A broken unit is caught: the checks above are not vacuous."""
    units = tmp_path / "units"
    units.mkdir()
    (units / "devbox-x.container").write_text("[Container]\nImage=localhost/x\nMemory=4G\n")
    with pytest.raises(AssertionError, match="unsupported key 'Memory'"):
        quadlet_dryrun(quadlet, units)
    timer = tmp_path / "devbox-cleanup.timer"
    timer.write_text("[Timer]\nOnCalendar=dayly\n\n[Install]\nWantedBy=timers.target\n")
    with pytest.raises(AssertionError, match="calendar"):
        systemd_verify(systemd_analyze, [timer], tmp_path / "root")
