"""create, end to end on a host (tests/host.py): real git, Nix, generator, Quadlet and podman;
stand-ins for the user's systemd manager, nixos-rebuild, 1Password and Tailscale."""

from __future__ import annotations

import hashlib
import json

from host import KEY, Host


def test_create_declares_commits_applies_and_joins(host: Host) -> None:
    result = host.cli("create", "web", "--owner", "alice", "--timeout", "30")
    assert result.code == 0, result.err
    assert host.records() == [
        {
            "name": "web",
            "owner": "alice",
            "state": "running",
            "created": host.records()[0]["created"],
        }
    ]
    assert host.git_log()[0].startswith("devbox: root created web for alice\n")
    assert host.running() == ["web"]
    assert "web is on the tailnet." in result.out
    assert "ssh dev@web" in result.out
    assert "http://web:8080" in result.out
    assert "Connect to Server → dev@web" in result.out
    # The key went into the owner's secret through stdin, and was neutralised after joining.
    creates = [
        c
        for c in host.stand_ins.calls("systemd-run")
        if "create" in c["argv"] and "secret" in c["argv"]
    ]
    assert creates[0]["stdin_sha256"] == hashlib.sha256(KEY.encode()).hexdigest()
    assert creates[-1]["stdin_bytes"] == 1


def test_created_container_runs_with_the_generated_arguments(host: Host) -> None:
    assert (
        host.cli(
            "create",
            "web",
            "--owner",
            "alice",
            "--memory",
            "2G",
            "--cpu",
            "1.5",
            "--with-syncthing",
            "--timeout",
            "30",
        ).code
        == 0
    )
    inspected = json.loads(host.podman("container", "inspect", "web").stdout)[0]
    labels = inspected["Config"]["Labels"]
    assert (labels["devbox.owner"], labels["devbox.container"], labels["devbox.managed"]) == (
        "alice",
        "web",
        "true",
    )
    env = dict(item.split("=", 1) for item in inspected["Config"]["Env"])
    assert env["CONTAINER_NAME"] == "web"
    assert env["DEVBOX_TS_TAGS"] == "tag:devcontainer,tag:alice-container"
    assert env["DEVBOX_SYNCTHING"] == "1"
    assert "TS_AUTHKEY" not in env
    assert inspected["HostConfig"]["Memory"] == 2 * 1024**3
    assert inspected["HostConfig"]["NanoCpus"] == 1_500_000_000
    assert inspected["Config"]["Hostname"] == "web"
    mounts = {m["Destination"]: m.get("Name") for m in inspected["Mounts"]}
    assert mounts["/home/dev"] == "web-data"


def test_every_command_in_a_users_manager_names_its_program_by_absolute_path(host: Host) -> None:
    """The owner's manager does not search root's PATH: a bare `podman` fails there with status
    203 on NixOS, and the systemd-run stand-in fails it the same way."""
    result = host.cli("create", "web", "--owner", "alice", "--timeout", "30")
    assert result.code == 0, result.out + result.err
    calls = host.stand_ins.calls("systemd-run")
    assert calls
    commands = [next(a for a in c["argv"] if not a.startswith("-")) for c in calls]
    assert {command.startswith("/") and command.endswith("/podman") for command in commands} == {
        True
    }


def test_a_switch_runs_the_apply_of_exactly_the_users_whose_units_changed(host: Host) -> None:
    """The module restarts devbox-apply-<user> only when that user's unitsSha256 (or, if asked,
    the image) changed; the nixos-rebuild stand-in follows those triggers."""
    assert host.cli("create", "web", "--owner", "alice", "--timeout", "30").code == 0
    host.stand_ins.clear()
    result = host.cli("create", "api", "--owner", "bob", "--timeout", "30")
    assert result.code == 0, result.out + result.err
    managers = {
        argument
        for call in host.stand_ins.calls("systemctl")
        for argument in call["argv"]
        if argument.startswith("--machine=")
    }
    assert managers == {"--machine=bob@"}
    assert host.running() == ["api", "web"]


def test_a_size_that_is_not_one_is_blamed_on_the_option_typed(host: Host) -> None:
    """Not on a containers.json record that does not exist yet."""
    for option, expected in (
        (["--memory", "8GB"], 'error: --memory: "8GB" is not a memory size'),
        (["--cpu", "0"], "error: --cpu: 0 is not a positive number of CPUs"),
        (["--cpu", "nan"], "error: --cpu: nan is not a positive number of CPUs"),
    ):
        result = host.cli("create", "web", "--owner", "alice", *option)
        assert result.code == 2, result.err
        assert result.err.startswith(expected), result.err
        assert "containers.json" not in result.err
        assert host.records() == []
