"""The activity monitor: what runs inside a container and records when it was last used.

The image's entrypoint runs `devbox-ctl monitor` (as the user dev) until SIGTERM. About once
a minute it looks for activity and rewrites `~/.local/state/devbox/activity.json` (the
format of docs/container-interface.md) atomically:

- ssh: open Tailscale SSH sessions. tailscaled runs each session's shell under an incubator
  process, `tailscaled be-child ssh …`, which lives as long as the session (as an
  unprivileged user it cannot hand over to login or su);
- code-server: the modification time of `~/.local/share/code-server/heartbeat`, which
  code-server touches while a browser is connected and active;
- zed: Zed clients. A client runs `zed-remote-server-… proxy --identifier …` over SSH for as
  long as it is connected; the `run` server it talks to stays a while after the client
  leaves, so only proxies count;
- keepalive: a keep-alive lease (keepalive.json) reaching past now;
- start: the monitor started after a gap it did not observe (the first start, a restart of
  the container, host downtime) or saw the wall clock jump against the monotonic clock. Time
  the monitor did not see counts as activity.

A lastSeen never moves backwards: the previous record is read at start, so restarts keep it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from devbox import clock, write
from devbox.container import activity
from devbox.container.activity import Record, SignalState

log = logging.getLogger(__name__)

PROC = Path("/proc")
# The monitor did not observe the time since the previous record's last write when it is
# older than this many intervals: a gap (the container or the host was down).
GAP_INTERVALS = 3
# A wall clock that moved this much more (or less) than the monotonic clock jumped.
JUMP = timedelta(minutes=2)


def processes(proc: Path = PROC) -> list[list[str]]:
    """The argv of every process this monitor can see (those that vanish are skipped)."""
    found = []
    for entry in proc.iterdir():
        if not (entry.name.isascii() and entry.name.isdigit()):
            continue
        try:
            raw = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if raw:
            found.append(raw.rstrip(b"\0").decode("utf-8", "replace").split("\0"))
    return found


def ssh_sessions(argvs: list[list[str]]) -> int:
    """Open Tailscale SSH sessions: incubator processes `tailscaled be-child ssh …`."""
    return sum(1 for argv in argvs if argv[1:3] == ["be-child", "ssh"])


def zed_clients(argvs: list[list[str]]) -> int:
    """Connected Zed clients: `zed-remote-server-<channel>-<version> proxy …` processes."""
    return sum(
        1
        for argv in argvs
        if len(argv) > 1
        and Path(argv[0]).name.startswith("zed-remote-server")
        and argv[1] == "proxy"
    )


def heartbeat(home: Path) -> datetime | None:
    """When code-server last beat (its heartbeat file's mtime), or None."""
    try:
        return activity.from_epoch((home / activity.HEARTBEAT).stat().st_mtime)
    except OSError:
        return None


def leased(home: Path, now: datetime) -> bool:
    """Whether a keep-alive lease reaches past now (an unreadable file counts as one)."""
    try:
        content = (home / activity.LEASES).read_bytes()
    except FileNotFoundError:
        return False
    except OSError:
        return True
    try:
        return any(lease.until > now for lease in activity.parse_leases(content).leases)
    except activity.Unreadable:
        return True


@dataclass(frozen=True)
class Sample:
    """What the monitor saw at one moment."""

    ssh: int
    zed: int
    heartbeat: datetime | None
    leased: bool


def sample(home: Path, now: datetime, proc: Path = PROC) -> Sample:
    """Look at every signal once."""
    argvs = processes(proc)
    return Sample(ssh_sessions(argvs), zed_clients(argvs), heartbeat(home), leased(home, now))


def _seen(previous: SignalState | None, at: datetime | None, sessions: int | None) -> SignalState:
    """A signal seen (or not) at a time, never earlier than before."""
    last = activity.latest(previous.last_seen if previous else None, at)
    return SignalState(last_seen=last, sessions=sessions)


def previous_record(home: Path, container: str) -> Record | None:
    """The record a previous monitor of this container left, if it can be read."""
    try:
        record = activity.parse_record((home / activity.RECORD).read_bytes())
    except (OSError, activity.Unreadable):
        return None
    return record if record.container == container else None


class Monitor:
    """Samples the signals and keeps the record."""

    def __init__(
        self,
        home: Path,
        container: str,
        *,
        interval: int = activity.INTERVAL,
        proc: Path = PROC,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.home = home
        self.container = container
        self.interval = interval
        self.proc = proc
        # The clock that never jumps, against which the wall clock's jumps are seen; tests
        # that move the wall clock (devbox.clock.now) move this one with it.
        self.monotonic = monotonic
        now = clock.now()
        self._last = (now, monotonic())
        self.record = self._resume(previous_record(home, container), now)

    def _resume(self, previous: Record | None, now: datetime) -> Record:
        signals = dict(previous.signals) if previous else {}
        gap = timedelta(seconds=GAP_INTERVALS * self.interval)
        if previous is None or not (
            now - gap <= previous.monitor.updated_at <= now + activity.SKEW
        ):
            # The monitor did not see the time since the last write: it counts as activity.
            signals["start"] = _seen(signals.get("start"), now, None)
        return Record(
            version=activity.VERSION,
            container=self.container,
            monitor=activity.MonitorState(
                started_at=now, updated_at=now, interval_seconds=self.interval
            ),
            signals=signals,
        )

    def tick(self) -> Record:
        """Sample, update the record, write it; return it."""
        now, ticks = clock.now(), self.monotonic()
        signals = dict(self.record.signals)
        walked = timedelta(seconds=ticks - self._last[1])
        if abs((now - self._last[0]) - walked) > JUMP:
            log.warning("the clock jumped (%s after %s): counted as activity", now, self._last[0])
            signals["start"] = _seen(signals.get("start"), now, None)
        self._last = (now, ticks)
        seen = sample(self.home, now, self.proc)
        signals["ssh"] = _seen(signals.get("ssh"), now if seen.ssh else None, seen.ssh)
        beat = None if seen.heartbeat is None else min(seen.heartbeat, now)
        signals["code-server"] = _seen(signals.get("code-server"), beat, None)
        signals["zed"] = _seen(signals.get("zed"), now if seen.zed else None, seen.zed)
        signals["keepalive"] = _seen(signals.get("keepalive"), now if seen.leased else None, None)
        signals.setdefault("start", SignalState())
        monitor = self.record.monitor.model_copy(update={"updated_at": now})
        self.record = self.record.model_copy(update={"signals": signals, "monitor": monitor})
        self.write()
        return self.record

    def write(self) -> None:
        """Replace the record on the volume (a failure is logged; the next tick retries)."""
        try:
            write.write_file(self.home / activity.RECORD, self.record.to_json(), parents=True)
        except OSError as exc:
            log.warning("could not write %s: %s", activity.RECORD, exc)

    def run(self, stop: threading.Event) -> None:
        """Tick every interval until stop is set; write once more on the way out."""
        while True:
            self.tick()
            if stop.wait(self.interval):
                self.tick()
                return
