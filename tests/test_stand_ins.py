"""The stand-ins for systemd-run, systemctl and syncthing fail the way the real programs fail.

Where the real program is on this machine (Debian's systemd 252: systemd-run, systemctl,
systemd-analyze), the stand-in's answer to a refused command line is compared with the real
one, byte for byte: both fail while parsing, before any bus is needed. What needs a user
manager (a command handed over --machine) is checked against systemd's source as
docs/tools-checked.md says. Syncthing is not installed here; its stand-in is checked against
the messages of Syncthing 2's parser (kong) quoted in its header.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from devbox.errors import ToolError
from devbox.tools import process, systemd
from support import REPO, require_tool, stand_in_launcher

STAND_INS = REPO / "tests" / "stand_ins"
sys.path.insert(0, str(STAND_INS))
import systemd_cli  # noqa: E402


@pytest.fixture
def bin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The systemd-run and systemctl stand-ins, recording into a file of this test."""
    directory = tmp_path / "bin"
    directory.mkdir()
    for name, script in (("systemd-run", "systemd_run.py"), ("systemctl", "systemctl.py")):
        (directory / name).write_text(stand_in_launcher(script))
        (directory / name).chmod(0o755)
    monkeypatch.setenv("DEVBOX_TEST_CALLS", str(tmp_path / "calls.jsonl"))
    monkeypatch.delenv("DEVBOX_TEST_MANAGER_PATH", raising=False)
    return directory


def run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]


REFUSED = [
    ["systemd-run", "--bogus", "true"],
    ["systemd-run", "--u", "true"],
    ["systemd-run", "--wait=1", "true"],
    ["systemd-run", "-Z", "true"],
    ["systemd-run"],
    ["systemd-run", "--user", "--machine"],
    ["systemd-run", "--wait", "no-such-program-devbox"],
    ["systemctl", "--user", "--machine=alice@", "--bogus", "show", "x.service"],
    ["systemctl", "-Z"],
    ["systemctl", "--user", "--machine=alice@", "--timestamp=bogus", "show", "x.service"],
    ["systemctl", "--user", "--machine=alice@", "--property"],
]


@pytest.mark.parametrize("argv", REFUSED, ids=" ".join)
def test_a_refused_command_line_fails_as_the_real_one(argv: list[str], bin_dir: Path) -> None:
    real = require_tool(argv[0], shutil.which(argv[0], path="/usr/bin:/bin"))
    expected = run([real, *argv[1:]], cwd="/")
    got = run([str(bin_dir / argv[0]), *argv[1:]], cwd="/")
    assert expected.returncode == 1
    # getopt names the program as it was called; the rest is byte for byte the same.
    assert (got.returncode, got.stderr, got.stdout) == (
        expected.returncode,
        expected.stderr.replace(real, str(bin_dir / argv[0])),
        expected.stdout,
    )


def test_a_bare_name_over_machine_fails_with_203_and_an_absolute_path_runs(bin_dir: Path) -> None:
    """systemd-run does not resolve the command for --machine (shall_make_executable_absolute)
    and the user's manager does not search the caller's PATH: status 203 (EXIT_EXEC)."""
    options = ["--user", "--machine=alice@", "--wait", "--collect", "--quiet", "--pipe"]
    bare = run([str(bin_dir / "systemd-run"), *options, "cat"], input="x")
    assert (bare.returncode, bare.stdout, bare.stderr) == (203, "", "")
    cat = shutil.which("cat")
    assert cat is not None
    absolute = run([str(bin_dir / "systemd-run"), *options, cat], input="through stdin")
    assert (absolute.returncode, absolute.stdout) == (0, "through stdin")
    missing = run([str(bin_dir / "systemd-run"), *options, "/nonexistent/podman"])
    assert missing.returncode == 203
    failing = run([str(bin_dir / "systemd-run"), *options, shutil.which("false") or "/bin/false"])
    assert failing.returncode == 1


def test_without_pipe_the_output_goes_to_the_journal_and_without_wait_nothing_comes_back(
    bin_dir: Path,
) -> None:
    echo = shutil.which("echo") or "/bin/echo"
    quiet = [str(bin_dir / "systemd-run"), "--user", "--machine=alice@", "--quiet"]
    assert run([*quiet, "--wait", echo, "hello"]).stdout == ""
    assert run([*quiet, "/nonexistent/podman"]).returncode == 0
    loud = run([str(bin_dir / "systemd-run"), "--user", "-M", "alice@", "--wait", "/nonexistent"])
    assert loud.stderr.splitlines()[1:] == [
        "Finished with result: exit-code",
        "Main processes terminated with: code=exited/status=203",
    ]


def test_exec_search_path_is_where_the_manager_looks(bin_dir: Path) -> None:
    directory = Path(shutil.which("cat") or "/bin/cat").parent
    found = run(
        [
            str(bin_dir / "systemd-run"),
            "--user",
            "--machine=alice@",
            "-p",
            f"ExecSearchPath={directory}",
            "--wait",
            "--pipe",
            "--quiet",
            "cat",
        ],
        input="found",
    )
    assert (found.returncode, found.stdout) == (0, "found")


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin", "America/New_York"])
def test_the_systemctl_stand_in_prints_timestamps_as_systemd_does(zone: str) -> None:
    analyze = require_tool("systemd-analyze", shutil.which("systemd-analyze"))
    real = run([analyze, "timestamp", "@1795853659"], env={**os.environ, "TZ": zone}).stdout
    normalized = next(
        line.split(": ", 1)[1] for line in real.splitlines() if "Normalized form" in line
    )
    printed = run(
        [
            sys.executable,
            "-c",
            f"import sys; sys.path.insert(0, {str(STAND_INS)!r}); import systemd_cli; "
            "print(systemd_cli.systemd_timestamp('1795853659'))",
        ],
        env={**os.environ, "TZ": zone},
    ).stdout.strip()
    assert printed == normalized


def test_devbox_reads_systemds_timestamp_format() -> None:
    parsed = systemd.timestamp("Sat 2026-11-28 08:14:19 UTC")
    assert parsed is not None
    assert parsed.isoformat() == "2026-11-28T08:14:19+00:00"
    # podman's format (what an earlier stand-in printed) and another zone are not guessed at.
    assert systemd.timestamp("2026-11-28 08:14:19.5 +0000 UTC") is None
    assert systemd.timestamp("Sat 2026-11-28 09:14:19 CET") is None
    assert systemd.timestamp("") is None


def test_devbox_names_every_command_for_a_user_manager_by_absolute_path() -> None:
    with pytest.raises(ToolError, match="not an absolute path"):
        systemd.in_user_manager("alice", ["podman", "ps"])
    assert systemd.in_user_manager("alice", ["/run/current-system/sw/bin/podman", "ps"])[-2:] == [
        "/run/current-system/sw/bin/podman",
        "ps",
    ]


def test_a_relative_path_entry_never_becomes_the_program(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "podman").write_text("#!/bin/sh\n")
    (tmp_path / "bin" / "podman").chmod(0o755)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", "bin")
    with pytest.raises(ToolError, match="relative path"):
        process.absolute("podman")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    assert process.absolute("podman") == str(tmp_path / "bin" / "podman")
    configured = tmp_path / "bin" / "podman"
    assert process.absolute("podman", configured) == str(configured)
    with pytest.raises(ToolError, match="not an executable podman"):
        process.absolute("podman", tmp_path / "nonexistent")


def test_the_recording_stand_ins_refuse_too() -> None:
    with pytest.raises(SystemExit) as refused:
        systemd_cli.check_recorded_call("systemctl", ["--user", "--bogus"])
    assert refused.value.code == 1
    with pytest.raises(SystemExit) as exec_failed:
        systemd_cli.check_recorded_call(
            "systemd-run", ["--user", "--machine=alice@", "--wait", "podman", "ps"]
        )
    assert exec_failed.value.code == systemd_cli.EXIT_EXEC


SYNCTHING = STAND_INS / "image" / "syncthing.py"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["generate", "--home=/h", "--no-default-folder"],
            "syncthing: error: unknown flag --no-default-folder\n",
        ),
        (
            ["generate", "--gui-address=127.0.0.1:8384"],
            "syncthing: error: unknown flag --gui-address\n",
        ),
        (
            ["serve", "--no-browsr"],
            'syncthing: error: unknown flag --no-browsr, did you mean "--no-browser"?\n',
        ),
        (
            ["serve", "--home=/h", "--config=/c", "--data=/d"],
            "syncthing: error: --home must not be used together with --config and --data\n",
        ),
        (
            ["serve", "--config=/c"],
            "syncthing: error: either both or none of --config and --data must be given, use "
            "--home to set both at once\n",
        ),
    ],
)
def test_the_syncthing_stand_in_refuses_what_syncthing_2_refuses(
    argv: list[str], message: str, tmp_path: Path
) -> None:
    result = run(
        [sys.executable, str(SYNCTHING), *argv],
        env={**os.environ, "STANDIN_LOG": str(tmp_path)},
        timeout=10,
    )
    assert (result.returncode, result.stderr) == (80, message)


def test_the_syncthing_stand_in_generates_with_syncthing_2s_flags(tmp_path: Path) -> None:
    home = tmp_path / "home"
    result = run(
        [
            sys.executable,
            str(SYNCTHING),
            "generate",
            f"--home={home}",
            "--gui-user=dev",
            "--gui-password=-",
        ],
        env={**os.environ, "STANDIN_LOG": str(tmp_path)},
        input="secret\n",
        timeout=10,
    )
    assert result.returncode == 0, result.stderr
    assert (home / "config.xml").is_file()
    assert (tmp_path / "received-gui-password").read_text() == "secret"


def test_a_program_the_users_manager_cannot_execute_is_a_clear_error(
    bin_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A path root sees but the owner's manager cannot run (status 203) says so and how."""
    from devbox.tools.podman import Podman

    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    podman = Podman("alice", os.geteuid() + 1, "/nonexistent/podman")
    with pytest.raises(ToolError) as failed:
        podman.checked("volume", "ls")
    assert failed.value.message == (
        "alice's systemd manager could not execute /nonexistent/podman (status 203)"
    )
    assert "journalctl --user -M alice@" in failed.value.hint


REOPEN = ["/bin/sh", "-c", "echo by-descriptor; echo by-name > /dev/stdout"]


def piped(bin_dir: Path, owner: int | None) -> subprocess.CompletedProcess[bytes]:
    """REOPEN over --machine=alice@ --pipe, its stdout a pipe of root's or of owner's."""
    read_end, write_end = os.pipe()
    if owner is not None:
        os.fchown(write_end, owner, -1)
    options = ["--user", "--machine=alice@", "--wait", "--collect", "--quiet", "--pipe"]
    with os.fdopen(read_end, "rb") as output:
        done = subprocess.run(
            [str(bin_dir / "systemd-run"), *options, *REOPEN],
            stdin=subprocess.DEVNULL,
            stdout=write_end,
            stderr=subprocess.PIPE,
            check=False,
            env={**os.environ, "DEVBOX_TEST_PASSWD": "alice:1001"},
        )
        os.close(write_end)
        return subprocess.CompletedProcess(done.args, done.returncode, output.read(), done.stderr)


@pytest.mark.skipif(os.geteuid() != 0, reason="the pipe is given to another uid (fchown)")
def test_a_piped_service_cannot_reopen_roots_pipe_but_can_its_owners(bin_dir: Path) -> None:
    """The service runs as alice: writing to the stdout it was handed works; reopening it by
    name (/dev/stdout, as podman 4.3 and 5.4 do for `volume export`) fails when the pipe is
    root's (mode 0600), and works when the caller gave the pipe to alice."""
    roots = piped(bin_dir, None)
    assert roots.returncode == 2  # sh's status for a redirection that failed
    assert roots.stdout == b"by-descriptor\n"
    assert b"cannot create /dev/stdout" in roots.stderr
    alices = piped(bin_dir, 1001)
    assert (alices.returncode, alices.stdout) == (0, b"by-descriptor\nby-name\n")


# The fleet's stand-in for colmena (tests/fleet.py; OpenSSH is the real one there).


@pytest.fixture
def fleet_bin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The colmena stand-in, and a fleet of two hosts whose activations run here."""
    directory = tmp_path / "fleet-bin"
    directory.mkdir()
    (directory / "colmena").write_text(stand_in_launcher("colmena.py"))
    (directory / "colmena").chmod(0o755)
    hosts = {}
    for name in ("alpha", "beta"):
        home = tmp_path / name
        (home / "stand-ins" / "rules").mkdir(parents=True)
        hosts[name] = {
            "reach": f"root@{name}.example",
            "env": {
                "PATH": os.environ["PATH"],
                "DEVBOX_TEST_CALLS": str(home / "calls.jsonl"),
                "DEVBOX_TEST_RULES": str(home / "stand-ins" / "rules"),
                "DEVBOX_TEST_DEPLOYED": str(home / "deployed"),
                "DEVBOX_TEST_STATE": str(home / "state"),
            },
        }
    fleet = tmp_path / "fleet.json"
    fleet.write_text(json.dumps({"generated": str(tmp_path / "generated"), "hosts": hosts}))
    monkeypatch.setenv("DEVBOX_TEST_FLEET", str(fleet))
    monkeypatch.setenv("DEVBOX_TEST_CALLS", str(tmp_path / "calls.jsonl"))
    return directory


def _fleet(fleet_bin: Path, **changes: dict[str, object]) -> None:
    path = Path(os.environ["DEVBOX_TEST_FLEET"])
    fleet = json.loads(path.read_text())
    for host, fields in changes.items():
        fleet["hosts"][host].update(fields)
    path.write_text(json.dumps(fleet))


def _slice(tmp_path: Path, node: str) -> None:
    directory = tmp_path / "generated" / "hosts" / node
    directory.mkdir(parents=True)
    (directory / "manifest.json").write_text(json.dumps({"version": 1, "host": node, "users": {}}))


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["apply", "--bogus"], "error: unexpected argument '--bogus' found"),
        (["apply", "--on"], "error: a value is required for '--on <NODES>'"),
        (["apply", "sideways"], "error: invalid value 'sideways' for '[goal]'"),
        (["apply", "switch", "extra"], "error: unexpected argument 'extra' found"),
    ],
)
def test_the_colmena_stand_in_refuses_what_clap_refuses(
    argv: list[str], said: str, fleet_bin: Path, tmp_path: Path
) -> None:
    (tmp_path / "flake.nix").write_text("{ }\n")
    result = run([str(fleet_bin / "colmena"), *argv], cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(said)


def test_colmena_deploys_only_the_selected_node_and_a_failure_leaves_the_others(
    fleet_bin: Path, tmp_path: Path
) -> None:
    colmena = str(fleet_bin / "colmena")
    (tmp_path / "flake.nix").write_text("{ }\n")
    for node in ("alpha", "beta"):
        _slice(tmp_path, node)
    one = run([colmena, "apply", "--on", "alpha"], cwd=tmp_path)
    assert one.returncode == 0, one.stderr
    assert "[INFO ] Selected 1 out of 2 hosts." in one.stderr
    assert "alpha | Activation successful" in one.stderr
    assert json.loads((tmp_path / "alpha/deployed/manifest.json").read_text())["host"] == "alpha"
    assert not (tmp_path / "beta/deployed").exists()
    _fleet(fleet_bin, beta={"failDeploy": True})
    (tmp_path / "generated/hosts/alpha/marker").write_text("new\n")
    both = run([colmena, "apply", "--on", "alpha,beta"], cwd=tmp_path)
    assert both.returncode == 1
    assert "[ERROR] Failed to deploy to beta - Last 1 lines of logs:" in both.stderr
    assert both.stderr.endswith(
        "[ERROR] Operation failed with error: Child process exited with error code: 1\n"
    )
    assert (tmp_path / "alpha/deployed/marker").read_text() == "new\n"
    assert not (tmp_path / "beta/deployed").exists()
    _fleet(fleet_bin, beta={"failDeploy": False, "down": True})
    down = run([colmena, "apply", "--on", "beta"], cwd=tmp_path)
    assert down.returncode == 1
    assert "beta | Push failed: ssh: connect to host beta port 22: Connection refused" in (
        down.stderr
    )
    assert not (tmp_path / "beta/deployed").exists()


def test_colmena_with_no_matching_node_deploys_nothing_and_exits_0(
    fleet_bin: Path, tmp_path: Path
) -> None:
    """As colmena 0.4.0 does: success with a warning. devbox must check what was deployed."""
    (tmp_path / "flake.nix").write_text("{ }\n")
    result = run([str(fleet_bin / "colmena"), "apply", "--on", "gamma"], cwd=tmp_path)
    assert (result.returncode, result.stderr.splitlines()[-1]) == (
        0,
        "[WARN ] No hosts selected (0 skipped).",
    )
    nowhere = tmp_path / "empty"
    nowhere.mkdir()
    (tmp_path / "flake.nix").unlink()
    missing = run([str(fleet_bin / "colmena"), "apply", "--on", "alpha"], cwd=nowhere)
    assert missing.returncode == 1
    assert "Hive configuration file does not exist" in missing.stderr
