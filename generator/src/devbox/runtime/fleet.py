"""The fleet's verbs on the control host: create (placed), start, stop, destroy.

Every change to the declaration happens on the control host as on a single host: under the
config lock, validated with every limit across the fleet, committed (declare/edit.py). Then
the hosts whose slice changed are deployed (host/fleet.py), and what must happen on the
container's host is done by that host's devbox-ctl over SSH: the switch there starts or stops
the container, as `devbox-ctl apply` does on a single host.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from devbox import clock, rules
from devbox.declare import edit, placement
from devbox.declare.resolve import Container, Desired
from devbox.errors import DevboxError, ToolError, UsageError
from devbox.escaping import shown
from devbox.host import fleet as link
from devbox.host.context import Runtime
from devbox.host.identity import authorize
from devbox.runtime import cleanup, move_journal, operations
from devbox.tools import ssh

Progress = Callable[[str], None]
T = TypeVar("T")


def spaces(desired: Desired) -> list[placement.HostSpace]:
    """The declared hosts as placement sees them."""
    return [
        placement.HostSpace(
            name,
            float(host.capacity.cpus),
            host.capacity.memory_bytes,
            host.capacity.containers,
            frozenset(host.labels),
        )
        for name, host in desired.hosts.items()
    ]


def _record_need(record: dict[str, Any], desired: Desired) -> tuple[float, int]:
    """A record's CPUs and memory bytes, with the users.nix defaults (as validated)."""
    policy = desired.policy
    cpu = record.get("cpu", policy.default_cpu)
    memory = rules.memory_bytes(str(record.get("memory") or policy.default_memory)) or 0
    return float(cpu if isinstance(cpu, int | float) else policy.default_cpu), memory


def placed(records: edit.Records, desired: Desired, *, without: str = "") -> list[placement.Placed]:
    """What the records place on each host (the container `without` left out)."""
    found = []
    for record in records:
        if record.get("name") == without or not isinstance(record.get("host"), str):
            continue
        cpu, memory = _record_need(record, desired)
        found.append(placement.Placed(record["host"], cpu, memory))
    return found


def choose_host(
    desired: Desired,
    records: edit.Records,
    need: placement.Need,
    *,
    name: str,
    host: str | None = None,
    exclude: frozenset[str] = frozenset(),
) -> str:
    """The host for a container (placement's rule), or exit 2 saying which host lacks what."""
    try:
        return placement.place(
            spaces(desired),
            placed(records, desired, without=name),
            need,
            host=host,
            exclude=exclude,
        )
    except placement.NoRoom as exc:
        raise UsageError(
            exc.message(), hint="devbox-ctl list --all shows what runs where (admins)"
        ) from exc


@dataclass
class Created:
    """What a fleet create did."""

    container: Container
    host: str
    applied: bool
    joined: bool
    node: dict[str, Any] | None = None
    resumed: bool = False


def _check_placement(rt: Runtime, host: str | None, labels: Sequence[str]) -> None:
    """The labels and the host asked for (a fleet's own), before anything is read or written."""
    for label in labels:
        label_issue = rules.label(label)
        if label_issue:
            raise UsageError(f"--label: {label_issue[0]}; {label_issue[1]}")
    if host is not None:
        link.remote(rt, host)


def create(
    rt: Runtime,
    name: str,
    *,
    owner: str | None = None,
    cpu: float | None = None,
    memory: str | None = None,
    syncthing: bool = False,
    host: str | None = None,
    labels: Sequence[str] = (),
    apply: bool = True,
    timeout: float = 300,
    progress: Progress = print,
) -> Created:
    """Place a container on a host, declare it, provision its key there, deploy, wait."""
    owner = operations.check_request(rt, name, owner, cpu, memory)
    _check_placement(rt, host, labels)
    resumed = False

    def change(records: edit.Records) -> str:
        nonlocal resumed
        if operations.resumes(records, name, owner):
            resumed = True
            whose = operations.for_owner(rt, owner)
            return f"devbox: {rt.caller.name} resumed the creation of {name}{whose}"
        operations.check_limits(rt, records, owner)
        policy = rt.desired.policy
        need = placement.Need(
            float(policy.default_cpu if cpu is None else cpu),
            rules.memory_bytes(memory or policy.default_memory) or 0,
            frozenset(labels),
        )
        chosen = choose_host(rt.desired, records, need, name=name, host=host)
        records.append(
            edit.new_record(
                name,
                owner,
                cpu=cpu,
                memory=memory,
                syncthing=syncthing,
                state="running",
                created=clock.now(),
                host=chosen,
                labels=tuple(sorted(set(labels))),
            )
        )
        return (
            f"devbox: {rt.caller.name} created {name}{operations.for_owner(rt, owner)} on {chosen}"
        )

    before = link.slice_hashes(rt)
    rt.change(change)
    container = rt.container(name)
    target = str(container.host)
    if resumed:
        progress(f"{name} is already declared on {target}; continuing its creation.")
    else:
        progress(
            f"Declared {name} on {target} (owner {owner}, {container.cpu} CPUs, {container.memory})"
        )
        rt.event(
            "create", name, owner=owner, host=target, cpu=container.cpu, memory=container.memory
        )
    if not (resumed and _joined(_node(rt, container))):
        progress(f"Fetching {owner}'s Tailscale auth key from 1Password")
        _provision_key(rt, container)
    hosts = set(link.changed_by(before, link.slice_hashes(rt))) | ({target} if resumed else set())
    done = link.deploy_hosts(rt, hosts, apply=apply, progress=progress)
    if not apply:
        return Created(container, target, applied=False, joined=False, resumed=resumed)
    link.require_deployed(done)
    node = wait_until_joined(rt, container, timeout, progress)
    link.ask(rt, target, ["set-key", name, "--owner", owner], stdin=operations.NEUTRALISED)
    return Created(container, target, applied=True, joined=True, node=node, resumed=resumed)


def _provision_key(rt: Runtime, container: Container) -> None:
    """The owner's key from 1Password into the podman secret on the container's host (stdin)."""
    link.ask(
        rt,
        str(container.host),
        ["set-key", container.name, "--owner", container.owner],
        stdin=operations.auth_key(rt, container),
        timeout=link.ACT_TIMEOUT,
    )


def _look(rt: Runtime, container: Container) -> tuple[str, dict[str, Any] | None]:
    """The container as its host's status says it, in words, and its Tailscale node."""
    status = link.ask_json(
        rt, str(container.host), ["status", container.name, "--json"], codes=(0, 1)
    )
    if not isinstance(status, dict):
        return f"container unknown on {container.host}", None
    node = status.get("tailscale")
    node = node if isinstance(node, dict) else None
    # A host's answer carries the container's words (its tailscaled's state): escaped here
    # too, whatever the host did with them.
    now = f"container {shown(status.get('actual', 'unknown'))} on {container.host}"
    state = node.get("state") if node else None
    return now + (f", Tailscale {shown(state)}" if state else ""), node


def _joined(node: dict[str, Any] | None) -> bool:
    return node is not None and node.get("state") == "Running"


def _node(rt: Runtime, container: Container) -> dict[str, Any] | None:
    """The container's Tailscale node as its host's status says, or None."""
    try:
        return _look(rt, container)[1]
    except DevboxError:
        return None


def wait_until_joined(
    rt: Runtime, container: Container, timeout: float, progress: Progress
) -> dict[str, Any]:
    """Ask the container's host until it has joined the tailnet; a timeout is an error."""

    def look() -> tuple[str, dict[str, Any] | None]:
        now, node = _look(rt, container)
        return now, node if _joined(node) else None

    return operations.poll_until_joined(container.name, look, timeout, progress)


class ChangedSinceAssessedError(UsageError):
    """The container is no longer declared as it was assessed: the action is not taken."""


Assessed = dict[str, Any] | None


def _as_assessed(record: dict[str, Any], container: Container, assessed: Assessed) -> None:
    """Under the config lock: still the container its host assessed, and as it assessed it.

    The identity is the single host cleanup's own (cleanup.identity: name, owner, creation
    time), so a container destroyed since, whose name another one took, is left alone; a
    record whose host, state or pin changed since is left for the next run's assessment.
    """
    if assessed is None:
        return
    if cleanup.identity(container) != cleanup.assessed_identity(assessed):
        raise ChangedSinceAssessedError(
            f"{container.name} is not the container its host assessed (that one was destroyed "
            "and its name taken since)"
        )
    if (
        record.get("host") != assessed.get("host")
        or record.get("state", "running") != assessed.get("state")
        or record.get("pin")
    ):
        raise ChangedSinceAssessedError(f"{container.name} changed since its host assessed it")


def _set_state(
    rt: Runtime,
    container: Container,
    state: str,
    *,
    apply: bool,
    progress: Progress,
    assessed: Assessed = None,
    deploy: bool = True,
) -> link.Deployment:
    def change(records: edit.Records) -> str:
        record = edit.required(records, container)
        _as_assessed(record, container, assessed)
        verb = operations.declare_state(record, state)
        return f"devbox: {rt.caller.name} {verb} {container.name} on {container.host}"

    if not deploy:
        rt.change(change)
        return link.Deployment()
    return link.edit_and_deploy(
        rt, change, apply=apply, progress=progress, also=[str(container.host)]
    )


def start(rt: Runtime, name: str, *, apply: bool = True, progress: Progress = print) -> Container:
    """Declare a container running and deploy its host (the switch starts it)."""
    container = rt.container(name)
    authorize(rt.caller, container.owner, name, "start")
    _set_state(rt, container, "running", apply=apply, progress=progress)
    rt.event("start", name, owner=container.owner, host=container.host)
    progress(f"Started {name} on {container.host}." if apply else f"Declared {name} running.")
    return container


def stop(
    rt: Runtime,
    name: str,
    *,
    apply: bool = True,
    progress: Progress = print,
    reason: str = "",
    assessed: Assessed = None,
    deploy: bool = True,
) -> Container:
    """Declare a container stopped and deploy its host (the switch stops it).

    `assessed`: cleanup's row; the stop is taken only if the record still matches it.
    `deploy=False`: the caller deploys once after all its changes (cleanup, once per host).
    """
    container = rt.container(name)
    authorize(rt.caller, container.owner, name, "stop")
    _set_state(
        rt,
        container,
        "stopped",
        apply=apply,
        progress=progress,
        assessed=assessed,
        deploy=deploy,
    )
    rt.event(
        "stop",
        name,
        owner=container.owner,
        host=container.host,
        reason=reason or None,
        automatic=assessed is not None,
    )
    if not deploy:
        progress(f"Declared {name} stopped; {container.host} is deployed with the run's changes.")
    else:
        progress(f"Stopped {name} on {container.host}." if apply else f"Declared {name} stopped.")
    return container


def destroy(
    rt: Runtime,
    name: str,
    *,
    keep_volume: bool = False,
    snapshot: bool = True,
    apply: bool = True,
    progress: Progress = print,
    assessed: Assessed = None,
    deploy: bool = True,
) -> operations.Destroyed:
    """Stop the container on its host, snapshot and remove its data there, then forget it.

    Each step can be rerun: a kill leaves a stopped container whose data is either still
    there or in a snapshot on its host, still declared, so `destroy` again finishes it.
    The data goes through the host's own guarded purge (runtime/fleet_host.py), which checks
    again, on the host, that the container it holds is this one (owner and creation time).
    `deploy=False` (cleanup): a stopped container only, and the caller deploys its host.
    """
    container = rt.container(name)
    authorize(rt.caller, container.owner, name, "destroy")
    host = str(container.host)
    if not apply:
        raise UsageError(
            "--no-apply is not possible for a destroy in a fleet: the data is removed on "
            f"{host} only once the container is stopped there",
            hint=f"devbox-ctl stop {name} --no-apply records the stop alone",
        )

    def check(records: edit.Records) -> str:
        record = edit.required(records, container)
        _as_assessed(record, container, assessed)
        records.remove(record)
        return "checked"

    # Under the lock, before anything is removed: still this container, still as assessed,
    # and the declaration without it can be recorded.
    edit.preview(rt.config.paths, check)
    if container.state != "stopped":
        if not deploy:
            raise ChangedSinceAssessedError(f"{name} is declared running: not destroyed now")
        _set_state(rt, container, "stopped", apply=True, progress=progress)
        container = rt.container(name)
    done = operations.Destroyed(container, kept_volume=container.volume if keep_volume else None)
    purged = _purge(rt, container, keep_volume=keep_volume, snapshot=snapshot)
    taken = purged.get("snapshot")
    done.snapshot = taken if isinstance(taken, str) else None
    if done.snapshot:
        progress(f"Saved the volume {container.volume} on {host} to {done.snapshot}")
    # What the host said of the container's Nix GC roots (operations.remove_nix_roots), its text.
    said = purged.get("nixRoots")
    for line in said if isinstance(said, list) else []:
        progress(f"{host}: {shown(str(line))}")
    operations.remove_device(rt, container, done)

    def forget(records: edit.Records) -> str:
        records[:] = [r for r in records if not edit.same(r, container)]
        actor = "cleanup" if assessed is not None else rt.caller.name
        return f"devbox: {actor} destroyed {name} on {host}"

    if deploy:
        link.edit_and_deploy(rt, forget, apply=True, progress=progress)
    else:
        rt.change(forget)
    done.applied = deploy
    # A move of it that was interrupted left its journal: it goes with the container.
    move_journal.forget(rt, container)
    rt.event(
        "destroy",
        name,
        owner=container.owner,
        host=host,
        snapshot=done.snapshot,
        keptVolume=done.kept_volume,
        automatic=assessed is not None,
    )
    return done


def _purge(
    rt: Runtime, container: Container, *, keep_volume: bool, snapshot: bool
) -> dict[str, Any]:
    """Snapshot (unless asked not to) and remove the data on the host; the host's answer."""
    args = ["purge", container.name, "--owner", container.owner]
    created = clock.timestamp(container.created)
    args += ["--created", created] if created else []
    args += ["--keep-volume"] if keep_volume else []
    args += [] if snapshot else ["--no-snapshot"]
    purged = link.ask_json(rt, str(container.host), args, timeout=link.ACT_TIMEOUT)
    return purged if isinstance(purged, dict) else {}


def rotate_key(
    rt: Runtime, name: str, *, timeout: float = 300, progress: Progress = print
) -> dict[str, Any]:
    """A fresh key from 1Password to the container's host, then its re-enrolment there."""
    container = rt.container(name)
    authorize(rt.caller, container.owner, name, "rotate the key of")
    progress(f"Fetching {container.owner}'s Tailscale auth key from 1Password")
    _provision_key(rt, container)
    progress(f"Re-enrolling {name} on {container.host}")
    args = ["relogin", name, "--owner", container.owner, "--timeout", f"{timeout:g}"]
    node = link.ask_json(rt, str(container.host), args, timeout=timeout + link.READ_TIMEOUT)
    rt.event("rotate-key", name, owner=container.owner, host=container.host)
    return node if isinstance(node, dict) else {}


def deploy_after(rt: Runtime, action: Callable[[], T], *, progress: Progress = print) -> T:
    """Run a declaration change made elsewhere (pin, unpin), then deploy what it changed."""
    before = link.slice_hashes(rt)
    done = action()
    link.require_deployed(
        link.deploy_hosts(rt, link.changed_by(before, link.slice_hashes(rt)), progress=progress)
    )
    return done


def not_here(rt: Runtime, verb: str) -> None:
    """Verbs on one host's own snapshots: in a fleet, not from the control host.

    (restore is the fleet's own verb: `restore` below.)
    """
    if not link.is_fleet(rt):
        return
    raise UsageError(
        f"{verb} reads one host's own snapshots: in a fleet, run it on the container's host "
        "(the read verbs work on every host of the fleet)",
        hint="devbox-ctl list --all says which host each container is on",
    )


# restore in a fleet. The snapshot is on the host where its container was destroyed: every
# host is asked for its snapshots, the chosen one's host gets the restored container (placed
# there under the config lock, with the fleet's limits), and that host's own restore checks
# and fills the volume (fleet-host restore, runtime/restore.py). Then as create: the key from
# 1Password, declared running, the host deployed, wait until it joined. A rerun resumes.


@dataclass
class Restored:
    """What a fleet restore did."""

    container: Container
    host: str
    snapshot: str
    applied: bool = False
    joined: bool = False
    resumed: bool = False

    def as_json(self) -> dict[str, Any]:
        """`restore --json` in a fleet."""
        return {
            "name": self.container.name,
            "owner": self.container.owner,
            "host": self.host,
            "snapshot": self.snapshot,
            "applied": self.applied,
            "joined": self.joined,
            "resumed": self.resumed,
        }


# A snapshot's id as lifecycle/snapshots.py makes it (web-20261126T120000Z-3f9a1c2b); a host's
# row with any other id is not taken (it would reach argv, a commit message and the log).
SNAPSHOT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,150}")


@dataclass
class Held:
    """Every host's snapshots (rows with their host), and the hosts that did not say."""

    rows: list[dict[str, Any]]
    silent: dict[str, str]


def held(rt: Runtime, name: str | None = None) -> Held:
    """What every host holds of snapshots (of container NAME), each row with its host."""
    found = Held([], {})
    args = ["snapshots", *([name] if name is not None else [])]
    for host, answer in link.ask_all(rt, rt.desired.hosts, args).items():
        if isinstance(answer, ssh.Unreachable):
            found.silent[host] = answer.reason
            continue
        try:
            rows = json.loads(answer.stdout) if answer.ok else None
        except ValueError:
            rows = None
        if not isinstance(rows, list):
            found.silent[host] = answer.message if not answer.ok else "answered no JSON list"
            continue
        found.rows += [{**row, "host": host} for row in rows if isinstance(row, dict)]
    found.rows.sort(key=lambda row: (str(row.get("created")), str(row.get("id"))))
    return found


def restorable(rt: Runtime, name: str | None) -> Held:
    """`restore --list` in a fleet: the snapshots the caller may restore, on every host."""
    found = held(rt, name)
    found.rows = [row for row in found.rows if rt.caller.may_act_on(str(row.get("owner")))]
    return found


def _silent(found: Held) -> str:
    return ", ".join(f"{host} ({shown(why, 300)})" for host, why in sorted(found.silent.items()))


def _chosen(rt: Runtime, name: str, snapshot_id: str | None) -> dict[str, Any]:
    """The snapshot a restore takes: ID, or NAME's latest on any host; none is exit 2.

    Without an ID, a host that did not answer may hold a later one: that is not guessed.
    """
    found = held(rt, name)
    of_name = [
        row
        for row in found.rows
        if row.get("container") == name
        and isinstance(row.get("id"), str)
        and SNAPSHOT_ID.fullmatch(row["id"])
        and (snapshot_id is None or row.get("id") == snapshot_id)
    ]
    which = f"snapshot {snapshot_id}" if snapshot_id else "snapshot"
    if found.silent and (not of_name or snapshot_id is None):
        raise ToolError(
            f"no {which} of {name} can be chosen: {_silent(found)} did not answer",
            hint="run it again when every host answers, or name one: restore --from ID "
            "(restore --list shows those of the hosts that answer)",
        )
    if not of_name:
        raise UsageError(
            f"no {which} of {name} on any host of the fleet",
            hint="devbox-ctl restore --list shows every snapshot you may restore",
        )
    return of_name[-1]


def _ask_host(rt: Runtime, host: str, args: list[str], timeout: float) -> Any:
    """A fleet-host op whose refusal (exit 2) is this verb's refusal, naming the host."""
    reply = link.ask(rt, host, args, timeout=timeout, codes=(0, 2))
    if reply.returncode == 2:  # noqa: PLR2004 - a refusal, as the host's own verb says it
        raise UsageError(f"on {host}: {shown(reply.message, 1000)}")
    try:
        return json.loads(reply.stdout)
    except ValueError as exc:
        raise ToolError(f"on {host}: devbox-ctl answered no JSON ({exc})") from exc


def _restoring(record: dict[str, Any], owner: str, host: str) -> bool:
    """Whether a record is an interrupted restore's: declared stopped, never yet run, there."""
    return (
        record.get("owner") == owner
        and record.get("host") == host
        and record.get("state") == "stopped"
        and record.get("stoppedAt") is None
    )


def _declare_restored(
    rt: Runtime, chosen: dict[str, Any], name: str, target: str
) -> tuple[Container, bool]:
    """Declare the restored container stopped on the snapshot's host; or find it (resumed).

    Under the config lock: a record of that name is this restore's own, interrupted (resumed)
    or another container (exit 2); the fleet's limits, and the host's room (placement).
    """
    owner, host, sid = str(chosen.get("owner")), str(chosen["host"]), str(chosen["id"])
    settings = chosen.get("settings")
    settings = settings if isinstance(settings, dict) else {}
    resumed = False

    def declare(records: edit.Records) -> str:
        nonlocal resumed
        record = edit.record_named(records, target)
        if record is not None:
            if not _restoring(record, owner, host):
                raise UsageError(
                    f"a container named {target} exists (owner {record.get('owner')})",
                    hint=f"restore it under another name: devbox-ctl restore {name} --as NEWNAME",
                )
            resumed = True
            return f"devbox: {rt.caller.name} resumed the restore of {target}"
        operations.check_limits(rt, records, owner)
        policy = rt.desired.policy
        cpu, memory = settings.get("cpu"), settings.get("memory")
        need = placement.Need(
            float(cpu if isinstance(cpu, int | float) else policy.default_cpu),
            rules.memory_bytes(str(memory or policy.default_memory)) or 0,
            frozenset(),
        )
        choose_host(rt.desired, records, need, name=target, host=host)
        records.append(
            edit.new_record(
                target,
                owner,
                cpu=cpu,
                memory=memory,
                syncthing=bool(settings.get("syncthing")),
                state="stopped",
                created=clock.now(),
                host=host,
            )
        )
        return f"devbox: {rt.caller.name} is restoring {target} from snapshot {sid} on {host}"

    rt.change(declare)
    return rt.container(target), resumed


def restore(
    rt: Runtime,
    name: str,
    *,
    snapshot_id: str | None = None,
    as_name: str | None = None,
    apply: bool = True,
    timeout: float = 300,
    progress: Progress = print,
) -> Restored:
    """Restore a snapshot as a new container on the host that holds it (see above)."""
    target = as_name or name
    issue = rules.container_name(target)
    if issue:
        raise UsageError(f"{issue[0]}; {issue[1]}")
    chosen = _chosen(rt, name, snapshot_id)
    owner, host, sid = str(chosen.get("owner")), str(chosen["host"]), str(chosen["id"])
    authorize(rt.caller, owner, name, "restore")
    if owner not in rt.desired.users:
        raise UsageError(
            f"snapshot {sid} on {host} belongs to {shown(owner, 40)}, who is not a user of "
            "users.nix",
            hint="add the user back to users.nix to restore it",
        )
    base = ["restore", name, "--owner", owner, "--from", sid, "--as", target]
    if target not in rt.desired.by_name():  # a fresh restore: the host checks before anything
        _ask_host(rt, host, [*base, "--check"], link.TRANSFER_TIMEOUT)
    before = link.slice_hashes(rt)
    container, resumed = _declare_restored(rt, chosen, name, target)
    progress(
        f"{target} is already being restored on {host}; continuing."
        if resumed
        else f"Restoring {target} on {host} from snapshot {sid}"
    )
    created = clock.timestamp(container.created) or ""
    args = [*base, "--created", created, *(["--replace"] if resumed else [])]
    _ask_host(rt, host, args, link.TRANSFER_TIMEOUT)
    progress(f"Filled the volume {container.volume} on {host} from snapshot {sid}")
    progress(f"Fetching {owner}'s Tailscale auth key from 1Password")
    _provision_key(rt, container)

    def start(records: edit.Records) -> str:
        edit.required(records, container)["state"] = "running"
        return f"devbox: {rt.caller.name} restored {target} from snapshot {sid} on {host}"

    rt.change(start)
    container = rt.container(target)
    rt.event(
        "restore",
        target,
        owner=owner,
        host=host,
        snapshot=sid,
        fromContainer=name,
        sha256=chosen.get("sha256"),
    )
    done = Restored(container, host, sid, resumed=resumed)
    hosts = set(link.changed_by(before, link.slice_hashes(rt))) | {host}
    deployed = link.deploy_hosts(rt, hosts, apply=apply, progress=progress)
    if not apply:
        return done
    link.require_deployed(deployed)
    done.applied = True
    wait_until_joined(rt, container, timeout, progress)
    link.ask(rt, host, ["set-key", target, "--owner", owner], stdin=operations.NEUTRALISED)
    done.joined = True
    return done
