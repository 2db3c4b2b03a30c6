"""The orchestrator NixOS module (nixos/orchestrator.nix), checked without a NixOS machine.

- The module evaluated with lib.evalModules (nixpkgs' library from the checkout named by
  DEVBOX_NIXPKGS_LIB, e.g. of nix-community/nixpkgs.lib; skipped without it) against the
  example's manifest, with stub declarations of the NixOS options it sets
  (nixos-option-stubs.nix): /etc entries, users, lingering, sub-uid ranges, units, restart
  triggers, the sudo rule and /etc/devbox/config.json, and the assertions.
- The generated units pass podman's real Quadlet generator in the layout the module installs,
  /etc/containers/systemd/users/<UID>/, found through Quadlet's own search path for that uid.
- The generated trees the VM test (tests/nixos/orchestrator.nix) switches between are what
  devbox-ctl makes of their inputs.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

import nix_eval
from devbox.host import hostconfig
from nix_eval import nixpkgs_lib
from support import REPO, run_cli, writable_copy

EXAMPLE = REPO / "examples" / "basic" / "generated"
EVAL = REPO / "tests" / "nix" / "eval-orchestrator.nix"
VM_INPUT = REPO / "tests" / "nixos" / "orchestrator"
VM_STATES = ("base", "changed", "removed")
# The Nix store the evaluation sees: /nix/store, or the private one a Nix build gives Nix
# (scripts/nix-in-build.sh sets NIX_STORE_DIR).
STORE_DIR = os.environ.get("NIX_STORE_DIR", "/nix/store")
STUB_STORE = "/nix/store/00000000000000000000000000000000"
DEVBOX = f"{STUB_STORE}-devbox"
PRIVILEGED = f"{STUB_STORE}-devbox-privileged/bin/devbox-privileged"
IMAGE = f"{STUB_STORE}-devcontainer.tar.gz"
# What the owners load when the containers mount the host's store (nixDaemon, the example's).
HOST_STORE_IMAGE = f"{STUB_STORE}-devcontainer-host-store.tar.gz"


@functools.cache
def _evaluate(lib: Path, generated: Path, extra: str) -> Any:
    return nix_eval.evaluate(EVAL, lib, generatedDir=str(generated), extraConfig=extra)


def evaluate(nix: str, generated: Path = EXAMPLE, extra: str = "{ }") -> Any:
    """What the module defines for a generated tree and an extra NixOS config module."""
    return _evaluate(nixpkgs_lib(), generated.resolve(), extra)


def manifest(generated: Path = EXAMPLE) -> Any:
    return json.loads((generated / "manifest.json").read_text())


def argv(unit: dict[str, Any]) -> list[str]:
    return shlex.split(unit["serviceConfig"]["ExecStart"])


def generate(tmp_path: Path, users_nix: str, containers: list[dict[str, Any]]) -> Path:
    """A generated tree made by devbox-ctl from the given inputs."""
    (tmp_path / "users.nix").write_text(users_nix)
    (tmp_path / "containers.json").write_text(json.dumps({"version": 1, "containers": containers}))
    result = run_cli("generate", "-q", cwd=tmp_path)
    assert result.code == 0, result.err
    return tmp_path / "generated"


# --- the evaluated module ------------------------------------------------------------------


def test_each_unit_file_is_installed_under_its_owners_uid(nix: str) -> None:
    etc = evaluate(nix)["etc"]
    units = {name: entry for name, entry in etc.items() if name.startswith("containers/")}
    expected = {
        f"containers/systemd/{path}": str(EXAMPLE / path)
        for path, file in manifest()["files"].items()
        if file["uid"] is not None
    }
    assert {name: entry["source"] for name, entry in units.items()} == expected
    assert "containers/systemd/users/1001/devbox-web.container" in expected
    assert "containers/systemd/users/1002/devbox-api.container" in expected
    assert etc["devbox/manifest.json"]["source"] == str(EXAMPLE / "manifest.json")


def test_users_get_fixed_uids_lingering_and_ranges_from_the_manifest(nix: str) -> None:
    users = evaluate(nix)["users"]
    for name, entry in manifest()["users"].items():
        start, count = entry["subUidRange"]["start"], entry["subUidRange"]["count"]
        assert users[name] == {
            "isNormalUser": True,
            "uid": entry["uid"],
            "home": f"/home/{name}",
            "linger": True,
            "autoSubUidGidRange": False,
            "subUidRanges": [{"startUid": start, "count": count}],
            "subGidRanges": [{"startGid": start, "count": count}],
        }
    assert users["alice"]["subUidRanges"] == [{"startUid": 1001 * 65536, "count": 65536}]


def test_podman_is_enabled_and_devbox_ctl_is_on_every_path(nix: str) -> None:
    result = evaluate(nix)
    assert result["podman"] is True
    assert result["systemPackages"] == [DEVBOX]


def test_apply_unit_per_user_restarts_when_that_users_units_or_states_change(nix: str) -> None:
    services = evaluate(nix)["services"]
    for name, entry in manifest()["users"].items():
        unit = services[f"devbox-apply-{name}"]
        assert unit["restartTriggers"] == [entry["unitsSha256"], entry["statesSha256"]]
        assert unit["restartIfChanged"] is True
        assert argv(unit) == [
            f"{DEVBOX}/bin/devbox-ctl",
            "apply",
            "--manifest",
            "/etc/devbox/manifest.json",
            "--user",
            name,
            "--state-dir",
            "/var/lib/devbox",
        ]
        uid = entry["uid"]
        assert unit["requires"] == [f"user@{uid}.service"]
        assert f"user@{uid}.service" in unit["after"]
        assert f"devbox-image-{name}.service" in unit["after"]
        assert unit["wantedBy"] == ["multi-user.target"]
        assert unit["serviceConfig"]["Type"] == "oneshot"
        assert unit["serviceConfig"]["RemainAfterExit"] is True


def test_apply_restarts_on_a_new_image_only_when_the_admin_opts_in(nix: str) -> None:
    services = evaluate(nix, extra="{ services.devbox.restartOnImageChange = true; }")["services"]
    unit = services["devbox-apply-alice"]
    assert unit["restartTriggers"] == [
        manifest()["users"]["alice"]["unitsSha256"],
        manifest()["users"]["alice"]["statesSha256"],
        HOST_STORE_IMAGE,
    ]
    assert argv(unit)[-3:] == ["--image", HOST_STORE_IMAGE, "--restart-on-image-change"]


def test_image_is_loaded_as_the_owner_keyed_on_its_store_path(nix: str) -> None:
    services = evaluate(nix)["services"]
    image = manifest()["settings"]["image"]
    for name, entry in manifest()["users"].items():
        unit = services[f"devbox-image-{name}"]
        command = argv(unit)
        assert command[0].endswith("/bin/devbox-load-image")
        assert command[1:] == [HOST_STORE_IMAGE, image]
        assert unit["serviceConfig"]["User"] == name
        assert unit["serviceConfig"]["RemainAfterExit"] is True
        assert unit["environment"]["XDG_RUNTIME_DIR"] == f"/run/user/{entry['uid']}"
        assert unit["requires"] == [f"user@{entry['uid']}.service"]


def test_without_the_hosts_daemon_the_owners_load_the_whole_image(nix: str, tmp_path: Path) -> None:
    generated = generate(
        tmp_path,
        "{ users = { alice = { uid = 1001; }; }; containers = { nixDaemon = false; }; }",
        [{"name": "web", "owner": "alice"}],
    )
    result = evaluate(nix, generated, extra="{ services.devbox.restartOnImageChange = true; }")
    assert argv(result["services"]["devbox-image-alice"])[1] == IMAGE
    assert argv(result["services"]["devbox-apply-alice"])[-2] == IMAGE
    assert result["warnings"] == []


def test_an_image_without_a_host_store_form_is_loaded_whole_with_a_warning(nix: str) -> None:
    result = evaluate(
        nix,
        extra='{ lib, ... }: { services.devbox.image = lib.mkForce { type = "derivation"; '
        'name = "i"; outPath = "/nix/store/00000000000000000000000000000000-i"; '
        "storeContents = [ ]; }; }",
    )
    assert argv(result["services"]["devbox-image-alice"])[1] == f"{STUB_STORE}-i"
    assert result["failedAssertions"] == []
    (warning,) = result["warnings"]
    assert "has no `hostStoreImage`: every container owner loads the whole image" in warning


def test_a_user_without_containers_gets_no_image_but_an_apply_unit(
    nix: str, tmp_path: Path
) -> None:
    generated = generate(
        tmp_path,
        "{ users = { alice = { uid = 1001; }; carol = { uid = 1003; }; }; containers = { }; }",
        [{"name": "web", "owner": "alice"}],
    )
    services = evaluate(nix, generated)["services"]
    assert "devbox-image-carol" not in services
    assert "devbox-image-alice" in services
    assert "devbox-apply-carol" in services
    assert "devbox-image-carol.service" not in services["devbox-apply-carol"]["after"]


def test_cleanup_installs_the_generated_units_with_a_hardened_drop_in(nix: str) -> None:
    result = evaluate(nix)
    (package,) = result["packages"]
    assert package["entries"] == [
        {"name": f"lib/systemd/{path}", "path": str(EXAMPLE / path)}
        for path in ("system/devbox-cleanup.service", "system/devbox-cleanup.timer")
    ]
    timer = result["timers"]["devbox-cleanup"]
    assert timer == {
        "wantedBy": ["timers.target"],
        "overrideStrategy": "asDropin",
        "timerConfig": {},
    }
    service = result["services"]["devbox-cleanup"]
    assert service["overrideStrategy"] == "asDropin"
    assert service["restartIfChanged"] is False
    assert DEVBOX in service["path"]
    assert f"{STUB_STORE}-podman" in service["path"]
    assert "/run/wrappers" in service["path"]
    hardening = service["serviceConfig"]
    assert hardening["ProtectSystem"] == "strict"
    assert hardening["ProtectHome"] is False
    assert {"/run/user", "/var/lib/devbox", "-/etc/nixos", "-/home/alice", "-/home/bob"} <= set(
        hardening["ReadWritePaths"]
    )
    assert "NoNewPrivileges" not in hardening


def test_cleanup_schedule_overrides_the_generated_one(nix: str) -> None:
    timers = evaluate(nix, extra='{ services.devbox.cleanup.schedule = "Mon 03:00"; }')["timers"]
    assert timers["devbox-cleanup"]["timerConfig"] == {"OnCalendar": ["", "Mon 03:00"]}


def test_sudo_allows_the_users_exactly_the_privileged_command(nix: str) -> None:
    result = evaluate(nix)
    assert result["sudo"] == [
        {
            "users": sorted(manifest()["users"]),
            "groups": [],
            "host": "ALL",
            "runAs": "root",
            "commands": [{"command": PRIVILEGED, "options": ["NOPASSWD", "NOSETENV"]}],
        }
    ]
    assert result["sudoRs"] == []
    with_sudo_rs = evaluate(
        nix, extra="{ security.sudo.enable = false; security.sudo-rs.enable = true; }"
    )
    assert with_sudo_rs["sudo"] == []
    assert with_sudo_rs["sudoRs"] == result["sudo"]
    assert with_sudo_rs["sudoConfig"] == with_sudo_rs["sudoRsConfig"] == ""


def test_sudo_resets_the_environment_of_the_privileged_command(nix: str) -> None:
    result = evaluate(nix)
    written = json.loads(result["etc"]["devbox/config.json"]["text"])
    path = written["privilegedEnvironment"]["PATH"]
    # The PATH devbox-privileged gives its programs: the module's packages (stub names may
    # carry a version), then root's directories.
    *packages, wrappers, system = path.split(":")
    assert (wrappers, system) == ("/run/wrappers/bin", "/run/current-system/sw/bin")
    names = ("devbox", "1password-cli", "nix", "nixos-rebuild", "systemd", "git")
    assert len(packages) == len(names)
    for entry, name in zip(packages, names, strict=True):
        assert entry.startswith(f"{STUB_STORE}-{name}"), entry
        assert entry.endswith("/bin"), entry
    assert result["sudoConfig"] == (
        f"Defaults!{PRIVILEGED} env_reset, !env_keep, !env_check, always_set_home, "
        f'secure_path="{path}"\n'
    )


def test_the_default_rebuild_command_names_the_configuration(nix: str) -> None:
    written = json.loads(evaluate(nix)["etc"]["devbox/config.json"]["text"])
    assert written["rebuildCommand"] == ["nixos-rebuild", "switch", "--flake", "/etc/nixos"]
    moved = evaluate(nix, extra='{ services.devbox.configRepo = "/srv/infra"; }')
    written = json.loads(moved["etc"]["devbox/config.json"]["text"])
    assert written["rebuildCommand"] == ["nixos-rebuild", "switch", "--flake", "/srv/infra"]


def test_config_json_names_paths_and_the_privileged_command(nix: str) -> None:
    extra = """{
      services.devbox = {
        opTokenFile = "/run/keys/devbox-op-token";
        rebuildCommand = [ "nixos-rebuild" "switch" "--flake" "/etc/nixos#orchestrator" ];
      };
    }"""
    result = evaluate(nix, extra=extra)
    written = json.loads(result["etc"]["devbox/config.json"]["text"])
    # What the module writes is what devbox-ctl reads (its model rejects unknown keys).
    config = hostconfig.HostConfig.model_validate(written)
    assert config.paths.users == Path("/etc/nixos/devbox/users.nix")
    assert config.deployed_manifest == Path("/etc/devbox/manifest.json")
    assert "devbox/manifest.json" in result["etc"]
    assert written == {
        "version": 1,
        "configRepo": "/etc/nixos",
        "usersFile": "devbox/users.nix",
        "containersFile": "devbox/containers.json",
        "generatedDir": "devbox/generated",
        "rebuildCommand": ["nixos-rebuild", "switch", "--flake", "/etc/nixos#orchestrator"],
        "opTokenFile": "/run/keys/devbox-op-token",
        "opVault": None,
        "tailscaleApiKeyFile": None,
        "tailnet": "-",
        "stateDir": "/var/lib/devbox",
        "privilegedCommand": PRIVILEGED,
        "podman": f"{STUB_STORE}-podman/bin/podman",
        "privilegedEnvironment": {"PATH": config.privileged_environment["PATH"]},
    }
    assert config.podman == Path(f"{STUB_STORE}-podman/bin/podman")
    assert result["tmpfiles"][0] == "d /var/lib/devbox 0700 root root - -"
    assert result["failedAssertions"] == []


# --- Nix in the containers through the host's daemon (docs/nix-in-containers.md) -------------


def test_the_hosts_daemon_is_bounded_sandboxed_and_collected(nix: str) -> None:
    result = evaluate(nix)
    assert manifest()["settings"]["nixDaemon"] is True
    settings = result["nixSettings"]
    assert result["failedAssertions"] == []
    assert (settings["max-jobs"], settings["cores"]) == (2, 2)
    assert (settings["min-free"], settings["max-free"]) == (5 << 30, 20 << 30)
    # Untrusted: nothing the module adds makes a container's user a trusted user.
    assert settings["trusted-users"] == ["root"]
    assert result["nixGc"] == {"automatic": True, "dates": "weekly"}
    slice_ = result["slices"]["devbox-nix"]
    assert slice_["sliceConfig"] == {"MemoryMax": "50%", "CPUQuota": "200%"}
    assert result["services"]["nix-daemon"]["serviceConfig"] == {"Slice": "devbox-nix.slice"}
    assert result["tmpfiles"][1:] == [
        "d /nix/var/nix/gcroots/devbox 0755 root root - -",
        "d /nix/var/nix/gcroots/devbox/alice 0755 alice users - -",
        "d /nix/var/nix/gcroots/devbox/bob 0755 bob users - -",
    ]
    assert result["extraDependencies"] == [f"{STUB_STORE}-tini"]
    # The owner's own primary group, whatever it is: podman's :U chowns in their namespace.
    grouped = evaluate(nix, extra='{ users.users.bob.group = "bob"; }')
    assert "d /nix/var/nix/gcroots/devbox/bob 0755 bob bob - -" in grouped["tmpfiles"]
    bounded = evaluate(
        nix,
        extra="""{ services.devbox.nix = {
          maxJobs = 1; cores = 4; memoryMax = "8G"; cpuQuota = "400%";
          minFree = 1024; maxFree = 4096; gcDates = "daily"; }; }""",
    )
    assert (bounded["nixSettings"]["max-jobs"], bounded["nixSettings"]["cores"]) == (1, 4)
    assert (bounded["nixSettings"]["min-free"], bounded["nixSettings"]["max-free"]) == (1024, 4096)
    assert bounded["slices"]["devbox-nix"]["sliceConfig"] == {
        "MemoryMax": "8G",
        "CPUQuota": "400%",
    }
    assert bounded["nixGc"]["dates"] == "daily"
    # Defaults only: a host's own Nix settings win, with no conflicting definitions.
    own = evaluate(
        nix,
        extra="""{ nix.settings = { max-jobs = 8; cores = 0; min-free = 1; max-free = 2; };
          nix.gc = { automatic = false; dates = "monthly"; }; }""",
    )
    assert own["failedAssertions"] == []
    assert [own["nixSettings"][key] for key in ("max-jobs", "cores", "min-free", "max-free")] == [
        8,
        0,
        1,
        2,
    ]
    assert own["nixGc"] == {"automatic": False, "dates": "monthly"}


def test_without_the_daemon_setting_the_module_leaves_nix_alone(nix: str, tmp_path: Path) -> None:
    generated = generate(
        tmp_path,
        "{ users.alice.uid = 1001; containers.nixDaemon = false; }",
        [{"name": "web", "owner": "alice"}],
    )
    result = evaluate(nix, generated)
    assert "max-jobs" not in result["nixSettings"]
    assert result["nixGc"]["automatic"] is False
    assert result["slices"] == {}
    assert "nix-daemon" not in result["services"]
    assert result["extraDependencies"] == []
    assert result["tmpfiles"] == ["d /var/lib/devbox 0700 root root - -"]
    assert "/nix/store" not in (generated / "users/1001/devbox-web.container").read_text()


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            '{ nix.settings.trusted-users = [ "root" "bob" ]; }',
            r"trusted-users makes bob trusted by the daemon.*Remove those entries",
        ),
        (
            # Every devbox user's primary group.
            '{ nix.settings.trusted-users = [ "root" "@users" ]; }',
            r"trusted-users makes alice, bob trusted by the daemon",
        ),
        (
            '{ nix.settings.trusted-users = [ "@wheel" ]; users.users.alice.extraGroups = [ "wheel" ]; }',
            r"trusted-users makes alice trusted by the daemon",
        ),
        (
            '{ nix.settings.trusted-users = [ "*" ]; }',
            r"trusted-users makes alice, bob trusted by the daemon",
        ),
        (
            "{ nix.settings.sandbox = false; }",
            r"nix\.settings\.sandbox is false: .*Remove the setting",
        ),
        (
            '{ nix.settings.sandbox = "relaxed"; }',
            r'nix\.settings\.sandbox is "relaxed": .*a derivation may turn it off',
        ),
        (
            "{ nix.enable = false; }",
            r"nix\.enable is false: .*containers\.nixDaemon = false",
        ),
        (
            '{ nix.settings.allowed-users = [ "@wheel" ]; }',
            r'nix\.settings\.allowed-users does not contain "\*".*containers\.nixDaemon = false',
        ),
        (
            '{ lib, ... }: { services.devbox.image = lib.mkForce { type = "derivation"; name = "i"; '
            'outPath = "/nix/store/00000000000000000000000000000000-i"; }; }',
            r"services\.devbox\.image has no `storeContents`.*containers\.nixDaemon = false",
        ),
    ],
)
def test_a_daemon_setting_that_breaks_the_containers_is_refused(
    nix: str, extra: str, expected: str
) -> None:
    messages = " ".join(evaluate(nix, extra=extra)["failedAssertions"])
    assert re.search(expected, messages, re.DOTALL), messages


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            "{ users.users.alice.uid = 1500; }",
            r"users\.users\.alice\.uid is 1500, but users\.nix gives alice uid 1001",
        ),
        (
            "{ users.users.alice.linger = false; }",
            r"users\.users\.alice\.linger is not true",
        ),
        (
            "{ users.users.alice.subUidRanges = [ { startUid = 100000; count = 65536; } ]; }",
            r"users\.users\.alice\.subUidRanges/subGidRanges must be exactly",
        ),
        (
            "{ users.users.mallory.subUidRanges = [ { startUid = 65601536; count = 10; } ]; }",
            r"mallory \(65601536–65601546\) overlaps alice",
        ),
        (
            f'{{ services.devbox.opTokenFile = "{STORE_DIR}/abc-token"; }}',
            rf"services\.devbox\.opTokenFile = \"{re.escape(STORE_DIR)}/abc-token\" must be an "
            rf"absolute path outside {re.escape(STORE_DIR)}",
        ),
        (
            '{ services.devbox.tailscaleApiKeyFile = "keys/api"; }',
            r"services\.devbox\.tailscaleApiKeyFile = \"keys/api\" must be an absolute path",
        ),
        (
            '{ services.devbox.stateDir = "var/lib/devbox"; }',
            r"services\.devbox\.stateDir must be an absolute path",
        ),
        (
            '{ services.devbox.usersFile = "/etc/nixos/users.nix"; }',
            r"relative to services\.devbox\.configRepo",
        ),
        (
            "{ security.sudo.execWheelOnly = true; }",
            r"security\.sudo\.execWheelOnly .*Set it to false",
        ),
        (
            "{ security.sudo.enable = false; }",
            r"enable security\.sudo or security\.sudo-rs",
        ),
    ],
    ids=[
        "other-uid",
        "no-linger",
        "moved-range",
        "overlapping-range",
        "token-in-store",
        "relative-key-file",
        "relative-state-dir",
        "absolute-users-file",
        "exec-wheel-only",
        "no-sudo",
    ],
)
def test_assertion_names_the_option_and_the_fix(nix: str, extra: str, expected: str) -> None:
    failed = evaluate(nix, extra=extra)["failedAssertions"]
    assert any(re.search(expected, message, re.DOTALL) for message in failed), failed


def test_a_manifest_of_another_version_is_refused_by_name(nix: str, tmp_path: Path) -> None:
    generated = tmp_path / "generated"
    writable_copy(EXAMPLE, generated)
    data = manifest(generated) | {"version": 2, "users": "not read"}
    (generated / "manifest.json").write_text(json.dumps(data))
    result = evaluate(nix, generated)
    assert any("manifest.json has version 2" in message for message in result["failedAssertions"])
    assert [name for name in result["services"] if name != "devbox-cleanup"] == []


def test_generated_dir_given_as_a_string_is_refused(nix: str) -> None:
    extra = f'{{ lib, ... }}: {{ services.devbox.generatedDir = lib.mkForce "{EXAMPLE}"; }}'
    failed = evaluate(nix, extra=extra)["failedAssertions"]
    assert any("give it as a Nix path" in message for message in failed), failed


# --- the generated units under Quadlet, as the module installs them -------------------------


def install_like_the_module(generated: Path, root: Path) -> Path:
    """root/etc/containers/systemd/users/<UID>/<file>, as environment.etc makes them.

    Each file is a symlink into a static copy (as /etc/… links into /etc/static), relative so
    that it resolves inside the tree wherever the tree is mounted.
    """
    containers = root / "etc" / "containers"
    for path, file in manifest(generated)["files"].items():
        if file["uid"] is None:
            continue
        static = containers / "static" / path
        static.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(generated / path, static)
        link = containers / "systemd" / path
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(static, link.parent))
    for directory in (root, *root.rglob("*")):
        if directory.is_dir():
            directory.chmod(0o755)
        elif not directory.is_symlink():
            directory.chmod(0o644)
    return containers


def can_fake_etc() -> bool:
    """Whether Quadlet can be run as another uid with a private /etc view (root, unshare)."""
    if os.geteuid() != 0 or not (shutil.which("unshare") and shutil.which("setpriv")):
        return False
    return subprocess.run(["unshare", "-m", "true"], check=False).returncode == 0


def run_quadlet_as(quadlet: str, uid: int, containers: Path, tmp_path: Path) -> str:
    """Quadlet -user -dryrun for uid, searching its own directories (not QUADLET_UNIT_DIRS).

    In a private mount namespace, /etc/containers is the installed tree and /etc/passwd knows
    the uid, so Quadlet finds /etc/containers/systemd/users/<uid>/ exactly as on the host.
    """
    home = f"/nonexistent/devbox-test-home-{uid}"
    tmp_path.mkdir(parents=True, exist_ok=True)
    # A copy the uid can execute wherever the original lives.
    runnable = tmp_path / "quadlet"
    shutil.copyfile(quadlet, runnable)
    runnable.chmod(0o755)
    passwd = tmp_path / "passwd"
    passwd.write_text(
        Path("/etc/passwd").read_text() + f"devbox{uid}:x:{uid}:{uid}::{home}:/bin/sh\n"
    )
    script = (
        f"mount --bind {shlex.quote(str(containers))} /etc/containers && "
        f"mount --bind {shlex.quote(str(passwd))} /etc/passwd && "
        f"exec setpriv --reuid {uid} --regid {uid} --clear-groups "
        f"env -u XDG_CONFIG_HOME HOME={home} {shlex.quote(str(runnable))} -dryrun -user"
    )
    result = subprocess.run(
        ["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"quadlet refused the units of uid {uid}:\n{result.stderr}"
    return result.stdout


def expected_services(generated: Path, uid: int) -> set[str]:
    data = manifest(generated)
    services = {c["service"] for c in data["containers"].values() if c["uid"] == uid}
    volumes = {
        Path(path).name.removesuffix(".volume") + "-volume.service"
        for path, file in data["files"].items()
        if file["uid"] == uid and file["kind"] == "volume"
    }
    return services | volumes


GENERATED_TREES = [EXAMPLE] + [VM_INPUT / "generated" / state for state in VM_STATES]


@pytest.mark.parametrize(
    "generated",
    GENERATED_TREES,
    ids=["example"] + [f"vm-{state}" for state in VM_STATES],
)
def test_units_pass_quadlet_in_the_installed_layout(generated: Path, quadlet: str) -> None:
    # Outside pytest's private temporary folder: Quadlet runs as the units' uid.
    with tempfile.TemporaryDirectory(prefix="devbox-quadlet-") as name:
        shared = Path(name)
        shared.chmod(0o755)
        check_quadlet_layout(generated, quadlet, shared)


def check_quadlet_layout(generated: Path, quadlet: str, tmp_path: Path) -> None:
    containers = install_like_the_module(generated, tmp_path / "root")
    for user in manifest(generated)["users"].values():
        uid = user["uid"]
        if can_fake_etc():
            output = run_quadlet_as(quadlet, uid, containers, tmp_path / str(uid))
            unit_dir = f"/etc/containers/systemd/users/{uid}"
        else:
            # Without root (as in a Nix build): the same directory, named explicitly.
            unit_dir = str(containers / "systemd/users" / str(uid))
            result = subprocess.run(
                [quadlet, "-dryrun", "-user"],
                env={**os.environ, "QUADLET_UNIT_DIRS": unit_dir},
                capture_output=True,
                text=True,
                check=False,
            )
            assert result.returncode == 0, result.stderr
            output = result.stdout
        generated_services = set(re.findall(r"^---(.+)---$", output, re.MULTILINE))
        assert generated_services == expected_services(generated, uid)
        for container in user["containers"]:
            assert f"SourcePath={unit_dir}/devbox-{container}.container" in output


# --- the VM test's generated trees ------------------------------------------------------------


@pytest.mark.parametrize("state", VM_STATES)
def test_vm_test_generated_tree_is_up_to_date(state: str, nix: str) -> None:
    result = run_cli(
        "check",
        "--users",
        str(VM_INPUT / "users.nix"),
        "--containers",
        str(VM_INPUT / f"containers-{state}.json"),
        "--out",
        str(VM_INPUT / "generated" / state),
    )
    assert result.code == 0, result.out + result.err


def test_vm_test_states_change_exactly_what_the_test_asserts() -> None:
    base, changed, removed = (manifest(VM_INPUT / "generated" / state) for state in VM_STATES)
    assert base["containers"]["alpha"]["memory"] != changed["containers"]["alpha"]["memory"]
    changed_files = {
        path for path in base["files"] if base["files"][path] != changed["files"].get(path)
    }
    assert changed_files == {"users/1001/devbox-alpha.container"}
    assert set(removed["containers"]) == {"alpha"}
    assert removed["containers"]["alpha"] == changed["containers"]["alpha"]
