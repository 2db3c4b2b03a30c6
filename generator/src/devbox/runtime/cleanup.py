"""devbox-ctl cleanup: the daily run that warns, stops idle containers and destroys old ones.

For every declared container it takes the lifecycle assessment (lifecycle/policy.py) and does what
it says: send a warning once per lead time, stop, destroy (after a snapshot), or tell the
owner why a destroy was refused. A dry run shows the same assessments and changes nothing.
Snapshots past their retention are pruned first, so their room is there for the destroys.
A stop acts at once and needs no rebuild; destroys are applied with one rebuild at the end.
On a host of a fleet whose declaration is its deployed slice (a member, or `fleet-host
cleanup` on any host) the run warns only: the stops and destroys it assesses are done by the
control host's cleanup (runtime/fleet_views.py), which changes the fleet's declaration.

One container's failure does not stop the others, whatever it is (a hostile file on its
volume, a podman that fails, a bug): the container is assessed as unknown (nothing happens to
it), the failure is reported, logged in the event log, and the run exits 3. Reading the
volumes has a time budget per container, per owner and per run (below); a container whose
budget ran out is unknown, so one user's stalling volumes never hold up the others' cleanup.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from devbox import clock, volume, write
from devbox.declare import edit
from devbox.declare.resolve import Container
from devbox.errors import DevboxError, NotAllowedError
from devbox.escaping import shown
from devbox.host import rebuild
from devbox.host.context import Runtime
from devbox.lifecycle import assessment, notices, policy, snapshots
from devbox.runtime import operations

log = logging.getLogger(__name__)
Progress = Callable[[str], None]
# A run's time budgets for reading volumes, nested (volume.Budget's `within`): a container's
# (assessment.CONTAINER_BUDGET_SECONDS, 120 s) is cut short by its owner's, which is cut short
# by the run's. The owners are taken one after the other, each budget starting at their first
# container, so a user whose volumes stall spends at most USER_BUDGET_SECONDS, and the users
# after them still have the rest of the run (at least RUN - USER: five more users' full shares).
# What is not read in time is unknown: nothing is done to it, and its reasons name the budget.
# A host's run is bounded by these (and by the warnings' and podman's own timeouts); a fleet's
# control host waits longer for it (host/fleet.py CLEANUP_TIMEOUT; tests/runtime/test_budgets.py).
USER_BUDGET_SECONDS = 5 * 60
RUN_BUDGET_SECONDS = 30 * 60


@dataclass
class Row:
    """One container's assessment and what cleanup did about it."""

    container: Container
    assessment: policy.Assessment
    done: str = ""
    error: str = ""

    def as_json(self) -> dict[str, Any]:
        """The row as --json prints it."""
        c, a = self.container, self.assessment
        return {
            "name": c.name,
            "owner": c.owner,
            "created": clock.timestamp(c.created),
            "state": c.state,
            "action": a.action,
            "warnHours": a.warn_hours,
            "lastActivity": clock.timestamp(a.last_activity),
            "stopAt": clock.timestamp(a.stop_at),
            "destroyAt": clock.timestamp(a.destroy_at),
            "reasons": a.reasons,
            "signals": a.signals,
            "done": self.done or None,
            "error": self.error or None,
        }


@dataclass
class Outcome:
    """A cleanup run."""

    time: datetime
    dry_run: bool
    rows: list[Row] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    applied: bool = False
    errors: list[str] = field(default_factory=list)

    def count(self, *actions: str) -> int:
        """How many containers the assessments put under these actions."""
        return sum(1 for row in self.rows if row.assessment.action in actions)

    def as_json(self) -> dict[str, Any]:
        """The run as --json prints it."""
        return {
            "time": clock.timestamp(self.time),
            "dryRun": self.dry_run,
            "containers": [row.as_json() for row in self.rows],
            "snapshotsPruned": self.pruned,
            "applied": self.applied,
            "errors": self.errors,
        }


def in_reach(rt: Runtime) -> list[Container]:
    """The containers the caller may see: all for admins and the system, else their own."""
    return [c for c in rt.desired.containers if rt.caller.may_act_on(c.owner)]


def run(rt: Runtime, now: datetime, *, dry_run: bool, progress: Progress = print) -> Outcome:
    """Assess every container; unless dry_run, act on each assessment and prune snapshots."""
    if not dry_run and not rt.caller.admin:
        raise NotAllowedError(
            f"{rt.caller.name} may not run cleanup: it acts on every container",
            hint="devbox-ctl cleanup --dry-run shows what it would do with yours",
        )
    report = Outcome(now, dry_run)
    budget = volume.Budget.of(
        RUN_BUDGET_SECONDS, f"the cleanup run's time budget of {RUN_BUDGET_SECONDS} s"
    )
    shares = _Shares(budget)
    if dry_run:
        seen = in_reach(rt)
        report.rows = [_assessed(rt, c, now, shares, report) for c in _by_owner(seen)]
        report.rows.sort(key=_declared_order(seen))
        report.pruned = [s.id for s in snapshots.expired(rt, now)]
        return report
    lock = write.ensure_directory(rt.config.state_dir / notices.LEDGER.parent, mode=0o700)
    with write.locked(lock):
        # Expired snapshots go first: the room they free is there for this run's destroys.
        report.pruned = [s.id for s in snapshots.prune(rt, now)]
        pending = _Pending.load(rt)
        changed = False
        declared = list(rt.desired.containers)
        # A destroy begun on a container no longer declared is finished (or another's work).
        pending.destroying = [i for i in pending.destroying if i in map(identity, declared)]
        for container in _by_owner(declared):
            row = _assessed(rt, container, now, shares, report)
            report.rows.append(row)
            if row.error:
                continue
            try:
                changed |= _act_pending(rt, row, now, pending)
            except DevboxError as exc:
                _failed(rt, row, report, exc.message)
            except Exception as exc:
                log.debug("acting on %s failed", container.name, exc_info=True)
                _failed(rt, row, report, f"{type(exc).__name__}: {exc}")
        report.rows.sort(key=_declared_order(declared))
        if changed or pending.rebuild:
            try:
                rebuild.run(rt.config, lambda line: progress(f"  {line}"))
                report.applied = True
                pending.rebuild = False
                pending.save(rt)
            except DevboxError as exc:
                report.errors.append(exc.message)
    return report


def _by_owner(containers: list[Container]) -> list[Container]:
    """The containers owner by owner (each owner's in declared order): how a run reads them."""
    return sorted(containers, key=lambda container: container.owner)


def _declared_order(containers: list[Container]) -> Callable[[Row], int]:
    """A sort key putting rows back in declared order (they are read owner by owner)."""
    index = {container.name: number for number, container in enumerate(containers)}
    return lambda row: index.get(row.container.name, len(index))


class _Shares:
    """Each owner's time budget, inside the run's, starting at the owner's first container."""

    def __init__(self, run: volume.Budget) -> None:
        self.run = run
        self.owners: dict[str, volume.Budget] = {}

    def of(self, owner: str) -> volume.Budget:
        """The owner's budget (made when first asked, so it counts only their time)."""
        if owner not in self.owners:
            seconds = USER_BUDGET_SECONDS
            what = f"the time budget of {seconds} s for {owner}'s containers"
            self.owners[owner] = volume.Budget.of(seconds, what, within=self.run)
        return self.owners[owner]


def _assessed(
    rt: Runtime, container: Container, now: datetime, shares: _Shares, report: Outcome
) -> Row:
    """A container's row; an assessment that fails is unknown, reported and logged."""
    seconds = assessment.CONTAINER_BUDGET_SECONDS
    within = shares.of(container.owner)
    budget = volume.Budget.of(seconds, f"its time budget of {seconds} s", within=within)
    try:
        return Row(container, assessment.assess(rt, container, now, budget))
    except Exception as exc:
        log.debug("assessing %s failed", container.name, exc_info=True)
        message = exc.message if isinstance(exc, DevboxError) else f"{type(exc).__name__}: {exc}"
        row = Row(container, policy.failed(now, message))
        _failed(rt, row, report, message, log_event=not report.dry_run)
        return row


def _failed(
    rt: Runtime, row: Row, report: Outcome, message: str, *, log_event: bool = True
) -> None:
    """Report a container's failure (escaped) and log it in the event log."""
    row.error = shown(message, 500)
    report.errors.append(f"{row.container.name}: {row.error}")
    if log_event:
        rt.event(
            "cleanup-failed",
            row.container.name,
            automatic=True,
            owner=row.container.owner,
            error=row.error,
        )


@dataclass
class _Pending:
    """What a run began and did not see through: <stateDir>/cleanup/pending.json.

    A run killed between a change and its rebuild, or inside a destroy (after its snapshot
    and the volume's removal, before the record's), leaves work that the next run's
    assessment cannot see: the change is declared but not deployed, and a container whose
    volume is gone reads as one whose activity is unknown, which is never destroyed. The
    next run rebuilds, and finishes each destroy named here (by cleanup.identity, so a
    container that took the name since is not touched) once its volume is gone.
    """

    rebuild: bool = False
    destroying: list[tuple[str, str, str | None]] = field(default_factory=list)

    @staticmethod
    def path(rt: Runtime) -> Path:
        return rt.config.state_dir / "cleanup" / "pending.json"

    @classmethod
    def load(cls, rt: Runtime) -> _Pending:
        try:
            raw = json.loads(cls.path(rt).read_text(encoding="utf-8"))
            destroying = [
                (str(n), str(o), None if c is None else str(c)) for n, o, c in raw["destroying"]
            ]
            return cls(bool(raw["rebuild"]), destroying)
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError, KeyError, TypeError):
            log.warning("%s cannot be read; a rebuild is done to be safe", cls.path(rt))
            return cls(rebuild=True)

    def save(self, rt: Runtime) -> None:
        file = self.path(rt)
        if not self.rebuild and not self.destroying:
            write.remove_file(file)
            return
        write.ensure_directory(file.parent, mode=0o700)
        document = {"rebuild": self.rebuild, "destroying": [list(i) for i in self.destroying]}
        write.write_file(file, (json.dumps(document) + "\n").encode())


def _act_pending(rt: Runtime, row: Row, now: datetime, pending: _Pending) -> bool:
    """_act, with what it is about to change recorded first, and a begun destroy finished."""
    if rt.deployed_only:
        return _act(rt, row, now)
    mine = identity(row.container)
    if mine in pending.destroying and row.assessment.action != policy.DESTROY:
        # A probe that cannot tell raises: nothing is done to the container this run.
        if rt.podman(row.container.owner).volume_exists(row.container.volume):
            # The destroy stopped before the volume went: the assessment decides afresh.
            pending.destroying.remove(mine)
            pending.save(rt)
            return _act(rt, row, now)
        if row.container.pin is None:
            # Its files are in the snapshot the destroy took; only the record is left.
            row.assessment = dataclasses.replace(row.assessment, action=policy.DESTROY)
    if row.assessment.action == policy.DESTROY:
        pending.rebuild = True
        if mine not in pending.destroying:
            pending.destroying.append(mine)
        pending.save(rt)
    changed = _act(rt, row, now)
    # Destroyed, or no longer declared as assessed (destroyed by someone else): finished.
    if mine in pending.destroying and row.done.startswith(("destroyed", "left alone")):
        pending.destroying.remove(mine)
        pending.save(rt)
    return changed


def _details(row: Row, rt: Runtime) -> dict[str, object]:
    return {
        "signals": row.assessment.signals,
        "policy": policy.policy_summary(rt.desired.policy),
    }


def _act(rt: Runtime, row: Row, now: datetime) -> bool:
    """Do what the assessment says, if it still holds; True when it needs a rebuild.

    The assessment was made from the declaration read when the run began. Under the config
    lock the container is looked up again: one that is gone, or whose name now belongs to
    another container, is left alone; one whose record changed (a pin, a start, a stop) is
    assessed again before anything is done. For a stop or a destroy the lock is held until
    the action is recorded, so no change can come between the check and the act; a warning
    is sent after the lock is released (a webhook must not hold up everyone's changes).
    """
    if rt.deployed_only or (
        row.assessment.action == policy.NONE and not row.assessment.record_stopped_at
    ):
        return _act_on(rt, row, now)
    with write.locked(rt.config.paths.containers.parent):
        if not _still_holds(rt, row, now):
            return False
        a = row.assessment
        if a.action in (policy.STOP, policy.DESTROY) or a.record_stopped_at:
            return _act_on(rt, row, now)
    return _act_on(rt, row, now)


def identity(container: Container) -> tuple[str, str, str | None]:
    """Which container an assessment is about: name, owner and creation time, as --json says.

    A name alone is not a container: it may have been destroyed and its name taken by another
    one (of the same user or another) between the assessment and the act. The single host's
    cleanup and the control host's (runtime/fleet_views.py) both compare this, and nothing else,
    before they act on an assessment.
    """
    return (container.name, container.owner, clock.timestamp(container.created))


def assessed_identity(row: dict[str, Any]) -> tuple[object, object, object]:
    """The identity an assessment's JSON row (Row.as_json) names."""
    return (row.get("name"), row.get("owner"), row.get("created"))


def _still_holds(rt: Runtime, row: Row, now: datetime) -> bool:
    """Re-check a row against the current declaration; re-assess it if its record changed."""
    assessed = row.container
    current = rt.refresh().by_name().get(assessed.name)
    if current is None or identity(current) != identity(assessed):
        row.done = "left alone: no longer declared as assessed"
        return False
    if current != assessed:
        row.container = current
        row.assessment = assessment.assess(rt, current, now)
    return True


def _act_on(rt: Runtime, row: Row, now: datetime) -> bool:
    """Do what the assessment says; True when it needs a rebuild."""
    container, a = row.container, row.assessment
    ledger = notices.Ledger.load(rt.config.state_dir)
    if ledger.obsolete(container.name, a.episode):
        ledger.save()
        if notices.clear_notice(rt, container):
            row.done = "removed an obsolete warning"
    if a.record_stopped_at or a.action in (policy.STOP, policy.DESTROY):
        return _change(rt, row, now, ledger)
    if a.action in (policy.WARN_STOP, policy.WARN_DESTROY):
        _warn(rt, row, ledger, now)
        return False
    if a.action == policy.REFUSE_DESTROY:
        if a.episode is not None and not ledger.sent(container.name, "refuse", a.episode.due):
            _warn(rt, row, ledger, now)
            row.done = "refused to destroy; told the owner"
        else:
            row.done = "refused to destroy (the owner was told)"
        return False
    return False


def _change(rt: Runtime, row: Row, now: datetime, ledger: notices.Ledger) -> bool:
    """Record a stop time, stop or destroy; True when it needs a rebuild.

    A fleet host's own run (its declaration the deployed slice) leaves it to the control host.
    """
    container, a = row.container, row.assessment
    if rt.deployed_only:
        row.done = "assessed here; the control host's cleanup acts on it"
        return False
    if a.record_stopped_at:
        _record_stopped_at(rt, container, now)
        row.done = "recorded now as its stop time"
        rt.event("record-stop-time", container.name, automatic=True, owner=container.owner)
        # stoppedAt reaches no unit: the next rebuild deploys it, none is needed now.
        return False
    if a.action == policy.STOP:
        days = rt.desired.policy.idle_stop_days
        reason = f"idle: no activity since {clock.timestamp(a.last_activity)} ({days} days)"
        operations.stop(
            rt,
            container.name,
            reason=reason,
            automatic=True,
            progress=lambda _line: None,
            details=_details(row, rt),
        )
        notices.clear_notice(rt, container)
        row.done = "stopped"
        # Recorded on the host and committed: a stop needs no rebuild (host/runstate.py).
        return False
    if a.action == policy.DESTROY:
        done = operations.destroy(
            rt,
            container.name,
            reason=f"stopped since {clock.timestamp(container.stopped_at)} "
            f"({rt.desired.policy.stopped_destroy_days} days)",
            automatic=True,
            apply=False,
            progress=lambda _line: None,
            details=_details(row, rt),
        )
        ledger.obsolete(container.name, None)
        ledger.save()
        row.done = f"destroyed (snapshot {done.snapshot})" if done.snapshot else "destroyed"
        if done.nix_roots_left:
            row.done += f"; {done.nix_roots_left}"
        return True
    return False


def _warn(rt: Runtime, row: Row, ledger: notices.Ledger, now: datetime) -> None:
    container, a = row.container, row.assessment
    message = notices.compose(container, a, rt, now)
    delivery = notices.deliver(rt, container, message)
    if a.episode is not None:
        ledger.mark(container.name, a.episode.kind, a.episode.due, a.warn_hours or 0, now)
        ledger.save()
    at = a.stop_at if a.action == policy.WARN_STOP else a.destroy_at
    rt.event(
        "warning",
        container.name,
        automatic=True,
        owner=container.owner,
        warning=message.kind,
        at=clock.timestamp(at),
        leadHours=a.warn_hours,
        reason=a.reasons[-1],
        cancel=message.cancel,
        channels=delivery.as_json(),
        **_details(row, rt),
    )
    row.done = f"warned ({message.kind}, {a.warn_hours} h ahead)" if a.warn_hours else "warned"


def _record_stopped_at(rt: Runtime, container: Container, now: datetime) -> None:
    def change(records: edit.Records) -> str:
        record = edit.record_named(records, container.name)
        if (
            edit.same(record, container)
            and record is not None
            and record.get("state") == "stopped"
            and not record.get("stoppedAt")
        ):
            record["stoppedAt"] = clock.timestamp(now)
        return f"devbox: cleanup recorded the stop time of {container.name}"

    rt.change(change, who="cleanup")
