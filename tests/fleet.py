"""A simulated fleet on this machine: a control host and N member hosts (docs/fleet.md).

Real, on every host (each is a tests/host.py host of its own): podman with its own storage,
volumes, secrets and containers; Quadlet; the generator and devbox-ctl itself, run by the
member's own `devbox-ctl` (a launcher of this checkout) in the member's own environment.
Real on the control host: the config repository (git), users.nix through Nix.

Real between them: OpenSSH (tests/openssh.py). Each member (and the control host, when it is
a host of the fleet) runs its own Debian `sshd` on 127.0.0.1 and a port of its own, which
runs the remote line with root's shell in that host's environment (sshd's SetEnv). The
control host's `ssh` is the real client with config.json's sshCommand, which is the module's
default (nixos/orchestrator.nix `services.devbox.fleet.sshCommand`: `ssh -o BatchMode=yes
-o ConnectTimeout=10 -- {reach}`) with one difference: `-F <the fleet's ssh_config>` before
`--`. OpenSSH reads ~/.ssh/config from root's passwd home, never $HOME, and a test must not
write /root/.ssh on a shared machine; that file says what a NixOS control host's own
~/.ssh/config or DNS would: `<name>.fleet.test` is 127.0.0.1 at that host's port, with the
fleet's key and the hosts' known keys (with -F, ssh reads neither ~/.ssh/config nor
/etc/ssh/ssh_config: this machine's settings change nothing). Reach values stay
`root@<name>.fleet.test`, as users.nix declares them. A host that is down (`Fleet.down`) is
a stopped sshd: ssh's real exit 255 and "Connection refused".

Stood in (tests/stand_ins/): the deploy tool colmena (`colmena.py`: `apply --on NODE`
activates the node's slice with what the nixos-rebuild stand-in does on a host; it cannot be
installed here), and, on each host, what tests/host.py stands in for (the user's systemd
manager, 1Password, Tailscale). $DEVBOX_TEST_FLEET names the JSON file that maps each host's
name to its environment for colmena; `Fleet.down` and `Fleet.fail_deploy` change it during a
test (a host that is down refuses colmena's push too).

What a member ran: its `devbox-ctl` launcher appends its arguments to the host's
devbox-ctl.jsonl (`Fleet.remote_argvs`), the words as the member's shell parsed them; its
sshd's log counts the connections (`Fleet.connections`).

The control host's environment is the test process's (devbox-ctl runs in-process there, as
in every host test): colmena first on its PATH, its config.json with role "control". The
members' config.json say role "member", hostName, and no config repository.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from lifecycle.lifecycle_support import as_rootless

from devbox.host import hostconfig
from devbox.tools import deploy, process, ssh
from host import USERS_NIX, Host, build_host
from openssh import Network
from support import run_cli, stand_in_launcher

DOMAIN = "fleet.test"
# The launcher a member's root finds as `devbox-ctl` on its PATH (remoteCommand's default);
# it records the arguments it was given (the remote line as the member's shell split it).
DEVBOX_CTL = """#!{python}
import json, sys
with open({log!r}, "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
from devbox.cli import main
main()
"""


@dataclass
class Fleet:
    """The control host, the members by name, their sshd, and the fleet file colmena reads."""

    base: Path
    control: Host
    hosts: dict[str, Host]
    file: Path
    network: Network

    @staticmethod
    def reach(name: str) -> str:
        """A member's SSH destination."""
        return f"root@{name}.{DOMAIN}"

    def config(self) -> hostconfig.HostConfig:
        """The control host's config.json."""
        return hostconfig.load(self.control.config_path)

    def remote(self, name: str) -> ssh.Remote:
        """How the control host reaches a member's devbox-ctl (its config.json's templates)."""
        return self.config().remote(name, self.reach(name))

    def ssh(
        self, name: str, *args: str, stdin: str | None = None, timeout: float = 120
    ) -> ssh.Reply | ssh.Unreachable:
        """devbox-ctl ARGS on a member, over OpenSSH as the control host runs it (tools/ssh.py)."""
        return ssh.run(self.remote(name), args, stdin=stdin, timeout=timeout)

    def _change(self, name: str, **fields: Any) -> None:
        fleet = json.loads(self.file.read_text())
        fleet["hosts"][name].update(fields)
        self.file.write_text(json.dumps(fleet))

    def down(self, name: str, down: bool = True) -> None:
        """Stop a member's sshd (and make colmena's push fail), or start it again."""
        self.network.down(f"{name}.{DOMAIN}", down)
        self._change(name, down=down)

    def port(self, name: str) -> int:
        """The port a member's sshd listens on (127.0.0.1)."""
        return self.network.servers[f"{name}.{DOMAIN}"].port

    def remote_argvs(self, name: str | None = None) -> list[list[str]]:
        """The arguments devbox-ctl was run with on a member (on every host without a name)."""
        hosts = [self.hosts[name]] if name else list(self.hosts.values())
        return [
            json.loads(line)
            for host in hosts
            if (host.base / "devbox-ctl.jsonl").exists()
            for line in (host.base / "devbox-ctl.jsonl").read_text().splitlines()
        ]

    def connections(self) -> int:
        """SSH connections all the hosts' sshd accepted so far."""
        return self.network.connections()

    def close(self) -> None:
        """Stop every host's sshd (the fixture's finalizer, after a failure too)."""
        self.network.close()

    def fail_deploy(self, name: str, fail: bool = True) -> None:
        """Make colmena's activation fail on this member (the others still deploy)."""
        self._change(name, failDeploy=fail)

    def slice_dir(self, name: str) -> Path:
        """The member's slice of the control host's generated tree."""
        return self.control.repo / "devbox" / "generated" / "hosts" / name

    def declare(self, records: Iterable[dict[str, Any]]) -> None:
        """Write these records (each naming its host) as containers.json, generate, commit.

        The control host's generator writes one slice per host (generated/hosts/NAME), an
        empty one for a host without containers; nothing is deployed until `deploy`.
        """
        repo = self.control.repo
        (repo / "devbox" / "containers.json").write_text(
            json.dumps({"version": 1, "containers": list(records)}, indent=2) + "\n"
        )
        result = run_cli(
            "generate",
            "--users",
            str(repo / "devbox" / "users.nix"),
            "--containers",
            str(repo / "devbox" / "containers.json"),
            "--out",
            str(repo / "devbox" / "generated"),
        )
        assert result.code == 0, result.err
        git = ["git", "-C", str(repo), "-c", "user.name=admin", "-c", "user.email=admin@host"]
        subprocess.run([*git, "add", "-A"], check=True)
        subprocess.run([*git, "commit", "-qm", "fleet test: declare"], check=True)

    def deploy(self, name: str) -> process.Result:
        """Deploy one member with the control host's deployCommand (colmena stand-in)."""
        config = self.config()
        lines: list[str] = []
        result = deploy.deploy(
            config.deploy_command,
            host=name,
            reach=self.reach(name),
            flake=config.repository,
            on_line=lines.append,
        )
        assert result.ok, "\n".join(lines)
        return result

    def idle_volume(self, name: str, container: str, owner_uid: int, since: str) -> Path:
        """Create a container's volume on a host, idle since `since` by its activity record.

        The record is the monitor's format (docs/container-interface.md); the files are given
        to the owner's mapped dev, as rootless podman would have them.
        """
        assert self.hosts[name].podman("volume", "create", f"{container}-data").returncode == 0
        home = self.volume_path(name, f"{container}-data")
        state = home / ".local" / "state" / "devbox"
        state.mkdir(parents=True)
        monitor = {"startedAt": since, "updatedAt": since, "intervalSeconds": 60}
        record = {"version": 1, "container": container, "monitor": monitor, "signals": {}}
        (state / "activity.json").write_text(json.dumps(record))
        return as_rootless(home, owner_uid)

    def volume_path(self, name: str, volume: str) -> Path:
        """Where a member's podman keeps a volume's files."""
        found = self.hosts[name].podman("volume", "inspect", volume, "--format", "{{.Mountpoint}}")
        assert found.returncode == 0, found.stderr
        return Path(found.stdout.strip())


def users_nix(names: Iterable[str]) -> str:
    """The control host's users.nix: tests/host.py's users, and a `hosts` entry per member."""
    hosts = "".join(
        f'    {name} = {{ reach = "{Fleet.reach(name)}"; '
        'capacity = { cpus = 16; memory = "64G"; containers = 8; }; };\n'
        for name in names
    )
    return USERS_NIX.replace(
        "  containers = {", f"  hosts = {{\n{hosts}  }};\n  containers = {{", 1
    )


def _launcher(host: Host) -> Host:
    """Put `devbox-ctl` on the host's PATH, as root's SSH session on NixOS has it."""
    launcher = host.stand_ins.bin / "devbox-ctl"
    launcher.write_text(
        DEVBOX_CTL.format(python=sys.executable, log=str(host.base / "devbox-ctl.jsonl"))
    )
    launcher.chmod(0o755)
    return host


def _member(base: Path, name: str, quadlet: str) -> Host:
    settings = {"role": "member", "hostName": name, "configRepo": None, "rebuildCommand": None}
    return _launcher(build_host(base / name, quadlet, settings))


def make_fleet(
    base: Path,
    monkeypatch: pytest.MonkeyPatch,
    quadlet: str,
    names: Iterable[str],
    control: str = "control",
) -> Fleet:
    """The control host (this process's environment) and a host per name.

    With `control` one of the names, that host is the control host and a host of the fleet
    at once (as alpha in examples/fleet); otherwise the control host is a host of its own,
    outside `hosts`.
    """
    names = list(names)
    hosts = {name: _member(base, name, quadlet) for name in names if name != control}
    chief = _launcher(build_host(base / control, quadlet, {"role": "control", "hostName": control}))
    if control in names:
        hosts = {name: chief if name == control else hosts[name] for name in names}
    (chief.repo / "devbox" / "users.nix").write_text(users_nix(hosts))
    # colmena finds the hive from its working directory (the config repository) upwards.
    (chief.repo / "flake.nix").write_text("# The colmena stand-in only looks for this file.\n{ }\n")
    fleet_bin = base / "fleet-bin"
    fleet_bin.mkdir()
    (fleet_bin / "colmena").write_text(stand_in_launcher("colmena.py"))
    (fleet_bin / "colmena").chmod(0o755)
    file = base / "fleet.json"
    chief.env |= {"PATH": f"{fleet_bin}:{chief.env['PATH']}", "DEVBOX_TEST_FLEET": str(file)}
    file.write_text(
        json.dumps(
            {
                "generated": str(chief.repo / "devbox" / "generated"),
                "hosts": {
                    name: {"reach": Fleet.reach(name), "env": host.env}
                    for name, host in hosts.items()
                },
            }
        )
    )
    network = Network(base / "openssh")
    try:
        for name, host in hosts.items():
            network.add(f"{name}.{DOMAIN}", host.env)
    except BaseException:
        network.close()
        raise
    settings = json.loads(chief.config_path.read_text())
    settings["privilegedEnvironment"] = dict(chief.env)
    settings["sshCommand"] = network.ssh_command()
    chief.config_path.write_text(json.dumps(settings))
    for key, value in chief.env.items():
        monkeypatch.setenv(key, value)
    return Fleet(base, chief, hosts, file, network)


def remove_all(fleet: Fleet) -> None:
    """Remove every host's containers (the test's podman storage goes with tmp_path)."""
    for host in {id(h): h for h in [fleet.control, *fleet.hosts.values()]}.values():
        host.podman("rm", "--all", "--force", "--time", "0")
