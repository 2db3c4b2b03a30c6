"""Attacks on the privileged path through the caller's environment and working directory.

A user runs `devbox-ctl stop web`; devbox-ctl hands it to `sudo devbox-privileged`, which
edits root's config repository and runs the rebuild command as root. The user controls
every variable and the directory they start it from: NIX_PATH (which configuration a
rebuild without --flake builds), NIX_CONF_DIR and NIX_CONFIG (Nix's settings),
GIT_CONFIG_GLOBAL and HOME (git's configuration: core.fsmonitor runs a program), PATH (which
program runs at all), DEVBOX_DEBUG.

The promise: the programs devbox-privileged runs get root's fixed environment (config.json's
privilegedEnvironment) and `/` as working directory, nothing of the caller's; the default
rebuild command names the configuration itself. The sudo rule's own reset is checked in
tests/nix/test_orchestrator_module.py (no sudo runs here). The stand-ins record the working
directory and the environment variables that matter of every call (tests/stand_ins/common.py);
the nixos-rebuild stand-in also records which configuration the real one would build.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from attack_declaration_support import ALICE, environment

from host import Host, run_privileged

pytestmark = pytest.mark.slow  # a whole host each

PROGRAMS = ("nixos-rebuild", "git", "nix-instantiate", "op", "systemctl", "systemd-run", "podman")


@pytest.fixture
def attacker(tmp_path: Path) -> Path:
    """The caller's own directory: a configuration of theirs, git and Nix settings, programs."""
    home = tmp_path / "attacker"
    (home / "nix").mkdir(parents=True)
    (home / "bin").mkdir()
    (home / "configuration.nix").write_text('{ users.users.root.password = "owned"; }\n')
    (home / "flake.nix").write_text("{ outputs = _: { }; }\n")
    (home / "nix/nix.conf").write_text("allow-unsafe-native-code-during-evaluation = true\n")
    hook = home / "fsmonitor"
    hook.write_text(f"#!/bin/sh\ntouch {home / 'git-ran-my-program'}\nexit 1\n")
    hook.chmod(0o755)
    gitconfig = f"[core]\n\tfsmonitor = {hook}\n"
    (home / "gitconfig").write_text(gitconfig)
    (home / ".gitconfig").write_text(gitconfig)
    for program in PROGRAMS:
        fake = home / "bin" / program
        fake.write_text(f'#!/bin/sh\necho "$0" >> {home / "programs-that-ran"}\nexit 1\n')
        fake.chmod(0o755)
    return home


def hostile(home: Path) -> dict[str, str]:
    """The caller's environment (PATH aside)."""
    return {
        "NIX_PATH": f"nixos-config={home}/configuration.nix:nixpkgs={home}",
        "NIX_CONF_DIR": str(home / "nix"),
        "NIX_CONFIG": "allow-unsafe-native-code-during-evaluation = true",
        "GIT_CONFIG_GLOBAL": str(home / "gitconfig"),
        "HOME": str(home),
        "DEVBOX_DEBUG": "1",
    }


@pytest.fixture
def web(host: Host) -> Host:
    """alice's web, declared (not started)."""
    result = host.cli("create", "web", "--owner", "alice", "--no-apply")
    assert result.code == 0, result.err
    host.stand_ins.clear()
    return host


# A verb that runs git, systemctl, podman and the rebuild.
DESTROY = ("destroy", "web", "--yes", "--no-snapshot")


def _fixed(host: Host) -> dict[str, str]:
    config = json.loads(host.config_path.read_text())
    return {"PATH": config.get("privilegedEnvironment", {}).get("PATH"), "HOME": "/root"}


def _assert_roots_environment(host: Host, calls: list[dict[str, Any]]) -> None:
    assert calls, "no program was recorded: the checks below prove nothing"
    for call in calls:
        assert call["cwd"] == "/", call
        assert call["environment"] == _fixed(host), call


def test_the_callers_environment_and_directory_never_reach_a_program(
    web: Host, attacker: Path
) -> None:
    # destroy: a verb that runs every kind of program, the rebuild included (a stop runs none).
    with environment(hostile(attacker)):
        result = run_privileged(DESTROY, ALICE, web.config_path, attacker)
    assert result.code == 0, result.err
    calls = web.stand_ins.calls()
    assert {c["name"] for c in calls} >= {"systemctl", "nixos-rebuild"}
    _assert_roots_environment(web, calls)
    [rebuild] = web.stand_ins.calls("nixos-rebuild")
    assert rebuild["configuration"] == "/etc/nixos/configuration.nix", (
        "the rebuild built the caller's configuration"
    )
    assert not (attacker / "git-ran-my-program").exists(), "git ran the caller's fsmonitor"
    assert web.records() == []


def test_a_program_on_the_callers_path_never_runs(web: Host, attacker: Path) -> None:
    path = f"{attacker / 'bin'}:{os.environ['PATH']}"
    with environment({**hostile(attacker), "PATH": path}):
        result = run_privileged(("stop", "web"), ALICE, web.config_path, attacker)
    assert not (attacker / "programs-that-ran").exists(), (
        attacker / "programs-that-ran"
    ).read_text()
    assert result.code == 0, result.err
    _assert_roots_environment(web, web.stand_ins.calls())


def test_the_default_rebuild_names_the_configuration(web: Host, attacker: Path) -> None:
    config = json.loads(web.config_path.read_text())
    del config["rebuildCommand"]
    web.config_path.write_text(json.dumps(config))
    with environment(hostile(attacker)):
        result = run_privileged(DESTROY, ALICE, web.config_path, attacker)
    assert result.code == 0, result.err
    [rebuild] = web.stand_ins.calls("nixos-rebuild")
    assert rebuild["argv"] == ["switch", "--flake", str(web.repo)]
    assert rebuild["configuration"] == f"flake {web.repo}"


def test_the_entry_point_forgets_the_environment_sudo_started_it_with(
    web: Host, attacker: Path
) -> None:
    # The console script as sudo starts it (a process of its own, SUDO_UID set by sudo); only
    # the config file is another than /etc/devbox/config.json, as in every host test.
    script = (
        "import sys\nfrom pathlib import Path\nfrom devbox import privileged\n"
        "privileged.run.__kwdefaults__['config_path'] = Path(sys.argv.pop(1))\n"
        "privileged.entry()\n"
    )
    caller = {
        **hostile(attacker),
        "PATH": f"{attacker / 'bin'}:{os.environ['PATH']}",
        "SUDO_UID": str(ALICE),
        "SUDO_USER": "alice",
    }
    done = subprocess.run(
        [sys.executable, "-c", script, str(web.config_path), *DESTROY],
        cwd=attacker,
        env=caller,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert not (attacker / "programs-that-ran").exists()
    assert not (attacker / "git-ran-my-program").exists()
    _assert_roots_environment(web, web.stand_ins.calls())
    [rebuild] = web.stand_ins.calls("nixos-rebuild")
    assert rebuild["configuration"] == "/etc/nixos/configuration.nix"
