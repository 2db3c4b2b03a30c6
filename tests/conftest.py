"""Fixtures shared by the whole suite; the helpers behind them are in support.py."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from support import USERS_NIX, StandIns, container, find_quadlet, require_tool, write_inputs


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        help="rewrite the expected outputs of the golden tests from the current generator",
    )


@pytest.fixture(scope="session")
def quadlet() -> str:
    return require_tool("podman's Quadlet generator (podman >= 4.6)", find_quadlet())


@pytest.fixture(scope="session")
def systemd_analyze() -> str:
    return require_tool("systemd-analyze", shutil.which("systemd-analyze"))


@pytest.fixture(scope="session")
def nix() -> str:
    return require_tool("Nix (nix-instantiate)", shutil.which("nix-instantiate"))


@pytest.fixture
def config(tmp_path: Path, nix: str) -> Path:
    """A config directory with two users and two containers (needs Nix to be read)."""
    return write_inputs(
        tmp_path / "config",
        USERS_NIX,
        {"version": 1, "containers": [container("web"), container("api", "bob", memory="2G")]},
    )


@pytest.fixture
def stand_ins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StandIns:
    """Stand-in executables first on PATH (see support.StandIns)."""
    stand_ins = StandIns(tmp_path / "stand-ins")
    monkeypatch.setenv("PATH", f"{stand_ins.bin}:{os.environ['PATH']}")
    return stand_ins


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, quadlet: str, nix: str):
    """A whole devbox host (tests/host.py): real git, Nix, podman and Quadlet; stand-ins for
    the user's systemd manager, nixos-rebuild, 1Password and Tailscale."""
    from host import make_host

    require_tool("podman", shutil.which("podman"))
    require_tool(
        "busybox (busybox-static)",
        shutil.which("busybox") or ("/bin/busybox" if Path("/bin/busybox").exists() else None),
    )
    made = make_host(tmp_path, monkeypatch, quadlet)
    yield made
    made.podman("rm", "--all", "--force", "--time", "0")


@pytest.fixture
def fleet_of(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, quadlet: str, nix: str):
    """A simulated fleet (tests/fleet.py) of the hosts named: `fleet_of(("a", "b"))`.

    `fleet_of(("alpha", "beta"), control="alpha")`: alpha is the control host and a host of
    the fleet; by default the control host is a host of its own, outside the fleet.

    Real podman, Quadlet, git, Nix and OpenSSH (an sshd per host) on every host; stand-ins
    for colmena and what tests/host.py stands in for. Every sshd is stopped when the test
    ends, however it ended.
    """
    from fleet import make_fleet, remove_all
    from openssh import require_openssh

    require_tool("podman", shutil.which("podman"))
    require_tool(
        "busybox (busybox-static)",
        shutil.which("busybox") or ("/bin/busybox" if Path("/bin/busybox").exists() else None),
    )
    require_openssh()
    made = []

    def build(names: tuple[str, ...] = ("alpha", "beta", "gamma"), control: str = "control"):
        fleet = make_fleet(tmp_path / "fleet", monkeypatch, quadlet, names, control)
        made.append(fleet)
        return fleet

    yield build
    try:
        for fleet in made:
            remove_all(fleet)
    finally:
        for fleet in made:
            fleet.close()


@pytest.fixture
def fleet(fleet_of):
    """A simulated fleet of three members, alpha, beta and gamma (tests/fleet.py)."""
    return fleet_of()
