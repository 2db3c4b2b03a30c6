"""list and status: declared and actual state side by side, and every disagreement said plainly."""

from __future__ import annotations

import os
import pwd
import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from host import Host


@pytest.fixture
def two(host: Host) -> Host:
    """alice's web (running) and bob's api (created, not applied)."""
    assert host.cli("create", "web", "--owner", "alice", "--timeout", "30").code == 0
    assert host.cli("create", "api", "--owner", "bob", "--memory", "2G", "--no-apply").code == 0
    return host


def test_list_shows_the_callers_containers(two: Host) -> None:
    mine = two.cli("list", "--json", uid=1002).json()
    assert [(c["name"], c["owner"], c["declared"], c["actual"]) for c in mine] == [
        ("api", "bob", "running", "missing")
    ]
    assert mine[0]["memory"] == "2G"
    assert mine[0]["applied"] is False
    everyone = two.cli("list", "--all", "--json", uid=1001).json()
    assert [(c["name"], c["actual"]) for c in everyone] == [("api", "missing"), ("web", "running")]
    web = everyone[1]
    assert web["applied"] is True
    assert web["created"].endswith("Z")
    assert {"lastActivity", "idleStopAt", "destroyAt"} <= web.keys()


def test_list_text_says_where_reality_differs(two: Host) -> None:
    result = two.cli("list", "--all")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0].split() == [
        "NAME",
        "OWNER",
        "DECLARED",
        "ACTUAL",
        "CPU",
        "MEMORY",
        "CREATED",
        "LAST",
        "ACTIVITY",
        "IDLE",
        "STOP",
        "DESTROY",
    ]
    assert lines[1].split()[:6] == ["api", "bob", "running", "missing", "2", "2G"]
    assert lines[2].split()[:6] == ["web", "alice", "running", "running", "2", "4G"]
    assert "! api: the declaration is not applied yet: sudo nixos-rebuild switch" in result.out
    assert (
        "! api: declared running but it is missing: its unit's journal shows why: "
        "journalctl --user -u container-api.service (as bob), or as root: "
        "journalctl --user -M bob@ -u container-api.service; devbox-ctl start api starts it"
        in result.out
    )


def test_status_of_a_healthy_container(two: Host) -> None:
    result = two.cli("status", "web")
    assert result.code == 0, result.out + result.err
    assert "web (owner alice)" in result.out
    assert "  declared:   running (2 CPUs, 4G, Syncthing off)" in result.out
    assert "  actual:     running since " in result.out
    # The time the manager gives, read from systemctl's own format ("Sat 2026-11-28 08:14:19
    # UTC"), within the minute podman says the container started.
    systemd_line = next(line for line in result.out.splitlines() if "systemd:" in line)
    since = re.fullmatch(
        r"  systemd:    container-web\.service active \(running\) since "
        r"(\d{4}-\d\d-\d\d \d\d:\d\d) UTC",
        systemd_line,
    )
    assert since is not None, systemd_line
    started = two.podman("inspect", "web", "--format", "{{.State.StartedAt.Unix}}").stdout
    started_at = datetime.fromtimestamp(int(started), UTC)
    shown = datetime.strptime(since.group(1), "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
    assert timedelta(0) <= started_at - shown < timedelta(minutes=1)
    assert "  podman:     volume web-data present, key secret present" in result.out
    assert "  tailscale:  Running as web.tail1234.ts.net (100.64.0.7)" in result.out
    assert " ! " not in result.out


def test_status_says_plainly_when_a_running_container_is_stopped(two: Host) -> None:
    two.podman("stop", "-t", "1", "web")
    result = two.cli("status", "web")
    assert result.code == 1
    assert (
        "  ! declared running but it is stopped: devbox-ctl logs web shows why; devbox-ctl start web starts it"
        in result.out
    )


def test_status_says_when_a_stopped_container_runs(two: Host) -> None:
    two.cli("stop", "web")
    # Someone starts it by hand, behind the declaration's back.
    manager = two.stand_ins.bin / "systemctl"
    subprocess.run(
        [manager, "--user", "--machine=alice@", "start", "container-web.service"], check=True
    )
    result = two.cli("status", "web")
    assert result.code == 1
    assert "  ! declared stopped but it is running: devbox-ctl stop web" in result.out


def test_status_reports_a_missing_key_secret(two: Host) -> None:
    two.podman("secret", "rm", "devbox-web-ts-authkey")
    result = two.cli("status", "web", "--json")
    assert result.json()["keySecret"] is False
    assert any(
        "its key secret devbox-web-ts-authkey is missing" in line
        for line in result.json()["disagreements"]
    )


def test_status_reports_a_users_own_quadlet_file_that_shadows_the_unit(
    two: Host, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home-alice"
    own = home / ".config/containers/systemd"
    own.mkdir(parents=True)
    (own / "devbox-web.container").write_text("[Container]\nImage=docker.io/library/alpine\n")
    (own / "mine.container").write_text("[Container]\nImage=x\nServiceName=container-web\n")
    (own / "unrelated.container").write_text("[Container]\nImage=x\n")
    os.chown(home, 1001, 1001)  # alice's home is hers (status reads it as alice)
    real = pwd.getpwnam

    def getpwnam(name: str) -> pwd.struct_passwd:
        if name == "alice":
            return pwd.struct_passwd(("alice", "x", 1001, 1001, "", str(home), "/bin/sh"))
        return real(name)

    monkeypatch.setattr(pwd, "getpwnam", getpwnam)
    result = two.cli("status", "web")
    assert result.code == 1
    assert (
        f"  ! {own}/devbox-web.container takes the place of the devbox unit: rename or remove it"
        in result.out
    )
    assert (
        f"  ! {own}/mine.container takes the place of the devbox unit: rename or remove it"
        in result.out
    )
    assert "unrelated" not in result.out


def test_status_of_someone_elses_container_is_refused(two: Host) -> None:
    result = two.cli("status", "web", uid=1002)
    assert result.code == 4
    assert "bob may not see web: it belongs to alice" in result.err


def podman_calls_of_list(host: Host) -> list[list[str]]:
    """The podman command lines (through the owners' managers) of one `list --all`."""
    before = len(host.stand_ins.calls("systemd-run"))
    result = host.cli("list", "--all", "--json", uid=1001)
    assert result.code == 0, result.err
    calls = host.stand_ins.calls("systemd-run")[before:]
    return [c["argv"][c["argv"].index("--pipe") + 2 :] for c in calls]


def test_list_asks_each_owners_podman_a_few_times_not_each_container(two: Host) -> None:
    """podman is asked per owner (containers, volumes, secrets at once), so a longer list
    costs no more podman calls; on a real host each call is a transient unit."""
    few = podman_calls_of_list(two)
    for name in ("more1", "more2", "more3"):
        assert two.cli("create", name, "--owner", "alice", "--no-apply").code == 0
    many = podman_calls_of_list(two)
    assert sorted(map(tuple, many)) == sorted(map(tuple, few))
    asked = sorted({" ".join(argv[:2]) for argv in many})
    assert asked == ["container inspect", "ps --all", "secret ls", "volume ls"]
    assert len(many) <= 4 * 2  # two owners
