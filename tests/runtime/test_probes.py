"""A probe that fails is "could not tell", never "absent"; a step that fails is never reported
as done (issue 21). On a host of tests/host.py: real podman and Quadlet, the stand-ins for the
owner's systemd manager.

The owner's manager is made unreachable through the stand-ins' rules: `systemctl --user
--machine=alice@` and `systemd-run --user --machine=alice@` then fail as systemd 259 does when
the user's bus cannot be reached (bus_log_connect_error() in src/shared/bus-util.c: exit 1,
"Failed to connect to user scope bus via machine transport: …").
"""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import pytest

from host import Host

UNREACHABLE = [
    {
        "match": [],
        "exit": 1,
        "stderr": "Failed to connect to user scope bus via machine transport: "
        "No such file or directory\n",
    }
]


@pytest.fixture
def web(host: Host) -> Host:
    """A host with alice's container web, on the tailnet, with a file on its volume."""
    result = host.cli("create", "web", "--owner", "alice", "--timeout", "30")
    assert result.code == 0, result.err
    host.podman("exec", "web", "sh", "-c", "echo precious > /home/dev/notes", check=True)
    host.stand_ins.clear()
    return host


def snapshot_files(host: Host) -> list[Path]:
    return sorted((host.state / "snapshots").rglob("*.tar*"))


def holds_notes(snapshot: Path) -> bool:
    with tarfile.open(snapshot) as archive:
        return any(name.endswith("notes") for name in archive.getnames())


def fail_first(host: Host, monkeypatch: pytest.MonkeyPatch, words: str, status: int) -> Path:
    """A podman first on PATH that fails the next `podman WORDS …` once, then is podman.

    A stand-in only to inject the failure (podman itself cannot be told to fail once, as a
    locked database or a manager that is away for a moment makes it): every call, that one
    included, otherwise goes to the real podman. Armed while the returned file exists.
    """
    real = shutil.which("podman")
    assert real is not None
    wrapper_dir = host.base / "flaky-podman"
    wrapper_dir.mkdir()
    armed = host.base / "flaky-armed"
    wrapper = wrapper_dir / "podman"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'if [ "$1 $2" = "{words}" ] && rm "{armed}" 2>/dev/null; then\n'
        '  echo "Error: acquiring lock 0 for volume: database is locked" >&2\n'
        f"  exit {status}\n"
        "fi\n"
        f'exec {real} "$@"\n'
    )
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{wrapper_dir}:{host.env['PATH']}")
    armed.touch()
    return armed


def test_a_volume_probe_that_fails_once_removes_nothing_and_a_rerun_saves_first(
    web: Host, monkeypatch: pytest.MonkeyPatch
) -> None:
    armed = fail_first(web, monkeypatch, "volume exists", 125)
    failed = web.cli("destroy", "web", "--yes")
    assert not armed.exists(), "the probe was never asked"
    assert failed.code == 3, failed.err
    assert "could not tell whether alice's volume web-data exists" in failed.err
    assert "database is locked" in failed.err
    assert "Stopped" not in failed.out
    assert "Removed" not in failed.out
    assert [r["name"] for r in web.records()] == ["web"]
    assert web.podman("volume", "exists", "web-data").returncode == 0
    assert web.running() == ["web"], "nothing was stopped on a probe that could not tell"
    assert snapshot_files(web) == []

    again = web.cli("destroy", "web", "--yes")
    assert again.code == 0, again.err
    assert web.records() == []
    assert web.podman("volume", "exists", "web-data").returncode == 1
    (snapshot,) = snapshot_files(web)
    assert holds_notes(snapshot), "the volume was removed without its files saved"


def test_a_missing_volume_is_absent_and_destroy_finishes_without_a_snapshot(web: Host) -> None:
    web.podman("rm", "--force", "web", check=True)
    web.podman("volume", "rm", "web-data", check=True)
    result = web.cli("destroy", "web", "--yes")
    assert result.code == 0, result.err
    assert web.records() == []
    assert snapshot_files(web) == []
    assert "Saved" not in result.out
    assert "Removed the volume" not in result.out


def test_destroy_with_the_manager_unreachable_keeps_everything_says_nothing_false_exits_3(
    web: Host,
) -> None:
    web.stand_ins.rules("systemctl", UNREACHABLE)
    web.stand_ins.rules("systemd-run", UNREACHABLE)
    failed = web.cli("destroy", "web", "--yes")
    assert failed.code == 3, failed.err
    assert failed.out == "", "no step happened, so none is reported"
    assert failed.err.startswith("error: could not tell whether alice's volume web-data exists")
    assert "Failed to connect to user scope bus" in failed.err
    assert [r["name"] for r in web.records()] == ["web"]
    assert web.podman("volume", "exists", "web-data").returncode == 0
    assert "devbox-web-ts-authkey" in web.podman("secret", "ls").stdout

    web.stand_ins.rules("systemctl", [])
    web.stand_ins.rules("systemd-run", [])
    again = web.cli("destroy", "web", "--yes")
    assert again.code == 0, again.err
    assert "Stopped web." in again.out
    assert "Removed the volume web-data." in again.out
    assert web.records() == []
    assert web.podman("volume", "ls", "--format", "{{.Name}}").stdout.split() == []
    (snapshot,) = snapshot_files(web)
    assert holds_notes(snapshot)


def test_destroy_whose_stop_fails_removes_nothing_and_does_not_say_stopped(web: Host) -> None:
    """podman answers but the manager refuses the stop: the destroy stops there, exit 3."""
    web.stand_ins.rules("systemctl", [{**UNREACHABLE[0], "match": ["stop"]}])
    failed = web.cli("destroy", "web", "--yes")
    assert failed.code == 3, failed.err
    assert "Stopped" not in failed.out
    assert "Removed" not in failed.out
    assert "container-web.service did not stop" in failed.err
    assert "Failed to connect to user scope bus" in failed.err
    assert [r["name"] for r in web.records()] == ["web"]
    assert web.podman("volume", "exists", "web-data").returncode == 0
    assert "devbox-web-ts-authkey" in web.podman("secret", "ls").stdout
    assert snapshot_files(web) == []

    web.stand_ins.rules("systemctl", [])
    again = web.cli("destroy", "web", "--yes")
    assert again.code == 0, again.err
    assert web.records() == []
    assert holds_notes(snapshot_files(web)[0])


def test_stop_with_the_manager_unreachable_says_so_and_keeps_the_record(web: Host) -> None:
    web.stand_ins.rules("systemctl", UNREACHABLE)
    failed = web.cli("stop", "web")
    assert failed.code == 3, failed.err
    assert "Stopped" not in failed.out
    assert web.records()[0]["state"] == "running"
    assert web.running() == ["web"]


def test_list_shows_a_container_podman_cannot_tell_as_unknown_and_the_others_as_they_are(
    web: Host,
) -> None:
    """alice's manager is away: her container, volume and key are unknown in `list`, never
    missing, and bob's container on the same host is listed as it is, with exit 0."""
    created = web.cli("create", "api", "--owner", "bob", "--timeout", "30")
    assert created.code == 0, created.err
    away = [{**UNREACHABLE[0], "match": ["--machine=alice@"]}]
    web.stand_ins.rules("systemctl", away)
    web.stand_ins.rules("systemd-run", away)
    listed = web.cli("list", "--all", "--json")
    assert listed.code == 0, listed.err
    rows = {row["name"]: row for row in json.loads(listed.out)}
    assert (rows["web"]["actual"], rows["web"]["volume"], rows["web"]["keySecret"]) == (
        "unknown",
        None,
        None,
    )
    assert rows["web"]["lastActivity"] == "unknown"
    assert any("podman could not tell its state" in d for d in rows["web"]["disagreements"])
    assert not any("does not exist" in d or "missing" in d for d in rows["web"]["disagreements"])
    assert (rows["api"]["actual"], rows["api"]["volume"], rows["api"]["keySecret"]) == (
        "running",
        True,
        True,
    )
    text = web.cli("list", "--all")
    assert text.code == 0, text.err
    (line,) = [line for line in text.out.splitlines() if line.startswith("web ")]
    assert "unknown" in line
    assert "missing" not in line
