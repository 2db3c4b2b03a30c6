"""The two-week timeline: create, use, go idle, a warning, the stop, two warnings, the destroy,
the restore — on a whole test host (tests/host.py), with the clock moved a day at a time.

The host is real where it can be (git, Nix, the generator, podman, Quadlet); the user's
systemd manager, nixos-rebuild, 1Password and tailscaled are stood in for (tests/host.py
says how). The activity record is written by the monitor's own code (monitor.Monitor) into
the container's volume, hour by hour, as the monitor in the image would write it; its
process table is the test's own, holding a Tailscale SSH session while alice works.
The webhook is a local HTTP server standing in for ntfy.

The policy: idle stop after 4 days, destroy 7 days after the stop, warnings 24 hours before
a stop and 72 and 24 hours before a destroy. cleanup runs every day at 09:00.
"""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from lifecycle_support import SSH_ARGV, Hook, as_rootless, fake_proc

from devbox.container import activity, monitor

USERS_NIX = """{
  users = {
    alice = { uid = 1001; admin = true; };
    bob = { uid = 1002; };
    carol = { uid = 1003; };
  };
  containers = {
    opVault = "DevBox";
    nixDaemon = false; # tests/host.py: a simulated host has no nix-daemon
    idleStopDays = 4;
    stoppedDestroyDays = 7;
    webhookUrl = "%s";
  };
}
"""
DAY0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)  # a Monday


def set_policy(host, **values: str) -> None:
    """Write users.nix with the timeline's policy and commit it, as an admin would."""
    (host.repo / "devbox/users.nix").write_text(USERS_NIX % values["webhook"])
    for args in (["add", "devbox/users.nix"], ["commit", "-qm", "policy: shorter lifecycle"]):
        subprocess.run(
            ["git", "-C", str(host.repo), "-c", "user.name=admin", "-c", "user.email=a@h", *args],
            check=True,
        )


class Container:
    """alice's container as the test drives it: its volume, and its monitor."""

    def __init__(self, host, now, proc: Path) -> None:
        self.host, self.now, self.proc = host, now, proc
        self.monitor: monitor.Monitor | None = None

    @property
    def home(self) -> Path:
        out = self.host.podman("volume", "inspect", "web-data", "--format", "{{.Mountpoint}}")
        # Owned as alice's rootless podman would have it (lifecycle_support.as_rootless).
        return as_rootless(Path(out.stdout.strip()))

    def boot(self) -> None:
        """The image's entrypoint starts the monitor (hourly here, to keep the test short)."""
        fake_proc(self.proc, [SSH_ARGV])
        self.monitor = monitor.Monitor(
            self.home, "web", interval=3600, proc=self.proc, monotonic=self.monotonic
        )
        self.monitor.tick()

    def live_until(self, end: datetime, *, ssh: bool) -> None:
        """Let time pass to `end`, the monitor writing every hour; alice in SSH or not."""
        fake_proc(self.proc, [SSH_ARGV] if ssh else [])
        while self.now.now + timedelta(hours=1) <= end:
            self.now.advance(hours=1)
            if self.monitor is not None:
                self.monitor.tick()
        self.now.now = end

    def monotonic(self) -> float:
        """The monotonic clock moves with the test's clock: no jump is seen."""
        return self.now.now.timestamp()

    def notice(self) -> str:
        path = self.home / activity.NOTICE
        return path.read_text() if path.exists() else ""


def cleanup(host, *args: str):
    result = host.cli("cleanup", *args)
    assert result.code == 0, result.out + result.err
    return result


def assessment(host, name: str = "web") -> dict:
    rows = json.loads(cleanup(host, "--dry-run", "--json").out)["containers"]
    return next(row for row in rows if row["name"] == name)


def events(host) -> list[tuple[str, str]]:
    return [(e["action"], e["actor"]) for e in json.loads(host.cli("events", "--json").out)]


@pytest.mark.slow
def test_two_weeks_of_a_container(host, now, webhook: str, tmp_path: Path) -> None:
    now.now = DAY0
    set_policy(host, webhook=webhook)
    web = Container(host, now, tmp_path / "proc")

    # Day 0, 09:00 — alice creates web and works in it over SSH until Wednesday evening.
    assert host.cli("create", "web", "--owner", "alice", "--timeout", "30").code == 0
    web.boot()
    (web.home / "project").mkdir()
    (web.home / "project/notes.txt").write_text("the plan\n")
    web.live_until(datetime(2026, 11, 4, 18, 0, tzinfo=UTC), ssh=True)
    last_seen = "2026-11-04T18:00:00Z"

    # Days 3 to 5 — idle; cleanup has nothing to do yet, and says when the stop would come.
    for day in (3, 4, 5):
        web.live_until(DAY0 + timedelta(days=day), ssh=False)
        row = assessment(host)
        assert row["action"] == "none"
        assert row["lastActivity"] == last_seen
        assert row["stopAt"] == "2026-11-08T18:00:00Z"  # 4 days after the last SSH session
        assert row["signals"]["ssh"] == {"lastSeen": last_seen, "sessions": 0}
        cleanup(host)

    # Day 6, 09:00 — the stop was due at 18:00 yesterday's run could not warn for: the warning
    # goes out now, and the stop waits its full 24 hours.
    web.live_until(DAY0 + timedelta(days=6), ssh=False)
    result = cleanup(host)
    assert (
        "web (alice, running): warn: stops at 2026-11-09T09:00:00Z  -> warned (stop, 24 h ahead)"
        in result.out
    )
    assert (
        "devbox will STOP the container web (owner alice) at 2026-11-09 09:00 UTC" in web.notice()
    )
    assert "To cancel: devbox-ctl keepalive --for 48h" in web.notice()
    assert Hook.received[-1][0]["Title"] == "devbox: web stops at 2026-11-09 09:00 UTC"
    assert host.running() == ["web"]

    # Day 7, 09:00 — stopped, by cleanup, with the signals and the policy on record.
    web.live_until(DAY0 + timedelta(days=7), ssh=False)
    assert "web (alice, running): STOP now  -> stopped" in cleanup(host).out
    web.monitor = None
    assert host.running() == []
    [record] = host.records()
    assert (record["state"], record["stoppedAt"]) == ("stopped", "2026-11-09T09:00:00Z")
    stop = json.loads(host.cli("events", "--json", "--container", "web").out)[-1]
    assert (stop["action"], stop["actor"]) == ("stop", "cleanup")
    assert stop["signals"]["ssh"]["lastSeen"] == last_seen
    assert stop["policy"]["idleStopDays"] == 4
    assert web.notice() == ""

    # Days 8 to 10 — stopped; the destroy is 7 days after the stop.
    for day in (8, 9, 10):
        web.live_until(DAY0 + timedelta(days=day), ssh=False)
        assert assessment(host)["destroyAt"] == "2026-11-16T09:00:00Z"
        cleanup(host)

    # Day 11 — 72 hours ahead: the first destroy warning; day 12 nothing; day 13 the second.
    web.live_until(DAY0 + timedelta(days=11), ssh=False)
    assert "warned (destroy, 72 h ahead)" in cleanup(host).out
    assert "devbox will DESTROY the stopped container web" in web.notice()
    assert "To cancel: devbox-ctl start web" in web.notice()
    web.live_until(DAY0 + timedelta(days=12), ssh=False)
    assert "web (alice, stopped): nothing to do" in cleanup(host).out
    web.live_until(DAY0 + timedelta(days=13), ssh=False)
    assert "warned (destroy, 24 h ahead)" in cleanup(host).out

    # Day 14 — destroyed, after a snapshot of its volume.
    web.live_until(DAY0 + timedelta(days=14), ssh=False)
    assert "web (alice, stopped): DESTROY now (after a snapshot)  -> destroyed (snapshot " in (
        cleanup(host).out
    )
    assert host.records() == []
    assert host.podman("volume", "exists", "web-data").returncode != 0
    (snapshot,) = (host.state / "snapshots").glob("web-20261116T090000Z-*.tar")
    assert snapshot.is_file()

    # The same day — alice wants it back.
    restored = host.cli("restore", "web", "--timeout", "30")
    assert restored.code == 0, restored.err
    assert f"Restored web (owner alice) from {snapshot.stem}." in restored.out
    assert host.running() == ["web"]
    assert (web.home / "project/notes.txt").read_text() == "the plan\n"

    assert events(host) == [
        ("create", "root"),
        ("warning", "cleanup"),
        ("stop", "cleanup"),
        ("warning", "cleanup"),
        ("warning", "cleanup"),
        ("destroy", "cleanup"),
        ("restore", "root"),
    ]
    assert [h["Title"] for h, _ in Hook.received] == [
        "devbox: web stops at 2026-11-09 09:00 UTC",
        "devbox: web is destroyed at 2026-11-16 09:00 UTC",
        "devbox: web is destroyed at 2026-11-16 09:00 UTC",
    ]
