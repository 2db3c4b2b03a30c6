"""Each unit that runs devbox-ctl finds on its PATH every program its code path runs.

The module evaluated for a single host, and for a fleet's control host and a member; each
unit's PATH read from the evaluation (its `path`, then what NixOS adds to every service),
devbox-privileged's from config.json's privilegedEnvironment. The programs each code path
runs are unit_programs.py's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from unit_programs import (
    NIXOS_SERVICE_DEFAULTS,
    cleanup_programs,
    privileged_programs,
    programs_of,
)

import fleet_fixture
from devbox.host.hostconfig import HostConfig
from test_orchestrator_module import EXAMPLE, evaluate

CONTROL = "services.devbox.fleet.control = true;"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, nix: str) -> Path:
    return fleet_fixture.fleet_tree(tmp_path_factory.mktemp("fleet"))


def evaluated(nix: str, fleet: Path, host: str) -> Any:
    if host == "single":
        return evaluate(nix, EXAMPLE)
    extra = CONTROL if host == "control" else ""
    return evaluate(
        nix,
        fleet,
        f'{{ services.devbox.hostName = "{"alpha" if host == "control" else "beta"}"; {extra} }}',
    )


def config_json(result: Any) -> HostConfig:
    """config.json as the module writes it, read as devbox-ctl reads it (defaults filled)."""
    return HostConfig.model_validate(json.loads(result["etc"]["devbox/config.json"]["text"]))


@pytest.mark.parametrize("host", ["single", "control", "member"])
def test_the_daily_cleanup_has_every_program_it_runs(nix: str, fleet: Path, host: str) -> None:
    result = evaluated(nix, fleet, host)
    assert result["failedAssertions"] == []
    config = config_json(result)
    unit = result["services"]["devbox-cleanup"]
    on_path = programs_of([*unit["path"], *NIXOS_SERVICE_DEFAULTS])
    missing = cleanup_programs(config) - on_path
    assert not missing, f"devbox-cleanup.service on a {host} host lacks {sorted(missing)}"


@pytest.mark.parametrize("host", ["single", "control", "member"])
def test_devbox_privileged_has_every_program_its_verbs_run(
    nix: str, fleet: Path, host: str
) -> None:
    config = config_json(evaluated(nix, fleet, host))
    entries = config.privileged_environment["PATH"].split(":")
    missing = privileged_programs(config) - programs_of(entries)
    assert not missing, f"devbox-privileged on a {host} host lacks {sorted(missing)}"


def test_a_fleet_control_hosts_cleanup_gets_ssh_and_the_deploy_tool(nix: str, fleet: Path) -> None:
    """The review's case: the daily run on a control host must reach and deploy the hosts."""
    control = evaluated(nix, fleet, "control")
    member = evaluated(nix, fleet, "member")
    assert {"ssh", "colmena"} <= programs_of(control["services"]["devbox-cleanup"]["path"])
    assert not {"ssh", "colmena"} & programs_of(member["services"]["devbox-cleanup"]["path"])
