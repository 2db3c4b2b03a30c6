"""The lifecycle policy: when a container is stopped for idleness, and when it is destroyed.

`decide` is the whole policy as a pure function of the facts (what the volume says about
activity, the declaration, the warnings already sent) and of `now`; lifecycle/assessment.py
gathers those facts for one container off the host and calls it. `list`, `status --why` and
`cleanup` all show the same Assessment, so what a dry run says is what cleanup does.

The rules (docs/lifecycle.md):

- a running container is stopped `idleStopDays` after its last activity; activity that
  cannot be read counts as activity now, so nothing is stopped on a guess;
- a stopped container is destroyed `stoppedDestroyDays` after its recorded stop time (a
  stopped container without one gets one recorded by cleanup and is not destroyed that run);
- a pin exempts a container from both until the end of its `until` day (UTC);
- nothing happens before its warnings: the last warning (the smallest lead time) must have
  been sent at least its lead time earlier, so a missed cleanup run, host downtime or a clock
  jump postpones an action instead of skipping its warning;
- with `protectUnpushedWork`, a destroy that finds uncommitted or unpushed git work on the
  volume (or cannot tell) is refused, and the owner is told instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from devbox import clock
from devbox.container import activity
from devbox.declare import resolve
from devbox.declare.models import Pin, Policy
from devbox.escaping import shown
from devbox.lifecycle.work import Work

NONE, WARN_STOP, STOP = "none", "warn-stop", "stop"
WARN_DESTROY, DESTROY, REFUSE_DESTROY = "warn-destroy", "destroy", "refuse-destroy"
ACTIONS = (NONE, WARN_STOP, STOP, WARN_DESTROY, DESTROY, REFUSE_DESTROY)


@dataclass(frozen=True)
class Episode:
    """One scheduled action and its warnings: what, when by policy, and the lead times."""

    kind: str  # "stop" | "destroy" | "refuse"
    due: datetime
    leads: tuple[int, ...]


@dataclass(frozen=True)
class Assessment:
    """What the policy says about one container now, and why."""

    last_activity: datetime | None  # latest activity seen (None: never)
    stop_at: datetime | None  # when idle stop would happen (None: not applicable)
    destroy_at: datetime | None  # when auto-destroy would happen (None: not applicable)
    action: str  # one of ACTIONS
    reasons: list[str]  # why, one line each, for humans
    signals: dict[str, Any]  # every signal's last-seen time / state, for --why and events
    episode: Episode | None = None  # the schedule the warnings belong to
    warn_hours: int | None = None  # the lead time whose warning is due now
    record_stopped_at: bool = False  # declared stopped without a stop time
    work: Work | None = None  # what protectUnpushedWork found (when it looked)
    # Its activity could not be read: last_activity is "now" only as the policy counts it (no
    # stop, no destroy), never a time to show as when it was last used.
    activity_unknown: bool = False


@dataclass(frozen=True)
class Facts:
    """Everything the policy decides on, for one container."""

    name: str
    running: bool  # declared running
    created: datetime | None
    stopped_at: datetime | None
    pin: Pin | None
    observation: activity.Observation
    sent: Callable[[str, datetime], dict[int, datetime]]  # warnings sent per episode
    work: Callable[[], Work]  # inspects the volume; called only when a destroy is near


def hours(value: int) -> timedelta:
    """A lead time."""
    return timedelta(hours=value)


def pin_end(pin: Pin | None) -> datetime | None:
    """The end of a pin's last day (midnight UTC after `until`)."""
    if pin is None:
        return None
    return datetime.combine(pin.until + timedelta(days=1), time(), UTC)


def effective(
    due: datetime, leads: tuple[int, ...], sent: dict[int, datetime], now: datetime
) -> datetime:
    """When an action due by policy may happen, given the warnings sent.

    The last warning (the smallest lead time) must precede the action by its lead time: sent
    late, it postpones the action; not sent yet, it would be sent now at the earliest.
    """
    if not leads:
        return due
    final = min(leads)
    if final in sent:
        return max(due, sent[final] + hours(final))
    return max(due, now + hours(final))


def pending_warning(
    due: datetime, leads: tuple[int, ...], sent: dict[int, datetime], now: datetime
) -> int | None:
    """The lead time whose warning is due now and not yet sent (None: none).

    When several are due at once (a missed run), only the most urgent is sent: a warning
    sent for a lead time covers every longer one.
    """
    reached = [lead for lead in leads if now >= due - hours(lead)]
    if not reached:
        return None
    lead = min(reached)
    if any(sent_lead <= lead for sent_lead in sent):
        return None
    return lead


def _stamp(value: datetime | None) -> str:
    return clock.timestamp(value) or "never"


def _latest_signal(observation: activity.Observation) -> str:
    """Which signal the last activity came from, for the reasons."""
    best, name = None, ""
    for signal, state in observation.signals.items():
        seen = state.get("lastSeen") if isinstance(state, dict) else None
        if seen and (best is None or seen > best):
            best, name = seen, signal
    return name


def decide(facts: Facts, policy: Policy, now: datetime) -> Assessment:
    """The policy for one container at `now`."""
    observation = facts.observation
    signals = dict(observation.signals) | {
        "created": clock.timestamp(facts.created),
        "stoppedAt": clock.timestamp(facts.stopped_at),
        "pin": resolve.pin_json(facts.pin),
    }
    if observation.unknown:
        return _unknown(facts, signals, now)
    if facts.running:
        return _running(facts, policy, signals, now)
    return _stopped(facts, policy, signals, now)


def _unknown(facts: Facts, signals: dict[str, Any], now: datetime) -> Assessment:
    """Activity that cannot be read counts as activity now: no stop, no destroy."""
    reasons = [f"{problem}: counted as activity now" for problem in facts.observation.unknown]
    if facts.running:
        reasons.append("no idle stop is scheduled while activity cannot be read")
    else:
        reasons.append(
            "no automatic destroy while activity cannot be read; "
            f"`devbox-ctl destroy {facts.name}` destroys it by hand (after a snapshot)"
        )
    # A stop time is recorded all the same: it only starts the destroy clock.
    record = not facts.running and facts.stopped_at is None
    return Assessment(
        now, None, None, NONE, reasons, signals, record_stopped_at=record, activity_unknown=True
    )


def _pinned(facts: Facts, due: datetime, now: datetime) -> tuple[datetime, list[str]]:
    """A pin postpones a due stop or destroy to the end of its last day; and why."""
    end = pin_end(facts.pin)
    if facts.pin is None or end is None:
        return due, []
    if now < end:
        reason = (
            f"pinned until {facts.pin.until.isoformat()} ({facts.pin.reason}): "
            f"exempt until {_stamp(end)}"
        )
    else:
        reason = f"its pin ended at {_stamp(end)}"
    return max(due, end), [reason]


def _running(facts: Facts, policy: Policy, signals: dict[str, Any], now: datetime) -> Assessment:
    observation = facts.observation
    last = activity.latest(observation.last_activity, facts.created)
    if last is None:
        return Assessment(
            None,
            None,
            None,
            NONE,
            [
                "no activity was ever recorded and its creation time is unknown: "
                "counted as activity now; no idle stop is scheduled"
            ],
            signals,
        )
    source = _latest_signal(observation) if observation.last_activity == last else "created"
    reasons = [f"last activity {_stamp(last)} ({source or 'created'})"]
    base = last
    if observation.active_until is not None:
        base = max(base, observation.active_until)
        reasons.append(f"kept alive by a keep-alive lease until {_stamp(observation.active_until)}")
    due = base + timedelta(days=policy.idle_stop_days)
    reasons.append(f"idle stop {policy.idle_stop_days} days after that: {_stamp(due)}")
    due, pinned = _pinned(facts, due, now)
    reasons += pinned
    leads = tuple(policy.stop_warning_hours)
    episode = Episode("stop", due, leads)
    sent = facts.sent("stop", due)
    stop_at = effective(due, leads, sent, now)
    destroy_at = stop_at + timedelta(days=policy.stopped_destroy_days)
    if stop_at > due:
        reasons.append(
            f"the last warning must come {min(leads)} h ahead, so the stop waits until "
            f"{_stamp(stop_at)}"
        )
    if now >= stop_at:
        reasons.append(f"stops now: no activity for {policy.idle_stop_days} days")
        return Assessment(last, stop_at, destroy_at, STOP, reasons, signals, episode)
    lead = pending_warning(due, leads, sent, now)
    if lead is not None:
        reasons.append(f"warns now: {lead} h before the stop at {_stamp(stop_at)}")
        return Assessment(last, stop_at, destroy_at, WARN_STOP, reasons, signals, episode, lead)
    reasons.append(f"if it stays idle: stop at {_stamp(stop_at)}, destroy at {_stamp(destroy_at)}")
    return Assessment(last, stop_at, destroy_at, NONE, reasons, signals, episode)


def _stopped(facts: Facts, policy: Policy, signals: dict[str, Any], now: datetime) -> Assessment:
    last = activity.latest(facts.observation.last_activity, facts.created)
    if facts.stopped_at is None:
        destroy_at = now + timedelta(days=policy.stopped_destroy_days)
        reasons = [
            "declared stopped without a stop time: cleanup records now as its stop time, "
            f"so the earliest destroy is {_stamp(destroy_at)}"
        ]
        return Assessment(last, None, destroy_at, NONE, reasons, signals, record_stopped_at=True)
    base = facts.stopped_at
    reasons = [f"stopped at {_stamp(base)}"]
    if last is not None and last > base:
        # Used after it was stopped (started by hand, outside devbox): count from then.
        base = last
        reasons.append(f"but active after that, at {_stamp(last)}: counted from then")
    due = base + timedelta(days=policy.stopped_destroy_days)
    reasons.append(f"destroy {policy.stopped_destroy_days} days after that: {_stamp(due)}")
    due, pinned = _pinned(facts, due, now)
    reasons += pinned
    leads = tuple(policy.destroy_warning_hours)
    sent = facts.sent("destroy", due)
    destroy_at = effective(due, leads, sent, now)
    episode = Episode("destroy", due, leads)
    if destroy_at > due:
        reasons.append(
            f"the last warning must come {min(leads)} h ahead, so the destroy waits until "
            f"{_stamp(destroy_at)}"
        )
    lead = None if now >= destroy_at else pending_warning(due, leads, sent, now)
    if now < destroy_at and lead is None:
        reasons.append(f"nothing to do before {_stamp(destroy_at)}")
        return Assessment(last, None, destroy_at, NONE, reasons, signals, episode)
    work = facts.work() if policy.protect_unpushed_work else None
    if work is not None:
        signals["work"] = {"found": work.found, "unknown": work.unknown}
    if now >= destroy_at:
        if work is not None and not work.clear:
            reasons += _work_reasons(work)
            reasons.append(
                "refuses to destroy it (protectUnpushedWork); the owner is told instead: "
                f"push the work, or `devbox-ctl destroy {facts.name}`"
            )
            refuse = Episode("refuse", due, ())
            return Assessment(
                last, None, destroy_at, REFUSE_DESTROY, reasons, signals, refuse, work=work
            )
        reasons.append(
            f"destroys now, after a snapshot: stopped for {policy.stopped_destroy_days} days"
        )
        return Assessment(last, None, destroy_at, DESTROY, reasons, signals, episode, work=work)
    if work is not None and not work.clear:
        reasons += _work_reasons(work)
    reasons.append(f"warns now: {lead} h before the destroy at {_stamp(destroy_at)}")
    return Assessment(
        last, None, destroy_at, WARN_DESTROY, reasons, signals, episode, lead, work=work
    )


def _work_reasons(work: Work) -> list[str]:
    return [f"work on the volume: {item}" for item in work.found] + [
        f"cannot tell whether there is work on the volume: {item}" for item in work.unknown
    ]


def policy_summary(policy: Policy) -> dict[str, Any]:
    """The policy fields an event records."""
    return {
        "idleStopDays": policy.idle_stop_days,
        "stoppedDestroyDays": policy.stopped_destroy_days,
        "stopWarningHours": list(policy.stop_warning_hours),
        "destroyWarningHours": list(policy.destroy_warning_hours),
        "protectUnpushedWork": policy.protect_unpushed_work,
        "snapshotRetentionDays": policy.snapshot_retention_days,
    }


def failed(now: datetime, why: str) -> Assessment:
    """The assessment of a container whose assessment failed: unknown, so nothing happens."""
    reason = f"cannot be assessed: {shown(why)}: counted as activity now, nothing is done"
    return Assessment(
        now, None, None, NONE, [reason], {"monitor": {"state": "unknown"}}, activity_unknown=True
    )
