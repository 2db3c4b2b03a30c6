"""The activity record: written by the monitor as the image runs it, read by the host fail-safe.

The monitor's probes run against real processes (spawned with the argv tailscaled and Zed
give them) and against a process table of the test's own, so counts do not depend on what
else runs on the machine. The record is always the one `monitor.Monitor` writes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from lifecycle_support import SSH_ARGV, fake_proc, open_as_volume

from devbox.container import activity, monitor
from support import console_script

ZED_PROXY = ["/home/dev/.zed_server/zed-remote-server-stable-0.170.4", "proxy", "--identifier", "x"]
ZED_RUN = ["/home/dev/.zed_server/zed-remote-server-stable-0.170.4", "run", "--log-file", "l"]


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Real processes whose argv is what tailscaled's incubator and Zed's proxy have.

    /bin/sh runs a script named like the second word (be-child, proxy), so the process keeps
    exactly the argv it was given while it sleeps. Popen can return before the kernel has
    finished the child's exec (its /proc/<pid>/cmdline is empty for that moment), so each
    script first creates a file of its own, and the fixture waits for those files: a shell
    that reads its script has its argv in place. Each runs in a session of its own, so the
    teardown ends its sleep too.
    """
    for script in ("be-child", "proxy"):
        (tmp_path / script).write_text(f": > {script}.started\nsleep 600\ntrue\n")
    spawned = [
        subprocess.Popen(SSH_ARGV, executable="/bin/sh", cwd=tmp_path, start_new_session=True),
        subprocess.Popen(ZED_PROXY, executable="/bin/sh", cwd=tmp_path, start_new_session=True),
    ]
    deadline = time.monotonic() + 30
    while not all((tmp_path / f"{s}.started").exists() for s in ("be-child", "proxy")):
        assert time.monotonic() < deadline, "the stand-in processes did not start"
        time.sleep(0.01)
    yield spawned
    for child in spawned:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()


def test_the_probes_find_real_ssh_sessions_and_zed_clients(
    processes: list[subprocess.Popen[bytes]],
) -> None:
    argvs = monitor.processes()
    assert SSH_ARGV in argvs
    assert ZED_PROXY in argvs
    assert monitor.ssh_sessions(argvs) >= 1
    assert monitor.zed_clients(argvs) >= 1


def test_only_incubators_and_zed_proxies_count() -> None:
    argvs = [
        SSH_ARGV,
        ["/bin/tailscaled", "--tun=userspace-networking", "--statedir=/x"],
        ["/bin/tailscaled", "be-child", "sftp"],
        ZED_PROXY,
        ZED_RUN,
        ["bash", "-c", "echo be-child ssh"],
    ]
    assert monitor.ssh_sessions(argvs) == 1
    assert monitor.zed_clients(argvs) == 1


def read(home: Path) -> dict:
    return json.loads((home / activity.RECORD).read_text())


def test_the_monitor_writes_the_documented_record(tmp_path: Path, now) -> None:
    home, proc = tmp_path / "home", fake_proc(tmp_path / "proc", [SSH_ARGV])
    beat = home / activity.HEARTBEAT
    beat.parent.mkdir(parents=True)
    beat.touch()
    at = (now.now - timedelta(minutes=3)).timestamp()
    os.utime(beat, (at, at))

    watcher = monitor.Monitor(home, "web", proc=proc)
    watcher.tick()

    assert read(home) == {
        "version": 1,
        "container": "web",
        "monitor": {
            "startedAt": "2026-11-02T09:00:00Z",
            "updatedAt": "2026-11-02T09:00:00Z",
            "intervalSeconds": 60,
        },
        "signals": {
            "ssh": {"lastSeen": "2026-11-02T09:00:00Z", "sessions": 1},
            "code-server": {"lastSeen": "2026-11-02T08:57:00Z"},
            "zed": {"lastSeen": None, "sessions": 0},
            "keepalive": {"lastSeen": None},
            "start": {"lastSeen": "2026-11-02T09:00:00Z"},
        },
    }
    # Written atomically: nothing but the record is left in its directory.
    assert sorted(p.name for p in (home / activity.STATE).iterdir()) == ["activity.json"]


def test_last_seen_never_moves_backwards_and_survives_a_restart(tmp_path: Path, now) -> None:
    home, proc = tmp_path / "home", tmp_path / "proc"
    watcher = monitor.Monitor(home, "web", proc=fake_proc(proc, [SSH_ARGV, ZED_PROXY]))
    watcher.tick()
    now.advance(minutes=1)
    fake_proc(proc, [])
    watcher.tick()
    record = read(home)
    assert record["signals"]["ssh"] == {"lastSeen": "2026-11-02T09:00:00Z", "sessions": 0}
    assert record["signals"]["zed"] == {"lastSeen": "2026-11-02T09:00:00Z", "sessions": 0}
    assert record["monitor"]["updatedAt"] == "2026-11-02T09:01:00Z"

    # A restart a minute later (the monitor crashed): no gap, nothing forgotten.
    now.advance(minutes=1)
    restarted = monitor.Monitor(home, "web", proc=proc)
    restarted.tick()
    record = read(home)
    assert record["signals"]["ssh"]["lastSeen"] == "2026-11-02T09:00:00Z"
    assert record["signals"]["start"]["lastSeen"] == "2026-11-02T09:00:00Z"
    assert record["monitor"]["startedAt"] == "2026-11-02T09:02:00Z"


def test_a_gap_the_monitor_did_not_see_counts_as_activity(tmp_path: Path, now) -> None:
    home, proc = tmp_path / "home", fake_proc(tmp_path / "proc", [])
    monitor.Monitor(home, "web", proc=proc).tick()
    now.advance(days=3)  # the host was down
    monitor.Monitor(home, "web", proc=proc).tick()
    assert read(home)["signals"]["start"]["lastSeen"] == "2026-11-05T09:00:00Z"


def test_a_clock_jump_counts_as_activity(tmp_path: Path, now) -> None:
    home, proc = tmp_path / "home", fake_proc(tmp_path / "proc", [])
    watcher = monitor.Monitor(home, "web", proc=proc)
    watcher.tick()
    now.advance(days=10)  # the wall clock moved ten days in no time at all
    watcher.tick()
    assert read(home)["signals"]["start"]["lastSeen"] == "2026-11-12T09:00:00Z"


def test_a_lease_is_activity_while_it_lasts(tmp_path: Path, now) -> None:
    home, proc = tmp_path / "home", fake_proc(tmp_path / "proc", [])
    leases = activity.Leases(
        version=1,
        leases=[
            activity.Lease(
                id="a1", until=now.now + timedelta(hours=2), reason="x", created_at=now.now
            )
        ],
    )
    (home / activity.STATE).mkdir(parents=True)
    (home / activity.LEASES).write_bytes(leases.to_json())
    watcher = monitor.Monitor(home, "web", proc=proc)
    watcher.tick()
    now.advance(hours=3)
    watcher.tick()
    assert read(home)["signals"]["keepalive"]["lastSeen"] == "2026-11-02T09:00:00Z"


# The host's side


def observe(home: Path, now: datetime, *, running: bool = True, container: str = "web"):
    with open_as_volume(home) as tree:
        return activity.observe(
            tree, container=container, running=running, now=now, max_lease=timedelta(days=90)
        )


def test_the_host_reads_what_the_monitor_wrote(tmp_path: Path, now) -> None:
    home = tmp_path / "home"
    monitor.Monitor(home, "web", proc=fake_proc(tmp_path / "proc", [SSH_ARGV])).tick()
    seen = observe(home, now.now + timedelta(minutes=1))
    assert seen.unknown == []
    assert seen.last_activity == now.now
    assert seen.signals["ssh"] == {"lastSeen": "2026-11-02T09:00:00Z", "sessions": 1}
    assert seen.signals["monitor"]["state"] == "ok"


def write_record(home: Path, content: bytes) -> None:
    (home / activity.STATE).mkdir(parents=True, exist_ok=True)
    (home / activity.RECORD).write_bytes(content)


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (None, "does not exist"),
        (b"{not json", "not JSON"),
        (b'{"version": 2, "container": "web"}', "version 2 is not one"),
        (b'{"version": 1, "container": "web"}', "monitor"),
        (b"\xff\xfe", "not JSON"),
    ],
)
def test_an_unreadable_record_is_unknown_never_idle(
    tmp_path: Path, now, content: bytes | None, why: str
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    if content is not None:
        write_record(home, content)
    seen = observe(home, now.now + timedelta(days=30))
    assert len(seen.unknown) == 1
    assert why in seen.unknown[0]


def test_a_record_from_the_future_or_gone_stale_is_unknown(tmp_path: Path, now) -> None:
    home = tmp_path / "home"
    monitor.Monitor(home, "web", proc=fake_proc(tmp_path / "proc", [])).tick()
    assert "in the future" in observe(home, now.now - timedelta(hours=1)).unknown[0]
    later = now.now + timedelta(minutes=30)
    assert "has not written since 2026-11-02T09:00:00Z" in observe(home, later).unknown[0]
    # A stopped container's monitor is not expected to write.
    assert observe(home, later, running=False).unknown == []
    assert "written for 'web'" in observe(home, now.now, container="api").unknown[0]


def test_links_fifos_and_huge_files_are_not_followed_or_read(tmp_path: Path, now) -> None:
    home = tmp_path / "home"
    secret = tmp_path / "secret.json"
    secret.write_text("{}")
    (home / activity.STATE).mkdir(parents=True)
    (home / activity.RECORD).symlink_to(secret)
    assert "Too many levels of symbolic links" in observe(home, now.now).unknown[0]
    (home / activity.RECORD).unlink()
    os.mkfifo(home / activity.RECORD)
    assert "not a regular file" in observe(home, now.now).unknown[0]
    (home / activity.RECORD).unlink()
    (home / activity.RECORD).write_bytes(b" " * (activity.MAX_BYTES + 1))
    assert "larger than" in observe(home, now.now).unknown[0]
    # A link higher up the path is refused too.
    (home / activity.RECORD).unlink()
    elsewhere = tmp_path / "elsewhere"
    monitor.Monitor(elsewhere, "web", proc=fake_proc(tmp_path / "proc", [])).tick()
    state = home / ".local" / "state"
    (state / "devbox").rename(tmp_path / "moved")
    (state / "devbox").symlink_to(elsewhere / activity.STATE)
    assert observe(home, now.now).unknown


def test_leases_reach_at_most_the_policy_maximum(tmp_path: Path, now) -> None:
    home = tmp_path / "home"
    monitor.Monitor(home, "web", proc=fake_proc(tmp_path / "proc", [])).tick()
    forever = activity.Lease(
        id="x", until=datetime(2099, 1, 1, tzinfo=UTC), reason="forever", created_at=now.now
    )
    (home / activity.LEASES).write_bytes(activity.Leases(version=1, leases=[forever]).to_json())
    seen = observe(home, now.now)
    assert seen.active_until == now.now + timedelta(days=90)
    assert seen.signals["leases"]["reasons"] == ["forever"]
    (home / activity.LEASES).write_text("[]")
    assert "keep-alive leases cannot be read" in observe(home, now.now).unknown[0]


def test_no_volume_is_unknown(now) -> None:
    seen = activity.observe(
        None, container="web", running=True, now=now.now, max_lease=timedelta(days=1)
    )
    assert seen.unknown == ["the volume does not exist, so activity cannot be read"]


def test_devbox_ctl_monitor_writes_until_sigterm_then_exits_0(tmp_path: Path) -> None:
    env = {**os.environ, "HOME": str(tmp_path), "CONTAINER_NAME": "web"}
    # The console script: beside this interpreter in a virtual environment, on PATH in the
    # flake's check (the package's $out/bin), never assumed to be either.
    ctl = console_script()
    child = subprocess.Popen([str(ctl), "monitor", "--interval", "1"], env=env)
    record = tmp_path / activity.RECORD
    deadline = time.monotonic() + 20
    while not record.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    child.send_signal(signal.SIGTERM)
    assert child.wait(timeout=10) == 0
    assert read(tmp_path)["container"] == "web"
    missing = subprocess.run(
        [str(ctl), "monitor"],
        env={**env, "CONTAINER_NAME": ""},
        capture_output=True,
        text=True,
        check=False,
    )
    assert missing.returncode == 2
    assert "error: CONTAINER_NAME and HOME must be set" in missing.stderr
