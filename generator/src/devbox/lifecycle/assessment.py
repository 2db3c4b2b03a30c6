"""The facts the lifecycle policy decides on, gathered off the host for one container.

`assess` reads the container's volume (activity record, keep-alive leases, unsaved git work)
through volume.py, the warnings ledger (notices.py) and the declaration, then asks the pure
policy (policy.py) what to do. `list`, `status --why` and `cleanup` all call it, so what a dry
run says is what cleanup does.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta

from devbox import volume
from devbox.container import activity
from devbox.declare.resolve import Container
from devbox.host.context import Runtime
from devbox.lifecycle import notices, policy, work

# How long reading one container's volume may take (activity, leases, the git check) when
# nothing else says; cleanup also gives the whole run a budget (runtime/cleanup.py).
CONTAINER_BUDGET_SECONDS = 120


def assess(
    rt: Runtime, container: Container, now: datetime, budget: volume.Budget | None = None
) -> policy.Assessment:
    """The policy for one declared container, from its volume, the declaration and the ledger.

    The volume is read within the budget (by default CONTAINER_BUDGET_SECONDS); what cannot
    be read in it, or at all, is unknown, which counts as activity.
    """
    limits = rt.desired.policy
    budget = budget or volume.Budget.of(
        CONTAINER_BUDGET_SECONDS, f"the time budget of {CONTAINER_BUDGET_SECONDS} s"
    )
    ledger = notices.Ledger.load(rt.config.state_dir)
    try:
        tree = volume.open_volume(rt.podman(container.owner), container.volume, budget)
    except volume.Unreadable as exc:
        tree, problem = None, str(exc)
    else:
        problem = ""
    with contextlib.closing(tree) if tree is not None else contextlib.nullcontext():
        if problem:
            observation = activity.unknown_because(problem)
        else:
            observation = activity.observe(
                tree,
                container=container.name,
                running=container.running,
                now=now,
                max_lease=timedelta(days=limits.max_pin_days),
            )
        facts = policy.Facts(
            name=container.name,
            running=container.running,
            created=container.created,
            stopped_at=container.stopped_at,
            pin=container.pin,
            observation=observation,
            sent=lambda kind, due: ledger.sent(container.name, kind, due),
            work=lambda: work.unsaved(tree) if tree is not None else work.Work(),
        )
        return policy.decide(facts, limits, now)
