"""tools/ssh.py and tools/deploy.py against the ssh and colmena stand-ins (no podman needed).

The "remote" hosts here are shells on this machine in environments of their own, reached
through the OpenSSH stand-in exactly as the fleet's hosts are (tests/stand_ins/ssh.py).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from devbox.host import hostconfig
from devbox.tools import deploy, process, ssh
from support import stand_in_launcher

WORDS = ["a  b", "it's", "$(touch pwned)", "`id`", "semi;colon", "new\nline", "*", "-x", ""]


def replied(reply: ssh.Reply | ssh.Unreachable) -> ssh.Reply:
    assert isinstance(reply, ssh.Reply), reply
    return reply


@pytest.fixture
def remotes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, ssh.Remote]:
    """Two hosts, one and two, and the ssh and colmena stand-ins first on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, script in (("ssh", "ssh.py"), ("colmena", "colmena.py")):
        (bin_dir / name).write_text(stand_in_launcher(script))
        (bin_dir / name).chmod(0o755)
    hosts = {}
    for name in ("one", "two"):
        home = tmp_path / name
        home.mkdir()
        hosts[name] = {
            "reach": f"root@{name}",
            "home": str(home),
            "env": {"PATH": os.environ["PATH"], "WHO": name},
        }
    fleet = tmp_path / "fleet.json"
    fleet.write_text(json.dumps({"generated": str(tmp_path / "generated"), "hosts": hosts}))
    monkeypatch.setenv("DEVBOX_TEST_FLEET", str(fleet))
    monkeypatch.setenv("DEVBOX_TEST_CALLS", str(tmp_path / "calls.jsonl"))
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return {
        name: ssh.Remote(name, f"root@{name}", hostconfig.DEFAULT_SSH, ("printf", "%s\\n"))
        for name in hosts
    }


def test_every_remote_word_arrives_as_it_was(
    remotes: dict[str, ssh.Remote], tmp_path: Path
) -> None:
    reply = ssh.run(remotes["one"], WORDS, timeout=30)
    assert replied(reply).ok, reply
    # printf's format "%s\n" repeats per word: each word, then a newline.
    assert reply.stdout == "".join(f"{word}\n" for word in WORDS)
    assert not (tmp_path / "one" / "pwned").exists()


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


def test_stdin_carries_a_secret_that_argv_never_holds(
    remotes: dict[str, ssh.Remote], tmp_path: Path
) -> None:
    cat = ssh.Remote("one", "root@one", hostconfig.DEFAULT_SSH, ("cat",))
    reply = ssh.run(cat, [], stdin="tskey-auth-secret\n", timeout=30)
    assert isinstance(reply, ssh.Reply)
    assert reply.stdout == "tskey-auth-secret\n"
    assert "tskey-auth-secret" not in (tmp_path / "calls.jsonl").read_text()


def test_exit_codes_of_the_remote_command_come_back(remotes: dict[str, ssh.Remote]) -> None:
    shell = ssh.Remote("one", "root@one", hostconfig.DEFAULT_SSH, ("sh", "-c"))
    reply = ssh.run(shell, ["echo error: no such container >&2; exit 2"], timeout=30)
    assert isinstance(reply, ssh.Reply)
    assert (reply.returncode, reply.message) == (2, "error: no such container")


def test_a_host_that_is_down_or_silent_is_unreachable(
    remotes: dict[str, ssh.Remote], tmp_path: Path
) -> None:
    fleet = json.loads((tmp_path / "fleet.json").read_text())
    fleet["hosts"]["two"]["down"] = True
    (tmp_path / "fleet.json").write_text(json.dumps(fleet))
    assert ssh.run(remotes["two"], ["x"], timeout=30) == ssh.Unreachable(
        "two", "root@two", "ssh: connect to host two port 22: Connection refused"
    )
    slow = ssh.Remote("one", "root@one", hostconfig.DEFAULT_SSH, ("sleep",))
    assert ssh.run(slow, ["30"], timeout=0.5) == ssh.Unreachable(
        "one", "root@one", "no answer within 0.5 s"
    )


def test_a_stream_passes_between_hosts_without_being_held(
    remotes: dict[str, ssh.Remote], tmp_path: Path
) -> None:
    """64 MiB through one ssh into the other; this process never holds more than a little."""
    size = 64 << 20
    source = ssh.Remote("one", "root@one", hostconfig.DEFAULT_SSH, ("head", "-c", str(size)))
    target = ssh.Remote("two", "root@two", hostconfig.DEFAULT_SSH, ("sh", "-c"))
    if sys.platform != "linux":
        pytest.skip("reads /proc")
    before = _peak_rss_kib()
    first, second = ssh.stream(
        source, ["/dev/zero"], target, ["wc -c > received; echo done"], timeout=120
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
    remotes: dict[str, ssh.Remote], tmp_path: Path
) -> None:
    fleet = json.loads((tmp_path / "fleet.json").read_text())
    fleet["hosts"]["two"]["down"] = True
    (tmp_path / "fleet.json").write_text(json.dumps(fleet))
    source = ssh.Remote("one", "root@one", hostconfig.DEFAULT_SSH, ("head", "-c", "100000"))
    first, second = ssh.stream(source, ["/dev/zero"], remotes["two"], ["x"], timeout=60)
    assert isinstance(second, ssh.Unreachable)
    # The source got EPIPE once nobody read: it ended, it did not hang.
    assert isinstance(first, ssh.Reply)


def test_a_stream_past_its_budget_is_killed(remotes: dict[str, ssh.Remote]) -> None:
    source = ssh.Remote("one", "root@one", hostconfig.DEFAULT_SSH, ("sleep",))
    first, second = ssh.stream(source, ["30"], remotes["two"], ["x"], timeout=0.5)
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


def test_deploy_streams_colmenas_lines_and_its_exit(
    remotes: dict[str, ssh.Remote], tmp_path: Path
) -> None:
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
