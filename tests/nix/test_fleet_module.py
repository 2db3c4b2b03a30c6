"""The orchestrator module and the flake's colmena hive in a fleet, checked without NixOS.

- Each host's evaluation of nixos/orchestrator.nix (lib.evalModules with nixpkgs' lib and
  nixos-option-stubs.nix, as in test_orchestrator_module.py) installs exactly its own slice
  of the generated tree: its units, its cleanup units, its slice manifest as
  /etc/devbox/manifest.json, its users; and writes the fleet fields of config.json by role.
- A host the fleet does not declare, and a slice whose bytes are not the ones the fleet index
  names, are refused by assertions that say what to do.
- The single-host example evaluates exactly as before fleets existed: the whole evaluation is
  compared with tests/nix/golden/single-host-example.json, recorded from the module before
  the fleet options were added (`pytest --update-golden` rewrites it; review the diff).
- The flake's lib.fleetHive, evaluated node by node the way colmena evaluates a hive
  (eval-fleet-hive.nix), gives every declared host its slice and its deployment target.
- Each slice's units pass podman's real Quadlet generator in the layout the module installs.

The fleet tree is what `devbox-ctl generate` writes for fleet_fixture.py's three hosts.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

import fleet_fixture
import nix_eval
from devbox.host import hostconfig
from nix_eval import nixpkgs_lib
from support import REPO
from test_orchestrator_module import EXAMPLE, STUB_STORE, check_quadlet_layout, evaluate

HIVE = REPO / "tests" / "nix" / "eval-fleet-hive.nix"
LIB = REPO / "nixos" / "lib.nix"
GOLDEN = REPO / "tests" / "nix" / "golden" / "single-host-example.json"
HOSTS = sorted(fleet_fixture.HOSTS)
DEFAULT_DEPLOY = ["colmena", "apply", "--on", "{host}"]
DEFAULT_SSH = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "--", "{reach}"]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, nix: str) -> Path:
    return fleet_fixture.fleet_tree(tmp_path_factory.mktemp("fleet"))


def copy_fleet(fleet: Path, tmp_path: Path) -> Path:
    generated = tmp_path / "generated"
    shutil.copytree(fleet, generated)
    return generated


def on_host(nix: str, generated: Path, host: str, extra: str = "") -> Any:
    """The module evaluated on `host` (services.devbox.hostName), plus an extra config."""
    return evaluate(nix, generated, f'{{ services.devbox.hostName = "{host}"; {extra} }}')


def config_json(result: Any) -> Any:
    return json.loads(result["etc"]["devbox/config.json"]["text"])


# --- each host installs its own slice -------------------------------------------------------


@pytest.mark.parametrize("host", HOSTS)
def test_each_host_installs_exactly_its_slice(nix: str, fleet: Path, host: str) -> None:
    result = on_host(nix, fleet, host)
    assert result["failedAssertions"] == []
    slice_dir = fleet / "hosts" / host
    data = fleet_fixture.slice_manifest(fleet, host)
    units = {
        name: entry["source"]
        for name, entry in result["etc"].items()
        if name.startswith("containers/")
    }
    assert units == {
        f"containers/systemd/{path}": str(slice_dir / path)
        for path, file in data["files"].items()
        if file["uid"] is not None
    }
    # The slice's own containers, not another host's.
    mine = {c["name"] for c in fleet_fixture.HOSTS[host]["containers"]}
    assert {Path(name).name for name in units} == {
        f"devbox-{name}{suffix}" for name in mine for suffix in (".container", "-data.volume")
    }
    assert result["etc"]["devbox/manifest.json"]["source"] == str(slice_dir / "manifest.json")
    (package,) = result["packages"]
    assert package["entries"] == [
        {"name": f"lib/systemd/{path}", "path": str(slice_dir / path)}
        for path in ("system/devbox-cleanup.service", "system/devbox-cleanup.timer")
    ]
    # Every user of the fleet exists on every host, with an apply unit; the image is loaded
    # only for the owners of this host's containers.
    assert set(result["users"]) == set(fleet_fixture.USERS)
    services = result["services"]
    for name in fleet_fixture.USERS:
        assert services[f"devbox-apply-{name}"]["restartTriggers"] == [
            data["users"][name]["unitsSha256"],
            data["users"][name]["statesSha256"],
        ]
    owners = {c["owner"] for c in fleet_fixture.HOSTS[host]["containers"]}
    assert {name.removeprefix("devbox-image-") for name in services if "image" in name} == owners


def test_a_host_without_containers_still_gets_users_and_cleanup(nix: str, fleet: Path) -> None:
    result = on_host(nix, fleet, "gamma")
    assert not [name for name in result["etc"] if name.startswith("containers/")]
    assert result["timers"]["devbox-cleanup"]["wantedBy"] == ["timers.target"]
    assert set(result["users"]) == set(fleet_fixture.USERS)


def test_the_host_name_defaults_to_networking_host_name(nix: str, fleet: Path) -> None:
    result = evaluate(nix, fleet, '{ networking.hostName = "beta"; }')
    assert result["failedAssertions"] == []
    assert config_json(result)["hostName"] == "beta"
    assert "containers/systemd/users/1001/devbox-train.container" in result["etc"]


# --- refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra", ['{ services.devbox.hostName = "delta"; }', "{ }"], ids=["typo", "default-nixos"]
)
def test_a_host_the_fleet_does_not_declare_is_refused_by_name(
    nix: str, fleet: Path, extra: str
) -> None:
    result = evaluate(nix, fleet, extra)
    name = "delta" if "delta" in extra else "nixos"
    (message,) = result["failedAssertions"]
    assert f'services.devbox.hostName is "{name}", which is not a host of this fleet' in message
    assert "declares alpha, beta, gamma" in message
    assert "Set services.devbox.hostName" in message
    # Nothing of any slice is installed.
    assert not [path for path in result["etc"] if path.startswith("containers/")]
    assert result["users"] == {}


def test_a_slice_that_is_not_the_one_the_index_names_is_refused(
    nix: str, fleet: Path, tmp_path: Path
) -> None:
    generated = copy_fleet(fleet, tmp_path)
    path = generated / "hosts" / "alpha" / "manifest.json"
    path.write_bytes(path.read_bytes() + b"\n")
    result = on_host(nix, generated, "alpha")
    (message,) = result["failedAssertions"]
    expected = fleet_fixture.index(generated)["fleet"]["hosts"]["alpha"]["manifestSha256"]
    assert re.search(
        rf"hosts/alpha/manifest\.json has SHA-256 [0-9a-f]{{64}}, but the fleet index "
        rf"manifest\.json gives {expected}: the index and this host's slice are from different "
        r"generations\.\nRun `devbox-ctl generate`",
        message,
    ), message
    assert not [p for p in result["etc"] if p.startswith("containers/")]
    # The other hosts are not affected by alpha's slice.
    assert on_host(nix, generated, "beta")["failedAssertions"] == []


def test_a_missing_slice_is_refused(nix: str, fleet: Path, tmp_path: Path) -> None:
    generated = copy_fleet(fleet, tmp_path)
    shutil.rmtree(generated / "hosts" / "beta")
    (message,) = on_host(nix, generated, "beta")["failedAssertions"]
    assert "has no hosts/beta/manifest.json, though manifest.json declares the host beta" in message


def test_another_hosts_slice_under_this_hosts_name_is_refused(
    nix: str, fleet: Path, tmp_path: Path
) -> None:
    generated = copy_fleet(fleet, tmp_path)
    shutil.copyfile(
        generated / "hosts" / "beta" / "manifest.json",
        generated / "hosts" / "alpha" / "manifest.json",
    )
    index = fleet_fixture.index(generated)
    beta = index["fleet"]["hosts"]["beta"]["manifestSha256"]
    index["fleet"]["hosts"]["alpha"]["manifestSha256"] = beta
    (generated / "manifest.json").write_text(json.dumps(index))
    (message,) = on_host(nix, generated, "alpha")["failedAssertions"]
    assert 'hosts/alpha/manifest.json is the slice of host "beta", not of alpha' in message


def test_a_fleet_index_of_another_version_is_refused_by_version(
    nix: str, fleet: Path, tmp_path: Path
) -> None:
    generated = copy_fleet(fleet, tmp_path)
    index = fleet_fixture.index(generated) | {"version": 2}
    (generated / "manifest.json").write_text(json.dumps(index))
    failed = on_host(nix, generated, "alpha")["failedAssertions"]
    assert any("manifest.json has version 2" in message for message in failed), failed


def test_a_slice_of_another_version_is_refused_by_its_name(
    nix: str, fleet: Path, tmp_path: Path
) -> None:
    generated = copy_fleet(fleet, tmp_path)
    path = generated / "hosts" / "alpha" / "manifest.json"
    data = (json.dumps(json.loads(path.read_text()) | {"version": 2}) + "\n").encode()
    path.write_bytes(data)
    index = fleet_fixture.index(generated)
    index["fleet"]["hosts"]["alpha"]["manifestSha256"] = hashlib.sha256(data).hexdigest()
    (generated / "manifest.json").write_text(json.dumps(index))
    result = on_host(nix, generated, "alpha")
    (message,) = result["failedAssertions"]
    assert "services.devbox.generatedDir: hosts/alpha/manifest.json has version 2" in message
    assert not [p for p in result["etc"] if p.startswith("containers/")]


def test_control_on_a_single_host_is_refused(nix: str) -> None:
    failed = evaluate(nix, EXAMPLE, "{ services.devbox.fleet.control = true; }")["failedAssertions"]
    assert any(
        "services.devbox.fleet.control is true, but generated/manifest.json declares no fleet"
        in message
        for message in failed
    ), failed


def test_an_empty_fleet_command_is_refused(nix: str, fleet: Path) -> None:
    failed = on_host(nix, fleet, "alpha", "services.devbox.fleet.sshCommand = [ ];")[
        "failedAssertions"
    ]
    assert any("sshCommand and remoteCommand must not be empty" in m for m in failed), failed


# --- config.json per role -------------------------------------------------------------------


def test_config_json_of_a_member(nix: str, fleet: Path) -> None:
    written = config_json(on_host(nix, fleet, "beta"))
    single = config_json(evaluate(nix))
    assert written == single | {
        "role": "member",
        "hostName": "beta",
        # No config repository on a member: its declaration is its deployed slice.
        "configRepo": None,
        "deployCommand": DEFAULT_DEPLOY,
        "sshCommand": DEFAULT_SSH,
        "remoteCommand": ["devbox-ctl"],
    }


def test_config_json_of_the_control_host(nix: str, fleet: Path) -> None:
    extra = """services.devbox.fleet = {
      control = true;
      deployCommand = [ "deploy" "--skip-checks" "{flake}#{host}" ];
      sshCommand = [ "ssh" "-i" "/root/.ssh/fleet" "--" "{reach}" ];
      remoteCommand = [ "/run/current-system/sw/bin/devbox-ctl" ];
    };"""
    result = on_host(nix, fleet, "alpha", extra)
    written = config_json(result)
    single = config_json(evaluate(nix))
    # The deploy tool and ssh join the PATH of the programs devbox-privileged runs, before
    # root's own directories; the sudo rule's secure_path is the same PATH.
    *packages, wrappers, system = single["privilegedEnvironment"]["PATH"].split(":")
    path = ":".join(
        [
            *packages,
            f"{STUB_STORE}-colmena-0.4.0/bin",
            f"{STUB_STORE}-openssh/bin",
            wrappers,
            system,
        ]
    )
    assert written == single | {
        "role": "control",
        "hostName": "alpha",
        "deployCommand": ["deploy", "--skip-checks", "{flake}#{host}"],
        "sshCommand": ["ssh", "-i", "/root/.ssh/fleet", "--", "{reach}"],
        "remoteCommand": ["/run/current-system/sw/bin/devbox-ctl"],
        "privilegedEnvironment": {"PATH": path},
    }
    assert written["configRepo"] == "/etc/nixos"
    assert f'secure_path="{path}"' in result["sudoConfig"]


def test_the_control_hosts_deploy_tools_are_the_admins_choice(nix: str, fleet: Path) -> None:
    extra = "services.devbox.fleet = { control = true; packages = [ ]; };"
    written = config_json(on_host(nix, fleet, "alpha", extra))
    single = config_json(evaluate(nix))
    assert written["privilegedEnvironment"] == single["privilegedEnvironment"]
    # A member deploys nothing: its PATH is a single host's.
    member = config_json(on_host(nix, fleet, "beta"))
    assert member["privilegedEnvironment"] == single["privilegedEnvironment"]


def test_config_json_of_a_fleet_host_is_what_devbox_ctl_reads(nix: str, fleet: Path) -> None:
    if "role" not in hostconfig.HostConfig.model_fields:
        pytest.skip("this devbox-ctl's host config has no fleet fields yet (host/hostconfig.py)")
    for extra in ("", "services.devbox.fleet.control = true;"):
        written = config_json(on_host(nix, fleet, "alpha", extra))
        config = hostconfig.HostConfig.model_validate(written)
        assert config.model_dump(by_alias=True)["role"] == written["role"]


# --- the single host, unchanged -------------------------------------------------------------


def test_single_host_evaluation_is_unchanged(nix: str, request: pytest.FixtureRequest) -> None:
    root = str(EXAMPLE.resolve())
    actual = json.loads(json.dumps(evaluate(nix)).replace(root, "@EXAMPLE@"))
    if request.config.getoption("--update-golden"):
        GOLDEN.write_text(json.dumps(actual, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    expected = json.loads(GOLDEN.read_text())
    assert actual == expected
    written = config_json(actual)
    assert not {"role", "hostName", "deployCommand", "sshCommand", "remoteCommand"} & set(written)


def test_fleet_options_do_not_touch_a_single_host(nix: str) -> None:
    extra = """{
      services.devbox.hostName = "alpha";
      services.devbox.fleet.deployCommand = [ "deploy" "{flake}#{host}" ];
      services.devbox.fleet.sshCommand = [ "ssh" "{reach}" ];
    }"""
    assert evaluate(nix, EXAMPLE, extra) == evaluate(nix)


# --- the flake's colmena hive ---------------------------------------------------------------


@functools.cache
def _hive(lib: Path, generated: Path, hosts: str, defaults: str, plain_hosts: str) -> Any:
    return nix_eval.evaluate(
        HIVE,
        lib,
        generatedDir=str(generated),
        hosts=hosts,
        defaults=defaults,
        plainHosts=plain_hosts,
    )


def hive(
    generated: Path, hosts: str = "{ }", defaults: str = "{ }", plain_hosts: str = "{ }"
) -> Any:
    """lib.fleetHive's nodes evaluated as colmena does, and lib.fleetModules' as nixosSystem."""
    return _hive(nixpkgs_lib(), generated.resolve(), hosts, defaults, plain_hosts)


def test_the_hive_has_a_node_per_declared_host(nix: str, fleet: Path) -> None:
    result = hive(fleet, hosts="{ alpha = { services.devbox.fleet.control = true; }; }")
    assert result["names"] == ["alpha", "beta", "defaults", "gamma", "meta"]
    assert result["meta"] == {"description": "devbox test fleet", "nixpkgsSystem": "x86_64-linux"}
    # The orchestrator module and its settings, then the host's own module, then the target.
    assert result["modules"] == {"alpha": 4, "beta": 3, "gamma": 3}
    for host, node in result["nodes"].items():
        assert node["failedAssertions"] == [], host
        assert node["hostName"] == host
        assert node["enable"] is True
        assert node["generatedDir"] == str(fleet.resolve())
        slice_dir = fleet.resolve() / "hosts" / host
        assert node["etc"]["devbox/manifest.json"]["source"] == str(slice_dir / "manifest.json")
        units = {name for name in node["etc"] if name.startswith("containers/")}
        data = fleet_fixture.slice_manifest(fleet, host)
        assert units == {
            f"containers/systemd/{path}" for path, f in data["files"].items() if f["uid"]
        }
        role = json.loads(node["etc"]["devbox/config.json"]["text"])["role"]
        assert role == ("control" if host == "alpha" else "member")


def test_fleet_modules_serve_nixos_system_too(nix: str, fleet: Path) -> None:
    # For deploy-rs or nixos-rebuild --target-host: the same modules without colmena's options.
    control = "{ beta = [ { services.devbox.fleet.control = true; } ]; }"
    plain = hive(fleet, plain_hosts=control)["plain"]
    assert sorted(plain) == HOSTS
    for host, node in plain.items():
        assert node["failedAssertions"] == [], host
        assert node["hostName"] == host
        assert node["role"] == ("control" if host == "beta" else "member")
        assert node["manifest"] == str(fleet.resolve() / "hosts" / host / "manifest.json")


def test_the_hive_reaches_each_host_where_devbox_ctl_does(nix: str, fleet: Path) -> None:
    nodes = hive(fleet)["nodes"]
    # reach "user@host" / "host" as colmena's targetUser and targetHost (its default user root).
    assert nodes["alpha"]["deployment"] == {
        "targetHost": "alpha.example.ts.net",
        "targetUser": "root",
    }
    assert nodes["beta"]["deployment"] == {
        "targetHost": "beta.example.ts.net",
        "targetUser": "root",
    }
    assert nodes["gamma"]["deployment"] == {"targetHost": "gamma", "targetUser": "admin"}
    # A host's own module may still choose another target.
    moved = hive(fleet, hosts='{ gamma = [ { deployment.targetHost = "10.0.0.7"; } ]; }')
    assert moved["nodes"]["gamma"]["deployment"]["targetHost"] == "10.0.0.7"


@pytest.mark.parametrize(
    ("reach", "target"),
    [
        ("root@alpha.example.ts.net", {"targetUser": "root", "targetHost": "alpha.example.ts.net"}),
        ("alpha", {"targetHost": "alpha"}),
        # OpenSSH splits user@host at the last "@" (ssh.c, strrchr).
        ("ops@corp@alpha", {"targetUser": "ops@corp", "targetHost": "alpha"}),
    ],
)
def test_reach_as_colmenas_target(nix: str, reach: str, target: dict[str, str]) -> None:
    expression = f'(import {LIB} {{ inherit lib; }}).reachTarget "{reach}"'
    assert nix_eval.evaluate_expression(expression) == target


def test_the_hive_applies_defaults_to_every_host(nix: str, fleet: Path) -> None:
    nodes = hive(fleet, defaults='{ services.devbox.fleet.remoteCommand = [ "devbox" ]; }')["nodes"]
    for host, node in nodes.items():
        assert json.loads(node["etc"]["devbox/config.json"]["text"])["remoteCommand"] == [
            "devbox"
        ], host


def test_the_hive_refuses_a_module_for_a_host_it_does_not_declare(nix: str, fleet: Path) -> None:
    result = nix_eval.instantiate(HIVE, generatedDir=str(fleet), hosts="{ alhpa = { }; }")
    assert result.returncode != 0
    assert "hosts has alhpa, which" in result.stderr
    assert "it declares alpha, beta, gamma" in result.stderr


@pytest.mark.parametrize("reserved", ["meta", "defaults"])
def test_the_hive_refuses_a_host_named_like_colmenas_own_attributes(
    nix: str, fleet: Path, tmp_path: Path, reserved: str
) -> None:
    generated = copy_fleet(fleet, tmp_path)
    (generated / "hosts" / "gamma").rename(generated / "hosts" / reserved)
    index = fleet_fixture.index(generated)
    index["fleet"]["hosts"][reserved] = index["fleet"]["hosts"].pop("gamma")
    (generated / "manifest.json").write_text(json.dumps(index))
    result = nix_eval.instantiate(HIVE, generatedDir=str(generated))
    assert result.returncode != 0
    assert f"the host name {reserved} is reserved by colmena" in result.stderr


def test_the_hive_of_a_single_host_tree_says_what_is_missing(nix: str) -> None:
    result = nix_eval.instantiate(HIVE, generatedDir=str(EXAMPLE.resolve()))
    assert result.returncode != 0
    assert "manifest.json declares no fleet" in result.stderr
    assert "Declare the hosts in users.nix (`hosts`)" in result.stderr


# --- the slices under Quadlet -----------------------------------------------------------------


@pytest.mark.parametrize("host", ["alpha", "beta"])
def test_slice_units_pass_quadlet_in_the_installed_layout(
    fleet: Path, quadlet: str, host: str
) -> None:
    with tempfile.TemporaryDirectory(prefix="devbox-quadlet-") as name:
        shared = Path(name)
        shared.chmod(0o755)
        check_quadlet_layout(fleet / "hosts" / host, quadlet, shared)


def test_each_colmena_version_finds_the_hive_where_the_docs_put_it(nix: str, fleet: Path) -> None:
    """docs/fleet.md's layouts, read as colmena 0.4.0 (the default) and 0.5 read a flake
    (colmena-flake.nix, from their source): the `colmena` output alone serves 0.4.0, a
    colmenaHive under legacyPackages adds 0.5 without breaking 0.4.0, and a top-level
    colmenaHive from 0.5 breaks 0.4.0."""
    read = nix_eval.evaluate(REPO / "tests/nix/eval-colmena-versions.nix", generatedDir=str(fleet))
    every_host = {"hosts": HOSTS}
    assert read["colmena"]["0.4.0"] == every_host
    assert "does not provide attribute" in read["colmena"]["0.5"]["error"]
    assert read["withLegacyPackages"] == {"0.4.0": every_host, "0.5": every_host}
    assert read["topLevelColmenaHive"]["0.4.0"] == {
        "error": "The colmenaHive output (schema v0.5) isn't compatible with this version of Colmena."
    }
    docs = (REPO / "docs" / "fleet.md").read_text()
    assert "legacyPackages = nixpkgs.lib.genAttrs" in docs
    assert "colmenaHive = colmena.lib.makeHive self.outputs.colmena;" in docs
