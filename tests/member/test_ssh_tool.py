"""tools/ssh.py over the real OpenSSH, and tools/deploy.py against the colmena stand-in.

The "remote" hosts here are two sshd on 127.0.0.1 (tests/openssh.py), each running remote
commands in an environment of its own, reached with the module's sshCommand exactly as the
fleet's hosts are (tests/fleet.py). No podman is needed.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from devbox.host import hostconfig
from devbox.tools import deploy, process, ssh
from openssh import Network, require_openssh
from support import stand_in_launcher

WORDS = ["a  b", "it's", "`id`", "semi;colon", "new\nline", "*", "-x", ""]


def replied(reply: ssh.Reply | ssh.Unreachable) -> ssh.Reply:
    assert isinstance(reply, ssh.Reply), reply
    return reply


@pytest.fixture
def network(tmp_path: Path) -> Iterator[Network]:
    """Two hosts, one and two: an sshd each, PATH led by a bin/ of their own."""
    require_openssh()
    network = Network(tmp_path / "openssh")
    try:
        for name in ("one", "two"):
            own = tmp_path / name / "bin"
            own.mkdir(parents=True)
            (own / "which-host").write_text(f"#!/bin/sh\necho {name}\n")
            (own / "which-host").chmod(0o755)
            network.add(name, {"PATH": f"{own}:{os.environ['PATH']}", "WHO": name})
        yield network
    finally:
        network.close()


def reach(network: Network, name: str, *command: str) -> ssh.Remote:
    """How the control host reaches `command` on a host: the module's sshCommand, -F added."""
    return ssh.Remote(name, f"root@{name}", tuple(network.ssh_command()), command)


@pytest.fixture
def remotes(network: Network) -> dict[str, ssh.Remote]:
    """printf on one and on two."""
    return {name: reach(network, name, "printf", "%s\\n") for name in network.servers}


@pytest.fixture
def colmena(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The colmena stand-in first on PATH, with a fleet file of two hosts, one and two."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "colmena").write_text(stand_in_launcher("colmena.py"))
    (bin_dir / "colmena").chmod(0o755)
    hosts = {
        name: {"reach": f"root@{name}", "env": {"PATH": os.environ["PATH"]}}
        for name in ("one", "two")
    }
    fleet = tmp_path / "fleet.json"
    fleet.write_text(json.dumps({"generated": str(tmp_path / "generated"), "hosts": hosts}))
    monkeypatch.setenv("DEVBOX_TEST_FLEET", str(fleet))
    monkeypatch.setenv("DEVBOX_TEST_CALLS", str(tmp_path / "calls.jsonl"))
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")


def test_every_remote_word_arrives_as_it_was(
    remotes: dict[str, ssh.Remote], tmp_path: Path
) -> None:
    """root's shell on the host (bash, from /root) parses the line: absolute paths here."""
    mark = tmp_path / "pwned"
    words = [*WORDS, f"$(touch {mark})", f"`touch {mark}`", f"; touch {mark}"]
    reply = ssh.run(remotes["one"], words, timeout=30)
    assert replied(reply).ok, reply
    # printf's format "%s\n" repeats per word: each word, then a newline.
    assert reply.stdout == "".join(f"{word}\n" for word in words)
    assert not mark.exists()


def test_the_remote_command_runs_in_the_hosts_own_environment(
    network: Network, tmp_path: Path
) -> None:
    """sshd's SetEnv gives the host's PATH whole (sshd's own default and root's ~/.bashrc
    change nothing): a program is found on the host's PATH, as devbox-ctl is on a member."""
    shell = reach(network, "two", "sh", "-c")
    reply = replied(ssh.run(shell, ['echo "$PATH"; echo "$WHO"; which-host'], timeout=30))
    assert reply.stdout.splitlines() == [network.servers["two"].env["PATH"], "two", "two"]
    assert replied(ssh.run(reach(network, "one", "which-host"), [], timeout=30)).stdout == "one\n"


def test_the_argv_is_the_template_then_the_quoted_words() -> None:
    remote = ssh.Remote(
        "alpha", "root@alpha", ("ssh", "-p", "2222", "{reach}"), ("/run/x/devbox-ctl", "--debug")
    )
    assert remote.argv("status", "my box") == [
        "ssh",
        "-p",
        "2222",
        "root@alpha",
        "/run/x/devbox-ctl",
        "--debug",
        "status",
        "'my box'",
    ]


def test_stdin_carries_a_secret_that_argv_never_holds(network: Network) -> None:
    """The remote side shows what it got: its command line, then its standard input."""
    shown = reach(network, "one", "sh", "-c", 'echo "$0 $*"; cat', "argv:")
    reply = ssh.run(shown, ["fleet-host", "set-key"], stdin="tskey-auth-secret\n", timeout=30)
    assert replied(reply).stdout == "argv: fleet-host set-key\ntskey-auth-secret\n"
    assert "tskey-auth-secret" not in " ".join(shown.argv("fleet-host", "set-key"))
    assert "tskey-auth-secret" not in network.servers["one"].log.read_text()


def test_exit_codes_of_the_remote_command_come_back(network: Network) -> None:
    shell = reach(network, "one", "sh", "-c")
    reply = ssh.run(shell, ["echo error: no such container >&2; exit 2"], timeout=30)
    assert isinstance(reply, ssh.Reply)
    assert (reply.returncode, reply.message) == (2, "error: no such container")


def test_a_host_that_is_down_refusing_or_silent_is_unreachable(
    network: Network, remotes: dict[str, ssh.Remote], tmp_path: Path
) -> None:
    """ssh's own failures are exit 255 with OpenSSH's words; a silent host, the budget."""
    port = network.servers["two"].port
    network.down("two")
    assert ssh.run(remotes["two"], ["x"], timeout=30) == ssh.Unreachable(
        "two", "root@two", f"ssh: connect to host 127.0.0.1 port {port}: Connection refused"
    )
    network.down("two", down=False)
    assert replied(ssh.run(remotes["two"], ["back"], timeout=30)).stdout == "back\n"
    # A host that does not take the control host's key: BatchMode fails at once, no prompt.
    (network.servers["two"].directory / "authorized_keys").write_text("")
    assert ssh.run(remotes["two"], ["x"], timeout=30) == ssh.Unreachable(
        "two", "root@two", "root@127.0.0.1: Permission denied (publickey)."
    )
    slow = reach(network, "one", "sleep")
    assert ssh.run(slow, ["3"], timeout=0.5) == ssh.Unreachable(
        "one", "root@one", "no answer within 0.5 s"
    )


def test_a_stream_passes_between_hosts_without_being_held(network: Network, tmp_path: Path) -> None:
    """64 MiB through one ssh into the other; this process never holds more than a little."""
    size = 64 << 20
    source = reach(network, "one", "head", "-c", str(size))
    target = reach(network, "two", "sh", "-c")
    if sys.platform != "linux":
        pytest.skip("reads /proc")
    received = shlex.quote(str(tmp_path / "two" / "received"))
    before = _peak_rss_kib()
    first, second = ssh.stream(
        source, ["/dev/zero"], target, [f"wc -c > {received}; echo done"], timeout=120
    )
    assert replied(first).ok, first
    assert replied(second).stdout == "done\n", second
    assert (tmp_path / "two" / "received").read_text().strip() == str(size)
    assert _peak_rss_kib() - before < 16 * 1024


def _peak_rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_a_stream_to_an_unreachable_target_is_said_so(
    network: Network, remotes: dict[str, ssh.Remote]
) -> None:
    """The target's ssh fails; the source's remote command then ends by SIGPIPE (its ssh
    lost its reader), which OpenSSH reports as exit 255 without a word: it ended, it did
    not hang, and what it did is said to be unknown."""
    network.down("two")
    source = reach(network, "one", "head", "-c", "10000000")
    first, second = ssh.stream(source, ["/dev/zero"], remotes["two"], ["x"], timeout=60)
    assert isinstance(second, ssh.Unreachable)
    assert "Connection refused" in second.reason
    assert first == ssh.Unreachable("one", "root@one", ssh.QUIET_255)


def test_a_stream_past_its_budget_is_killed(
    network: Network, remotes: dict[str, ssh.Remote]
) -> None:
    source = reach(network, "one", "sleep")
    first, second = ssh.stream(source, ["3"], remotes["two"], ["x"], timeout=0.5)
    reason = "the transfer did not finish within 0.5 s"
    assert (first, second) == (
        ssh.Unreachable("one", "root@one", reason),
        ssh.Unreachable("two", "root@two", reason),
    )


def test_deploy_fills_the_template_and_runs_from_the_config_repository(tmp_path: Path) -> None:
    assert deploy.command(
        ["nixos-rebuild", "switch", "--flake", "{flake}#{host}", "--target-host", "{reach}"],
        host="beta",
        reach="root@beta",
        flake=Path("/srv/config"),
    ) == [
        "nixos-rebuild",
        "switch",
        "--flake",
        "/srv/config#beta",
        "--target-host",
        "root@beta",
    ]
    lines: list[str] = []
    result = deploy.deploy(
        ["sh", "-c", "pwd; echo deploying {host} to {reach}; exit 3"],
        host="beta",
        reach="root@beta",
        flake=tmp_path,
        on_line=lines.append,
    )
    assert result.returncode == 3
    assert lines == [str(tmp_path), "deploying beta to root@beta"]


@pytest.mark.usefixtures("colmena")
def test_deploy_streams_colmenas_lines_and_its_exit(tmp_path: Path) -> None:
    """The default deployCommand against the colmena stand-in: nothing selected is exit 0."""
    (tmp_path / "flake.nix").write_text("{ }\n")
    lines: list[str] = []
    result = deploy.deploy(
        hostconfig.DEFAULT_DEPLOY,
        host="three",
        reach="root@three",
        flake=tmp_path,
        on_line=lines.append,
    )
    assert result.ok
    assert lines[-1] == "[WARN ] No hosts selected (0 skipped)."
    with pytest.raises(process.ToolError, match="colmena-nowhere not found"):
        deploy.deploy(
            ["colmena-nowhere"], host="x", reach="x", flake=tmp_path, on_line=lines.append
        )
