"""The fleet's views and cleanup on the control host: list, status, connect, logs, cleanup.

Each host answers for its own containers (its devbox-ctl over SSH, host/fleet.py), all hosts
at once; the answers are merged with the host named. A host that does not answer makes its
declared containers "unreachable", never absent. Cleanup: each host assesses its containers
and sends its own warnings; the stops and destroys are done from here as the fleet's verbs.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from devbox import clock
from devbox.declare.resolve import Container
from devbox.errors import DevboxError, ExitCode, ToolError
from devbox.escaping import shown
from devbox.host import fleet as link
from devbox.host.context import Runtime
from devbox.host.identity import authorize
from devbox.runtime import fleet
from devbox.tools import process, ssh

# The longest line of a host's status text that is shown (a status line is far shorter).
ANSWER_LINE = 1000

Progress = Callable[[str], None]


@dataclass
class Listing:
    """What every host said about its containers, and the hosts that did not answer."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    unreachable: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """`list --json` in a fleet."""
        return {"containers": self.rows, "unreachable": self.unreachable, "failed": self.failed}


def _visible(rt: Runtime, owner: object, all_users: bool) -> bool:
    return (all_users and rt.caller.admin) or owner == rt.caller.name


# What only a container's host can tell: on a row made here from the declaration, unknown.
HOST_ONLY = ("lastActivity", "idleStopAt", "destroyAt")


def _declared_row(container: Container, actual: str) -> dict[str, Any]:
    """A row from the declaration alone: what only the host knows is "unknown", not guessed."""
    return {
        "name": container.name,
        "owner": container.owner,
        "host": container.host,
        "declared": container.state,
        "actual": actual,
        "cpu": container.cpu,
        "memory": container.memory,
        "created": clock.timestamp(container.created),
    } | dict.fromkeys(HOST_ONLY, "unknown")


def fleet_list(rt: Runtime, *, all_users: bool) -> Listing:
    """Every host's view of its containers, with the host; the silent ones said so."""
    listing = Listing()
    answers = link.ask_all(rt, rt.desired.hosts, ["list"])
    seen: set[str] = set()
    declared = rt.desired.by_name()
    for host, answer in answers.items():
        views = _views(host, answer, listing)
        for view in views:
            if _visible(rt, view.get("owner"), all_users):
                listing.rows.append(_host_row(declared, host, view, seen))
    for container in rt.desired.containers:
        if container.name not in seen and _visible(rt, container.owner, all_users):
            listing.rows.append(_silent_row(container, listing))
    listing.rows.sort(key=lambda row: (str(row.get("host")), str(row.get("name"))))
    return listing


def _views(
    host: str, answer: ssh.Reply | ssh.Unreachable, listing: Listing
) -> list[dict[str, Any]]:
    """A host's list, or nothing with the host noted as unreachable or failed.

    What a host did answer is kept, even when it failed beside it (the host is then noted
    as failed too, so the declared containers it did not report are unknown, never absent).
    A container whose time budget ran out there is in its answer, with its real state and
    its activity unknown (runtime/listing.py).
    """
    if isinstance(answer, ssh.Unreachable):
        listing.unreachable[host] = answer.reason
        return []
    views = _parsed(answer)
    if not answer.ok:
        listing.failed[host] = answer.message
    if not isinstance(views, list):
        listing.failed.setdefault(host, "answered no JSON list")
        return []
    return [view for view in views if isinstance(view, dict)]


def _parsed(answer: ssh.Reply) -> Any:
    """The JSON document a host answered, or None."""
    try:
        return json.loads(answer.stdout)
    except ValueError:
        return None


def _host_row(
    declared: dict[str, Container], host: str, view: dict[str, Any], seen: set[str]
) -> dict[str, Any]:
    """A container a host runs, with a word where the declaration puts it elsewhere."""
    name = view.get("name")
    mine = declared.get(name) if isinstance(name, str) else None
    row = {**view, "host": host}
    if mine is not None and mine.host == host:
        seen.add(mine.name)
        return row
    where = f"declared on {mine.host}" if mine is not None else "no longer declared"
    row["disagreements"] = [
        *row.get("disagreements", []),
        f"{host} still runs it, but it is {where}: devbox-ctl deploy {host}",
    ]
    return row


def _silent_row(container: Container, listing: Listing) -> dict[str, Any]:
    """A declared container its host did not report: unreachable, unknown or not deployed."""
    host = str(container.host)
    if host in listing.unreachable:
        return _declared_row(container, "unreachable")
    if host in listing.failed:
        return _declared_row(container, "unknown")
    row = _declared_row(container, "not deployed")
    row["disagreements"] = [f"{host} does not run it yet: devbox-ctl deploy {host}"]
    return row


def status(rt: Runtime, name: str, *, why: bool, as_json: bool) -> tuple[str, int]:
    """A container's status as its host's devbox-ctl says it (text or JSON), and the exit code.

    Exit 1 (declared and actual disagree) is an answer, not a failure; an unreachable host is
    a ToolError naming it.
    """
    container = rt.container(name)
    authorize(rt.caller, container.owner, name, "see")
    host = str(container.host)
    args = ["status", name, *(["--why"] if why else []), *(["--json"] if as_json else [])]
    reply = link.ask(rt, host, args, codes=(0, 1))
    if reply.returncode == ExitCode.CHANGES and (
        not reply.stdout.strip()
        or any(line.startswith("error: ") for line in reply.stderr.splitlines())
    ):
        # Exit 1 with a status is "declared and actual disagree"; without one, the host failed.
        raise ToolError(
            f"on {host}: the status of {name} failed: {shown(reply.message, ANSWER_LINE)}",
            hint=f"{name} is on host {host}; devbox-ctl there says why",
        )
    if as_json:
        try:
            view = json.loads(reply.stdout)
        except ValueError as exc:
            raise ToolError(f"on {host}: status of {name} answered no JSON ({exc})") from exc
        text = json.dumps({**view, "host": host}, indent=2, sort_keys=True, ensure_ascii=False)
        return text + "\n", reply.returncode
    # The host's text, line by line through the one escaping function: nothing a container
    # put in it reaches this terminal raw, whatever the host did with it.
    lines = "".join(shown(line, limit=ANSWER_LINE) + "\n" for line in reply.stdout.splitlines())
    return f"{name} is on host {host}.\n" + lines, reply.returncode


# The exit codes of a host's `logs` that are its own answer: its `error: …` already said why.
LOGS_ANSWERS = (ExitCode.OK, ExitCode.BAD_INPUT, ExitCode.FAILED, ExitCode.DENIED)


def logs(rt: Runtime, name: str, *, follow: bool, since: str | None) -> int:
    """Show a container's logs from its host on this terminal, as the host's own `logs` does.

    The host's devbox-ctl speaks for itself: its `error: …` and its exit code (0, 2, 3 or 4)
    come through as they are. A host that did not answer, or whose answer is no exit code of
    devbox-ctl's, is an error naming it (exit 3).
    """
    container = rt.container(name)
    authorize(rt.caller, container.owner, name, "read the logs of")
    host = str(container.host)
    args = ["fleet-host", "logs", name, *(["--follow"] if follow else [])]
    args += ["--since", since] if since is not None else []
    code, said = process.run_attached_said(link.remote(rt, host).argv(*args))
    if code == ssh.EXIT_SSH:
        raise ToolError(f"{host} is unreachable: {shown(said or ssh.QUIET_255, ANSWER_LINE)}")
    if code not in LOGS_ANSWERS:
        raise ToolError(f"on {host}: logs of {name} exited {code}: {shown(said, ANSWER_LINE)}")
    if said:
        sys.stderr.write(said + "\n")
    return code


@dataclass
class Cleanup:
    """A fleet's cleanup: each host's assessments (its warnings sent there), what was done."""

    dry_run: bool
    rows: list[dict[str, Any]] = field(default_factory=list)
    unreachable: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """`cleanup --json` in a fleet."""
        return {
            "dryRun": self.dry_run,
            "containers": self.rows,
            "unreachable": self.unreachable,
            "errors": self.errors,
        }


def cleanup(rt: Runtime, *, dry_run: bool, progress: Progress = print) -> Cleanup:
    """Each host assesses its containers and sends its warnings; the stops and destroys.

    Those are decided here and done as the fleet's stop and destroy, one container at a
    time, each only if the container is still the one its host assessed (cleanup.identity,
    as on a single host) and still declared as assessed. Each is committed on its own; the
    hosts whose slice changed are deployed once, at the end of the run.
    """
    if not dry_run:
        link.authorize_admin(rt, "run cleanup")
    report = Cleanup(dry_run)
    args = ["cleanup", *(["--dry-run"] if dry_run else [])]
    # Each host's run is bounded by its own budgets; CLEANUP_TIMEOUT is longer (host/fleet.py).
    answers = link.ask_all(rt, rt.desired.hosts, args, timeout=link.CLEANUP_TIMEOUT)
    for host, answer in answers.items():
        report.rows += [
            {**row, "host": host}
            for row in _assessed(host, answer, report)
            if rt.caller.may_act_on(str(row.get("owner")))
        ]
    if not dry_run:
        act_on_all(rt, report, progress)
    return report


def act_on_all(rt: Runtime, report: Cleanup, progress: Progress) -> None:
    """The stops and destroys, then one deploy per host whose slice they changed."""
    due = [row for row in report.rows if row.get("action") in ("stop", "destroy")]
    if not due:
        return
    before = link.slice_hashes(rt)
    acted = [row for row in due if _act(rt, row, report, progress)]
    done = link.deploy_hosts(rt, link.changed_by(before, link.slice_hashes(rt)), progress=progress)
    for host, why in sorted(done.failed.items()):
        report.errors.append(
            f"deploying {host} failed ({why}): its stops and destroys are committed, not yet "
            f"applied there; devbox-ctl deploy {host} applies them"
        )
    for row in acted:
        if row.get("host") in done.failed:
            row["done"] = f"{row['done']}; not yet applied on {row['host']} (its deploy failed)"


def _assessed(
    host: str, answer: ssh.Reply | ssh.Unreachable, report: Cleanup
) -> list[dict[str, Any]]:
    """A host's assessed containers, or none with the reason among the errors.

    A partial answer is kept: the rows a host did assess stand whatever failed beside them
    (a container whose budget ran out is among them as unknown, a failed one with its error).
    """
    if isinstance(answer, ssh.Unreachable):
        report.unreachable[host] = answer.reason
        report.errors.append(str(answer))
        return []
    outcome = _parsed(answer)
    if not isinstance(outcome, dict) or not isinstance(outcome.get("containers"), list):
        report.errors.append(f"on {host}: {answer.message}")
        return []
    if not answer.ok and answer.returncode != ExitCode.FAILED:
        report.errors.append(f"on {host}: {answer.message}")
    report.errors += [f"on {host}: {error}" for error in outcome.get("errors") or []]
    return [row for row in outcome["containers"] if isinstance(row, dict)]


def _act(rt: Runtime, row: dict[str, Any], report: Cleanup, progress: Progress) -> bool:
    """Stop or destroy one assessed container, if it is still the one assessed; True if done.

    Its host is not deployed here: the run deploys each changed host once (act_on_all).
    """
    name = str(row.get("name"))
    try:
        # What is declared now, as the single host's cleanup reads it again before it acts:
        # the name may belong to another container by now (fleet._as_assessed says so).
        if name not in rt.refresh().by_name():
            row["done"] = "left alone: no longer declared"
            return False
        if row["action"] == "stop":
            fleet.stop(
                rt, name, progress=progress, reason="idle (cleanup)", assessed=row, deploy=False
            )
            row["done"] = "stopped"
        else:
            done = fleet.destroy(rt, name, progress=progress, assessed=row, deploy=False)
            row["done"] = f"destroyed (snapshot {done.snapshot})" if done.snapshot else "destroyed"
    except fleet.ChangedSinceAssessedError as exc:
        row["done"] = f"left alone: {exc.message}"
    except DevboxError as exc:
        row["error"] = exc.message
        report.errors.append(f"{name}: {exc.message}")
    else:
        return True
    return False
