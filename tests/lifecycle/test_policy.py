"""The lifecycle policy as a pure function: lifecycle.decide over facts and an injected now."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from devbox.container import activity
from devbox.declare import models
from devbox.lifecycle import policy
from devbox.lifecycle.work import Work

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
POLICY = models.Policy()  # idle 7 days, destroy 14 days, warnings [24] and [72, 24]


def observed(last: datetime | None = None, *, until=None, unknown=()) -> activity.Observation:
    signals = {"ssh": {"lastSeen": None if last is None else last.strftime("%Y-%m-%dT%H:%M:%SZ")}}
    return activity.Observation(signals, last, until, list(unknown))


def facts(
    *,
    running: bool = True,
    last: datetime | None = T0,
    created: datetime | None = T0,
    stopped_at: datetime | None = None,
    pin: models.Pin | None = None,
    sent: dict[tuple[str, datetime], dict[int, datetime]] | None = None,
    work: Work | None = None,
    until: datetime | None = None,
    unknown: tuple[str, ...] = (),
) -> policy.Facts:
    ledger = sent or {}
    return policy.Facts(
        name="web",
        running=running,
        created=created,
        stopped_at=stopped_at,
        pin=pin,
        observation=observed(last, until=until, unknown=unknown),
        sent=lambda kind, due: ledger.get((kind, due), {}),
        work=lambda: work or Work(),
    )


def test_a_used_container_has_nothing_to_do_and_says_when_it_would_stop() -> None:
    a = policy.decide(facts(), POLICY, T0 + timedelta(days=1))
    assert a.action == "none"
    assert a.last_activity == T0
    assert a.stop_at == T0 + timedelta(days=7)
    assert a.destroy_at == T0 + timedelta(days=21)
    assert a.reasons[0] == "last activity 2026-11-02T09:00:00Z (ssh)"


def test_the_stop_warning_comes_a_day_ahead_and_the_stop_only_after_it() -> None:
    due = T0 + timedelta(days=7)
    warn = policy.decide(facts(), POLICY, due - timedelta(hours=24))
    assert (warn.action, warn.warn_hours, warn.stop_at) == ("warn-stop", 24, due)
    # A warning sent late (a missed run) moves the stop: it always comes 24 h ahead.
    late_warning = policy.decide(facts(), POLICY, due - timedelta(hours=23))
    assert late_warning.stop_at == due + timedelta(hours=1)
    # Without the warning on record, the stop is not due even at the due time.
    late = policy.decide(facts(), POLICY, due)
    assert late.action == "warn-stop"
    assert late.stop_at == due + timedelta(hours=24)
    sent = {("stop", due): {24: due - timedelta(hours=23)}}
    assert policy.decide(facts(sent=sent), POLICY, due - timedelta(hours=1)).action == "none"
    assert policy.decide(facts(sent=sent), POLICY, due).action == "none"
    stop = policy.decide(facts(sent=sent), POLICY, due + timedelta(hours=1))
    assert stop.action == "stop"


def test_unknown_activity_is_activity_now_and_nothing_happens() -> None:
    now = T0 + timedelta(days=60)
    a = policy.decide(facts(unknown=("the activity record cannot be used: x",)), POLICY, now)
    assert a.action == "none"
    assert a.last_activity == now
    assert a.stop_at is None
    assert "counted as activity now" in a.reasons[0]
    stopped = facts(running=False, stopped_at=T0, unknown=("missing",))
    assert policy.decide(stopped, POLICY, now).action == "none"


def test_a_pin_holds_until_the_end_of_its_day() -> None:
    pin = models.Pin(until=date(2026, 12, 24), reason="fine-tuning run")
    end = datetime(2026, 12, 25, tzinfo=UTC)
    a = policy.decide(facts(pin=pin), POLICY, datetime(2026, 12, 20, tzinfo=UTC))
    assert a.action == "none"
    assert a.stop_at == end
    assert any("pinned until 2026-12-24 (fine-tuning run)" in r for r in a.reasons)
    warn = policy.decide(facts(pin=pin), POLICY, end - timedelta(hours=2))
    assert warn.action == "warn-stop"


def test_a_lease_keeps_it_alive_through_its_end() -> None:
    until = T0 + timedelta(days=10)
    a = policy.decide(facts(until=until), POLICY, T0 + timedelta(days=8))
    assert a.action == "none"
    assert a.stop_at == until + timedelta(days=7)


def test_destroy_counts_from_the_stop_time_with_two_warnings() -> None:
    stopped = T0 + timedelta(days=7)
    due = stopped + timedelta(days=14)
    base = {"running": False, "stopped_at": stopped}
    first = policy.decide(facts(**base), POLICY, due - timedelta(hours=71))
    assert (first.action, first.warn_hours, first.destroy_at) == ("warn-destroy", 72, due)
    sent = {("destroy", due): {72: due - timedelta(hours=71)}}
    assert policy.decide(facts(**base, sent=sent), POLICY, due - timedelta(hours=30)).action == (
        "none"
    )
    second = policy.decide(facts(**base, sent=sent), POLICY, due - timedelta(hours=24))
    assert (second.action, second.warn_hours) == ("warn-destroy", 24)
    sent[("destroy", due)][24] = due - timedelta(hours=24)
    assert policy.decide(facts(**base, sent=sent), POLICY, due - timedelta(minutes=1)).action == (
        "none"
    )
    assert policy.decide(facts(**base, sent=sent), POLICY, due).action == "destroy"


def test_unsaved_work_refuses_the_destroy() -> None:
    stopped = T0
    due = stopped + timedelta(days=14)
    sent = {("destroy", due): {24: due - timedelta(days=1)}}
    work = Work(found=["~/project: 2 commits on no remote"])
    a = policy.decide(facts(running=False, stopped_at=stopped, sent=sent, work=work), POLICY, due)
    assert a.action == "refuse-destroy"
    assert "work on the volume: ~/project: 2 commits on no remote" in a.reasons
    off = POLICY.model_copy(update={"protect_unpushed_work": False})
    assert (
        policy.decide(
            facts(running=False, stopped_at=stopped, sent=sent, work=work), off, due
        ).action
        == "destroy"
    )


def test_a_stopped_container_without_a_stop_time_gets_one_and_is_not_destroyed() -> None:
    a = policy.decide(facts(running=False, stopped_at=None), POLICY, T0 + timedelta(days=90))
    assert a.action == "none"
    assert a.record_stopped_at


@pytest.mark.parametrize("leads", [(), (48, 6)])
def test_effective_time_never_precedes_the_last_warning(leads: tuple[int, ...]) -> None:
    due = T0
    now = T0 + timedelta(hours=5)
    at = policy.effective(due, leads, {}, now)
    assert at == (due if not leads else now + timedelta(hours=min(leads)))
