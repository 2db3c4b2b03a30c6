"""Which programs each of the module's units runs by name, and which package ships each.

`devbox-ctl` looks its programs up on PATH (tools/process.py `find`): the evaluator, git and
the users' systemd managers (tools/nix.py, gitrepo.py, systemd.py), plus the argv templates
of config.json: the rebuild, and on a fleet's control host the ssh and deploy commands.
podman is named by its store path (config.json's `podman`), never looked up.

tests/nix/test_unit_paths.py checks each unit's PATH against these;
tests/member/test_fleet_verbs.py checks that the control host's cleanup runs nothing else.
"""

from __future__ import annotations

from devbox.host.hostconfig import HostConfig

# What devbox-ctl's own modules run by name, on every host.
DEVBOX_PROGRAMS = frozenset({"nix-instantiate", "git", "systemctl", "systemd-run"})

# What NixOS puts on every service's PATH after its `path` (nixos/modules/system/boot/
# systemd.nix, serviceConfig: `path = mkAfter [ coreutils findutils gnugrep gnused systemd ]`).
NIXOS_SERVICE_DEFAULTS = ("coreutils", "findutils", "gnugrep", "gnused", "systemd")

# The bin/ of each package the module names, as far as devbox runs it (by package name, as
# the stub packages are named: tests/nix/stub-pkgs.nix).
PACKAGE_PROGRAMS = {
    "devbox": {"devbox-ctl", "devbox-privileged"},
    "git": {"git"},
    "nix": {"nix", "nix-instantiate", "nix-build", "nix-store"},
    "nixos-rebuild": {"nixos-rebuild"},
    "systemd": {"systemctl", "systemd-run"},
    "openssh": {"ssh", "scp"},
    "colmena": {"colmena"},
    "deploy-rs": {"deploy"},
    "podman": {"podman"},
    "gnutar": {"tar"},
    "gzip": {"gzip"},
    "util-linux": {"setpriv", "nsenter"},
    "1password-cli": {"op"},
    "coreutils": {"cat", "ls"},
    "findutils": {"find"},
    "gnugrep": {"grep"},
    "gnused": {"sed"},
}


def cleanup_programs(config: HostConfig) -> set[str]:
    """What `devbox-ctl cleanup` runs by name on a host with this config.json."""
    programs = {"devbox-ctl", *DEVBOX_PROGRAMS, config.rebuild_command[0]}
    if config.role == "control":
        programs |= {config.ssh_command[0], config.deploy_command[0]}
    return programs


def privileged_programs(config: HostConfig) -> set[str]:
    """What the verbs devbox-privileged runs need by name: cleanup's, and 1Password's `op`
    (create and rotate-key read the Tailscale key with it)."""
    return cleanup_programs(config) | {"op"}


def package_name(entry: str) -> str:
    """A stub package's name from a PATH entry or store path (`/nix/store/<hash>-git/bin`)."""
    base = entry.removesuffix("/bin").rsplit("/", 1)[-1]
    name = base.split("-", 1)[1] if base.count("-") and len(base.split("-", 1)[0]) == 32 else base
    for known in sorted(PACKAGE_PROGRAMS, key=len, reverse=True):
        if name == known or name.startswith(f"{known}-"):
            return known
    return name


def programs_of(entries: list[str]) -> set[str]:
    """The programs a PATH made of these packages (store paths or their bin/) holds."""
    found: set[str] = set()
    for entry in entries:
        found |= PACKAGE_PROGRAMS.get(package_name(entry), set())
    return found
