"""config.json's fleet fields (docs/host-config.md): role, hostName and the argv templates.

Each bad value is refused with the file, the field and the fix, as every other config field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from devbox.errors import InputError, ToolError
from devbox.host import hostconfig
from devbox.tools import templates


def load(tmp_path: Path, **fields: Any) -> hostconfig.HostConfig:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"version": 1, "configRepo": "/etc/nixos", **fields}))
    return hostconfig.load(path)


def refused(tmp_path: Path, **fields: Any) -> list[str]:
    with pytest.raises(InputError) as caught:
        load(tmp_path, **fields)
    return caught.value.lines()


def test_a_single_host_config_gets_the_fleet_defaults(tmp_path: Path) -> None:
    config = load(tmp_path)
    assert config.role == "single"
    assert config.host_name is None
    assert not config.member
    assert config.deploy_command == ["colmena", "apply", "--on", "{host}"]
    assert config.ssh_command == [
        "ssh",
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=10",
        "--",
        "{reach}",
    ]
    assert config.remote_command == ["devbox-ctl"]


def test_a_member_may_have_no_config_repository(tmp_path: Path) -> None:
    config = load(tmp_path, configRepo=None, role="member", hostName="alpha")
    assert config.member
    assert config.config_repo is None
    # Its rebuild command names no flake it does not have.
    assert config.rebuild_command == ["nixos-rebuild", "switch"]


def test_a_member_without_a_repository_refuses_what_needs_one(tmp_path: Path) -> None:
    config = load(tmp_path, configRepo=None, role="member", hostName="alpha")
    with pytest.raises(Exception, match="member of a fleet: run devbox-ctl on the control host"):
        _ = config.paths


@pytest.mark.parametrize("role", ["single", "control"])
def test_only_a_member_may_have_no_config_repository(tmp_path: Path, role: str) -> None:
    fields: dict[str, Any] = {"configRepo": None, "role": role}
    if role == "control":
        fields["hostName"] = "alpha"
    lines = refused(tmp_path, **fields)
    assert len(lines) == 1
    assert f"config.json: configRepo is null on a host with role '{role}'" in lines[0]
    assert 'only a fleet member (role "member") has none' in lines[0]


def test_an_unknown_role_names_the_choices(tmp_path: Path) -> None:
    (line,) = refused(tmp_path, role="worker", hostName="alpha")
    assert line.startswith(f"{tmp_path / 'config.json'}: role: ")
    assert line.endswith(
        'is not one of "single", "control" or "member"; use "single", "control" or "member"'
    )


def test_a_fleet_host_needs_its_name_and_a_single_host_has_none(tmp_path: Path) -> None:
    (line,) = refused(tmp_path, role="member")
    assert "hostName is null on a fleet host (role 'member')" in line
    assert "users.nix hosts" in line
    (line,) = refused(tmp_path, hostName="alpha")
    assert "hostName 'alpha' is set on a single host" in line
    (line,) = refused(tmp_path, role="member", hostName="Alpha_1")
    assert line.startswith(f"{tmp_path / 'config.json'}: hostName: host name ")


@pytest.mark.parametrize(
    ("field", "value", "said"),
    [
        ("deployCommand", [], "is empty"),
        ("deployCommand", ["colmena", "apply", "--on", "{node}"], "placeholder devbox does not"),
        ("deployCommand", ["deploy", "{flake}#{host", "x"], "placeholder devbox does not"),
        ("sshCommand", ["ssh", "--", "{reach}\n"], "line break"),
        ("remoteCommand", ["devbox-ctl", "{0}"], "placeholder devbox does not"),
        ("remoteCommand", ["devbox-ctl", ""], "is empty"),
        ("sshCommand", "ssh {reach}", "is not a list"),
        ("sshCommand", ["ssh", "--", "alpha"], "names no host: it needs {host} or {reach}"),
        ("sshCommand", ["ssh", "{reach}", "{flake}"], "uses {flake}, which is not known here"),
        ("deployCommand", ["colmena", "apply"], "names no host: it needs {host} or {reach}"),
        ("remoteCommand", ["{flake}/bin/devbox-ctl"], "uses {flake}, which is not known here"),
    ],
)
def test_a_bad_template_names_the_field_and_the_fix(
    tmp_path: Path, field: str, value: Any, said: str
) -> None:
    (line,) = refused(tmp_path, **{field: value})
    assert line.startswith(f"{tmp_path / 'config.json'}: {field}")
    assert said in line
    if isinstance(value, list):
        names = "{host}, {reach} and {flake}" if field == "deployCommand" else "{host} and {reach}"
        assert f"in which only {names} are replaced, e.g. [" in line


def test_templates_in_use_are_accepted(tmp_path: Path) -> None:
    """The three deploy tools of docs/fleet.md."""
    for command in (
        ["colmena", "apply", "--on", "{host}"],
        ["deploy", "--skip-checks", "{flake}#{host}"],
        [
            "nixos-rebuild",
            "switch",
            "--flake",
            "{flake}#{host}",
            "--target-host",
            "{reach}",
            "--use-remote-sudo",
        ],
    ):
        assert load(tmp_path, deployCommand=command).deploy_command == command


def test_fill_replaces_whole_words_and_inside_words_once() -> None:
    filled = templates.fill(
        ["deploy", "{flake}#{host}", "--to", "{reach}"],
        {"host": "alpha", "reach": "root@{host}", "flake": "/etc/nixos"},
    )
    # The reach's own "{host}" is a value, not a placeholder: one pass only.
    assert filled == ["deploy", "/etc/nixos#alpha", "--to", "root@{host}"]


def test_fill_without_a_value_for_a_placeholder_is_a_tool_error() -> None:
    with pytest.raises(ToolError, match=r"no value for \{flake\}"):
        templates.fill(["deploy", "{flake}"], {"host": "alpha"})
