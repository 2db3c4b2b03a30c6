"""Debian's OpenSSH for the simulated fleet: an sshd of its own per host, on 127.0.0.1.

Each host of a test's fleet runs the real `sshd` (Debian 12's openssh-server, 9.2p1; the
README's test command installs it) with a configuration of its own in the test's directory:
its own host key and port, root's authorized key (one client key pair per fleet), keys
only (no password, no keyboard-interactive, no PAM), and `SetEnv` carrying the host's own
environment (Host.env: the PATH with its stand-ins and its `devbox-ctl`, DEVBOX_CONFIG, its
podman storage), so that the remote command runs in that host's environment.

The control host's `ssh` is the real client too, run with the module's sshCommand and a
client configuration of the fleet's (`-F`, see `Network.ssh_command`): OpenSSH reads
~/.ssh/config from root's passwd home, never $HOME, and a test must not write /root/.ssh on
a machine others share. That file maps each host's name to 127.0.0.1 and its port, with the
fleet's key and the hosts' keys (StrictHostKeyChecking yes: a wrong key is refused).

What the real sshd does that a test must know of:
- root's login shell (bash here) runs the remote line with `-c`, from root's home (/root),
  with HOME=/root, USER, LOGNAME, SHELL, MAIL and SSH_* beside what SetEnv gives (SetEnv
  overrides sshd's own PATH; tests/member/test_ssh_tool.py checks it on this version).
  Debian builds bash to read ~/.bashrc when sshd started it (SSH_SOURCE_BASHRC), unless
  SHLVL says it is a nested shell: SetEnv gives SHLVL=1, so the test machine's own
  /root/.bashrc never changes a host's PATH. Remote commands therefore name absolute paths.
- sshd needs its privilege separation directory /run/sshd (the package's unit creates it at
  boot): made here when missing, as the package would.
- A stopped sshd is a host that is down: ssh exits 255 with "ssh: connect to host 127.0.0.1
  port N: Connection refused", the real message.
- Every sshd is a child of the test's process, ends with it (PR_SET_PDEATHSIG) and is stopped
  by the fixture's finalizer; `Sshd.stop` also ends the sessions it forked.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from devbox.host import hostconfig
from support import require_root, require_tool

SSHD = "/usr/sbin/sshd"  # sshd re-executes itself and refuses a relative path
PRIVSEP = Path("/run/sshd")
LOOPBACK = "127.0.0.1"
START_BUDGET = 15.0  # seconds for an sshd to say it listens
ATTEMPTS = 8  # ports tried when another process took the one picked
PR_SET_PDEATHSIG = 1


def require_openssh() -> None:
    """Skip (fail under DEVBOX_REQUIRE_TOOLS=1) without OpenSSH's server and client, or root.

    sshd runs as root: it drops privileges into /run/sshd and becomes root for a session.
    """
    require_tool("sshd (openssh-server)", SSHD if Path(SSHD).exists() else None)
    require_tool("ssh (openssh-client)", shutil.which("ssh"))
    require_tool("ssh-keygen (openssh-client)", shutil.which("ssh-keygen"))
    require_root("sshd runs as root, as on a fleet host")


def keygen(path: Path, comment: str) -> None:
    """A new ed25519 key pair at path and path.pub, without a passphrase."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        capture_output=True,
    )


def free_port() -> int:
    """A port nobody listens on now (the kernel's pick for port 0); sshd may still lose it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def _quoted(text: str) -> str:
    """One word of sshd_config (misc.c `argv_split`: double quotes, backslash escapes)."""
    if "\n" in text or "\r" in text:
        raise ValueError(f"a line break cannot pass through sshd_config: {text!r}")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _end_with_parent() -> None:
    """In the child before exec: SIGTERM when the process that started sshd ends."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def _children(pid: int) -> list[int]:
    """The processes whose parent is pid (sshd's sessions)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid …: comm may hold blanks and parentheses.
        if int(stat.rpartition(")")[2].split()[1]) == pid:
            found.append(int(entry.name))
    return found


@dataclass
class Sshd:
    """One host's sshd: its directory holds its configuration, host key and log."""

    hostname: str  # the name ssh is given (alpha.fleet.test)
    directory: Path
    env: dict[str, str]
    authorized_key: str
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def config(self) -> Path:
        return self.directory / "sshd_config"

    @property
    def log(self) -> Path:
        return self.directory / "sshd.log"

    @property
    def host_key(self) -> Path:
        return self.directory / "ssh_host_ed25519_key"

    def prepare(self) -> None:
        self.directory.mkdir(parents=True)
        keygen(self.host_key, f"host key of {self.hostname}")
        (self.directory / "authorized_keys").write_text(self.authorized_key)
        self.log.touch(mode=0o600)

    def known_host(self) -> str:
        """The known_hosts line for this host (by its HostKeyAlias, whatever the port)."""
        return f"{self.hostname} {Path(f'{self.host_key}.pub').read_text().strip()}\n"

    def _write_config(self) -> None:
        environment = {**self.env, "SHLVL": "1"}
        setenv = " ".join(_quoted(f"{key}={value}") for key, value in sorted(environment.items()))
        lines = [
            f"ListenAddress {LOOPBACK}",
            f"Port {self.port}",
            f"HostKey {self.host_key}",
            f"AuthorizedKeysFile {self.directory / 'authorized_keys'}",
            f"PidFile {self.directory / 'sshd.pid'}",
            "AuthenticationMethods publickey",
            "PermitRootLogin prohibit-password",
            "AllowUsers root",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            # The test's directories lie under /tmp (mode 1777), which StrictModes refuses
            # for the authorized keys file's path; the files themselves are root's, 0600.
            "StrictModes no",
            "PermitUserRC no",
            "PermitUserEnvironment no",
            "AllowAgentForwarding no",
            "AllowTcpForwarding no",
            "X11Forwarding no",
            "PrintMotd no",
            # VERBOSE: each connection and session is in the log (`Sshd.connections`).
            "LogLevel VERBOSE",
            # sshd keeps the first SetEnv line only: every variable is on this one.
            f"SetEnv {setenv}",
        ]
        self.config.write_text("\n".join(lines) + "\n")
        self.config.chmod(0o600)

    def start(self, port: int | None = None) -> None:
        """Start sshd on port (its own, or a free one), retrying where another took it."""
        PRIVSEP.mkdir(mode=0o755, exist_ok=True)
        for _ in range(ATTEMPTS):
            self.port = port or free_port()
            port = None  # a port taken meanwhile: the next attempt picks another
            if self._listen():
                return
        raise AssertionError(f"sshd for {self.hostname} found no free port: see {self.log}")

    def _listen(self) -> bool:
        """One start; True once it listens, False when the port was taken."""
        self._write_config()
        offset = self.log.stat().st_size
        with self.log.open("ab") as errors:
            self.process = subprocess.Popen(
                [SSHD, "-D", "-f", str(self.config), "-E", str(self.log)],
                stdin=subprocess.DEVNULL,
                stdout=errors,
                stderr=errors,
                cwd=self.directory,
                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
                preexec_fn=_end_with_parent,  # noqa: PLW1509 (no threads run yet here)
            )
        listening = f"Server listening on {LOOPBACK} port {self.port}."
        deadline = time.monotonic() + START_BUDGET
        while time.monotonic() < deadline:
            said = self.log.read_bytes()[offset:].decode(errors="replace")
            if listening in said:
                return True
            if self.process.poll() is not None:
                self.process = None
                if "Address already in use" in said:
                    return False
                raise AssertionError(f"sshd for {self.hostname} did not start:\n{said}")
            time.sleep(0.02)
        self.stop()
        raise AssertionError(f"sshd for {self.hostname} did not listen in {START_BUDGET} s")

    def stop(self) -> None:
        """Stop sshd and the sessions it forked: the host refuses connections from now."""
        process, self.process = self.process, None
        if process is None:
            return
        # Sessions first, while the listener lives to reap them (an orphan's end is reaped
        # by PID 1, which on a container may never do it).
        sessions = _children(process.pid)
        for pid in sessions:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while sessions and time.monotonic() < deadline:
            sessions = [pid for pid in sessions if Path(f"/proc/{pid}").exists()]
            time.sleep(0.02)
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def connections(self) -> int:
        """How many connections this sshd accepted so far (its log, LogLevel VERBOSE)."""
        return self.log.read_text(errors="replace").count("Connection from ")


@dataclass
class Network:
    """The fleet's sshd per host, its client key, and the ssh_config that reaches them."""

    directory: Path
    servers: dict[str, Sshd] = field(default_factory=dict)

    @property
    def identity(self) -> Path:
        return self.directory / "id_ed25519"

    @property
    def ssh_config(self) -> Path:
        return self.directory / "ssh_config"

    @property
    def known_hosts(self) -> Path:
        return self.directory / "known_hosts"

    def ssh_command(self) -> list[str]:
        """The module's sshCommand (hostconfig.DEFAULT_SSH) with `-F <ssh_config>` before `--`.

        Nothing else differs: BatchMode=yes, ConnectTimeout=10, `--`, `{reach}` as written.
        """
        template = list(hostconfig.DEFAULT_SSH)
        end = template.index("--")
        return [*template[:end], "-F", str(self.ssh_config), *template[end:]]

    def add(self, hostname: str, env: dict[str, str]) -> Sshd:
        """Start an sshd for hostname, running remote commands in env."""
        if not self.identity.exists():
            self.directory.mkdir(parents=True, exist_ok=True)
            keygen(self.identity, "root of the fleet's control host")
        key = Path(f"{self.identity}.pub").read_text()
        server = Sshd(hostname, self.directory / hostname, env, key)
        server.prepare()
        self.servers[hostname] = server
        server.start()
        self._write_client_config()
        return server

    def down(self, hostname: str, down: bool = True) -> None:
        """Stop a host's sshd, or start it again on its port (another if that was taken)."""
        server = self.servers[hostname]
        if down:
            server.stop()
        elif server.process is None:
            server.start(server.port)
            self._write_client_config()

    def connections(self) -> int:
        """Connections all the hosts' sshd accepted so far."""
        return sum(server.connections() for server in self.servers.values())

    def close(self) -> None:
        """Stop every sshd (a fixture's finalizer: runs when a test failed too)."""
        for server in self.servers.values():
            server.stop()

    def _write_client_config(self) -> None:
        blocks = [
            f"Host {server.hostname}\n"
            f"  HostName {LOOPBACK}\n"
            f"  Port {server.port}\n"
            f"  HostKeyAlias {server.hostname}\n"
            for server in self.servers.values()
        ]
        common = (
            "Host *\n"
            f"  IdentityFile {self.identity}\n"
            "  IdentitiesOnly yes\n"
            "  IdentityAgent none\n"
            f"  UserKnownHostsFile {self.known_hosts}\n"
            "  GlobalKnownHostsFile /dev/null\n"
            "  StrictHostKeyChecking yes\n"
            "  UpdateHostKeys no\n"
            "  CheckHostIP no\n"
        )
        # Replaced whole (rename), never seen half written by an ssh starting meanwhile.
        _replace(self.known_hosts, "".join(s.known_host() for s in self.servers.values()))
        _replace(self.ssh_config, "".join(blocks) + common)


def _replace(path: Path, text: str) -> None:
    staged = path.with_name(f".{path.name}.new")
    staged.write_text(text)
    staged.chmod(0o600)
    staged.replace(path)
