"""An idle browser tab left open on code-server is activity: the container is not stopped.

docs/lifecycle.md decides it: code-server re-beats its heartbeat every 60 s while any
connection is open (an open tab holds a WebSocket), so a forgotten tab keeps the container
running, as Coder counts open connections. `CodeServerHeart` stands in for code-server's
heartbeat: it follows code-server v4.91.1 (what nixpkgs' code-server package builds; the same
logic in v4.133.0), src/node/heart.ts (`Heart.beat()`: writes the heartbeat file unless it beat
within `heartbeatInterval` = 60000 ms, then arms a 60 s timer that beats again if
`isActive()`) and src/node/routes/index.ts (every HTTP or WebSocket request but /healthz
beats; `isActive()` is `app.server.getConnections()` > 0). The monitor, the host's reading of
its record and the policy are devbox's own, unchanged.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from lifecycle_support import fake_proc, open_as_volume

from devbox.container import activity, monitor
from devbox.declare import models
from devbox.lifecycle import policy
from devbox.lifecycle.work import Work

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
INTERVAL = timedelta(seconds=60)  # heart.ts: heartbeatInterval = 60000


class CodeServerHeart:
    """code-server's Heart and its caller, driven by the test's clock."""

    def __init__(self, heartbeat: Path) -> None:
        self.heartbeat = heartbeat
        self.last_beat: datetime | None = None
        self.timer: datetime | None = None
        self.connections = 0

    def _beat(self, now: datetime) -> None:
        if self.last_beat is not None and now - self.last_beat < INTERVAL:
            return  # alive(): no write, no new timer
        self.last_beat = now
        self.timer = now + INTERVAL
        self.heartbeat.parent.mkdir(parents=True, exist_ok=True)
        self.heartbeat.touch()
        os.utime(self.heartbeat, (now.timestamp(), now.timestamp()))

    def request(self, now: datetime, url: str = "/") -> None:
        if url.rstrip("/") != "/healthz":
            self._beat(now)

    def advance(self, now: datetime) -> None:
        """Fire the timer if it is due: beat again while a connection is open."""
        while self.timer is not None and self.timer <= now:
            due, self.timer = self.timer, None
            if self.connections > 0:
                self._beat(due)


def run_for(
    heart: CodeServerHeart, watcher: monitor.Monitor, clock: list[datetime], days: float
) -> None:
    """Time passes in one-hour steps; code-server's timer and the monitor run as they would."""
    end = clock[0] + timedelta(days=days)
    while clock[0] < end:
        clock[0] += timedelta(hours=1)
        heart.advance(clock[0])
        watcher.tick()


def decide(home: Path, now: datetime) -> policy.Assessment:
    with open_as_volume(home) as tree:
        seen = activity.observe(
            tree, container="web", running=True, now=now, max_lease=timedelta(days=90)
        )
    facts = policy.Facts(
        name="web",
        running=True,
        created=T0,
        stopped_at=None,
        pin=None,
        observation=seen,
        sent=lambda _kind, _due: {},
        work=Work,
    )
    return policy.decide(facts, models.Policy(), now)


def test_an_open_idle_tab_keeps_the_container_and_closing_it_starts_the_idle_clock(
    tmp_path: Path, monkeypatch
) -> None:
    clock = [T0]
    monkeypatch.setattr("devbox.clock.now", lambda: clock[0])
    home = tmp_path / "home"
    heart = CodeServerHeart(home / activity.HEARTBEAT)
    started = T0.timestamp()
    watcher = monitor.Monitor(
        home,
        "web",
        proc=fake_proc(tmp_path / "proc", []),
        monotonic=lambda: clock[0].timestamp() - started,
    )
    watcher.tick()

    # The tab loads (a request) and keeps its WebSocket open; nobody types for ten days.
    heart.request(clock[0])
    heart.connections = 1
    run_for(heart, watcher, clock, days=10)
    held = decide(home, clock[0])
    assert held.action == "none"
    assert held.last_activity is not None
    assert clock[0] - held.last_activity <= INTERVAL
    assert held.signals["code-server"]["lastSeen"] == held.last_activity.strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )

    # Health checks alone are no activity; the tab closes: the last beat is the last activity.
    heart.connections = 0
    closed_at = clock[0]
    heart.request(clock[0], "/healthz")
    run_for(heart, watcher, clock, days=1)
    after = decide(home, clock[0])
    assert after.last_activity is not None
    assert closed_at - INTERVAL <= after.last_activity <= closed_at + INTERVAL
    assert after.stop_at == after.last_activity + timedelta(days=7)
