"""Properties of the lifecycle policy (hypothesis), over random policies, histories and clocks.

The policy is lifecycle.decide; the warnings ledger is notices.Ledger, marked the way cleanup
marks it. The snapshot property runs against real podman volumes.
"""

from __future__ import annotations

import subprocess
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from lifecycle_support import fill_volume, runtime

from devbox.container import activity
from devbox.declare import models
from devbox.lifecycle import notices, snapshots
from devbox.lifecycle import policy as lifecycle
from devbox.lifecycle.work import Work

T0 = datetime(2026, 1, 1, tzinfo=UTC)
HOURS = st.integers(min_value=0, max_value=60 * 24)

policies = st.builds(
    lambda idle, extra, stop_leads, destroy_leads, protect: models.Policy(
        idle_stop_days=idle,
        stopped_destroy_days=idle + extra,
        stop_warning_hours=stop_leads,
        destroy_warning_hours=destroy_leads,
        protect_unpushed_work=protect,
    ),
    st.integers(1, 14),
    st.integers(0, 14),
    st.lists(st.integers(1, 96), max_size=3),
    st.lists(st.integers(1, 200), max_size=3),
    st.booleans(),
)


def at(hours: int | None) -> datetime | None:
    return None if hours is None else T0 + timedelta(hours=hours)


@st.composite
def situations(draw: st.DrawFn) -> tuple[lifecycle.Facts, datetime, dict]:
    """A container at a moment: its signals, pin, stop time, the warnings sent, its work."""
    running = draw(st.booleans())
    now_h = draw(HOURS)
    created = at(draw(st.none() | st.integers(0, now_h)))
    last = at(draw(st.none() | st.integers(0, now_h)))
    until = at(draw(st.none() | st.integers(0, now_h + 30 * 24)))
    stopped_at = None if running else at(draw(st.none() | st.integers(0, now_h)))
    pin = draw(
        st.none()
        | st.builds(
            lambda d: models.Pin(until=date(2026, 1, 1) + timedelta(days=d), reason="r"),
            st.integers(0, 90),
        )
    )
    unknown = draw(st.lists(st.sampled_from(["unreadable", "missing", "future"]), max_size=1))
    sent_hours = draw(st.dictionaries(st.integers(1, 200), st.integers(0, now_h), max_size=3))
    work = Work(found=draw(st.lists(st.just("~/x: 1 commits"), max_size=1)))
    truth = {"last": last, "until": until, "unknown": unknown, "sent": sent_hours, "work": work}
    now = at(now_h)
    # As activity.observe reports a lease: covered up to now, and active beyond it.
    covered = activity.latest(last, None if until is None else min(until, now))
    active = until if until is not None and until > now else None
    observation = activity.Observation({}, covered, active, unknown)
    facts = lifecycle.Facts(
        name="web",
        running=running,
        created=created,
        stopped_at=stopped_at,
        pin=pin,
        observation=observation,
        sent=lambda _kind, _due: {h: at(s) for h, s in sent_hours.items()},
        work=lambda: work,
    )
    return facts, now, truth


@settings(max_examples=400, deadline=None)
@given(situation=situations(), policy=policies)
def test_no_stop_inside_the_activity_window_no_destroy_too_early_nothing_on_a_guess(
    situation: tuple[lifecycle.Facts, datetime, dict], policy: models.Policy
) -> None:
    facts, now, truth = situation
    a = lifecycle.decide(facts, policy, now)
    event(a.action)
    assert a.action in lifecycle.ACTIONS
    acts = a.action in ("stop", "destroy")
    if truth["unknown"]:
        # An unreadable signal is activity now: nothing happens on a guess.
        assert a.action == "none"
    pin_end = lifecycle.pin_end(facts.pin)
    if acts:
        assert pin_end is None or now >= pin_end, "acted on a pinned container"
        leads = policy.stop_warning_hours if a.action == "stop" else policy.destroy_warning_hours
        if leads:
            final = min(leads)
            sent = truth["sent"]
            assert final in sent, "acted without its last warning"
            assert at(sent[final]) + timedelta(hours=final) <= now, "warned too late to act"
    if a.action == "stop":
        assert facts.running
        latest = activity.latest(truth["last"], facts.created, truth["until"])
        assert latest is not None
        assert latest + timedelta(days=policy.idle_stop_days) <= now, "stopped while active"
    if a.action == "destroy":
        assert not facts.running
        assert facts.stopped_at is not None
        assert facts.stopped_at + timedelta(days=policy.stopped_destroy_days) <= now
        assert not (policy.protect_unpushed_work and truth["work"].found)


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[int], list[int]]:
    """When alice was active (hours), and when cleanup ran (hours, increasing)."""
    active = sorted(draw(st.lists(st.integers(0, 40 * 24), max_size=6)))
    gaps = draw(st.lists(st.integers(1, 72), min_size=5, max_size=40))
    runs, t = [], 0
    for gap in gaps:
        t += gap
        runs.append(t)
    return active, runs


@settings(max_examples=300, deadline=None)
@given(history=histories(), policy=policies)
def test_repeated_cleanups_warn_before_they_act_and_never_stop_an_active_container(
    history: tuple[list[int], list[int]], policy: models.Policy
) -> None:
    active, runs = history
    ledger = notices.Ledger(Path("/nonexistent/warnings.json"), {"containers": {}})
    stopped_at: datetime | None = None
    for run in runs:
        now = at(run)
        seen = [at(h) for h in active if h <= run]
        last = max(seen) if seen else None
        facts = lifecycle.Facts(
            name="web",
            running=stopped_at is None,
            created=T0,
            stopped_at=stopped_at,
            pin=None,
            observation=activity.Observation({}, last, None, []),
            sent=lambda kind, due: ledger.sent("web", kind, due),
            work=Work,
        )
        a = lifecycle.decide(facts, policy, now)
        ledger.obsolete("web", a.episode)
        if a.action in ("warn-stop", "warn-destroy"):
            assert a.episode is not None
            ledger.mark("web", a.episode.kind, a.episode.due, a.warn_hours or 0, now)
        elif a.action == "stop":
            base = max(d for d in (last, T0) if d is not None)
            assert now - base >= timedelta(days=policy.idle_stop_days)
            if policy.stop_warning_hours:
                [warned] = [
                    datetime.fromisoformat(s)
                    for k in ledger.data["containers"]["web"].values()
                    for s in k["sent"].values()
                ][-1:]
                assert now - warned >= timedelta(hours=min(policy.stop_warning_hours))
            stopped_at = now
            event("stopped")
        elif a.action == "destroy":
            assert stopped_at is not None
            assert now - stopped_at >= timedelta(days=policy.stopped_destroy_days)
            event("destroyed")
            return


def tree(root: Path) -> dict[str, bytes | str]:
    return {
        p.relative_to(root).as_posix(): (p.read_bytes() if p.is_file() else "dir")
        for p in sorted(root.rglob("*"))
    }


NAMES = st.text(alphabet="abcdefghij_-.", min_size=1, max_size=8).filter(
    lambda n: n not in (".", "..")
)


@pytest.mark.slow
@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    files=st.dictionaries(
        st.lists(NAMES, min_size=1, max_size=3).map("/".join),
        st.binary(max_size=3000),
        min_size=1,
        max_size=8,
    )
)
def test_a_snapshot_restores_to_the_same_bytes(
    files: dict[str, bytes], tmp_path_factory, systemd_run: Path
) -> None:
    # A path that is also another's parent cannot be a file: keep the deepest.
    files = {
        path: data
        for path, data in files.items()
        if not any(other.startswith(path + "/") for other in files)
    }
    name, copy = f"prop-{uuid.uuid4().hex[:8]}", f"prop-{uuid.uuid4().hex[:8]}"
    try:
        root = fill_volume(name, files)
        state = tmp_path_factory.mktemp("state")
        rt = runtime(state, [{"name": name, "owner": "bob"}, {"name": copy, "owner": "bob"}])
        snapshots.take(rt, rt.container(name))
        snapshot = snapshots.choose(rt, name)
        snapshots.verify(snapshot)
        snapshots.import_snapshot(rt, snapshot, rt.container(copy))
        restored = Path(
            subprocess.run(
                ["podman", "volume", "inspect", f"{copy}-data", "--format", "{{.Mountpoint}}"],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.strip()
        )
        assert tree(restored) == tree(root)
    finally:
        for volume in (name, copy):
            subprocess.run(
                ["podman", "volume", "rm", "--force", f"{volume}-data"],
                capture_output=True,
                check=False,
            )
