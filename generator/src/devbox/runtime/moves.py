"""Moving a container to another host of the fleet, and draining a host (runtime/fleet.py).

A move is a sequence of steps, each of which a rerun can redo or skip by looking at what is
true now, so a move interrupted anywhere (a kill, an unreachable host, a failed deploy) is
finished by running the same command again, and nothing is lost on the way:

1. stop the container on the source (declared stopped, source deployed);
2. copy its volume from the source to the target, streamed host to host over SSH
   (`fleet-host export` | `fleet-host import`; the import starts from an empty volume each
   time, so a rerun never mixes two copies). The target holds the stream in its snapshot
   store first, sparse and under the owner's snapshot quota there, and keeps the holes on
   the volume; before step 1 the source says how big the volume is and the target whether
   it fits. A refusal (exit 2 there) calls the move off: the journal goes, and the container
   runs again on the source if it ran;
3. give the target a key secret that holds nothing usable (the container's Tailscale state is
   on its volume, so it comes back as the same node: no new key, no re-enrolment);
4. switch the record's host (validated: capacity, labels), deploy both hosts;
5. start it on the target if it was running, and wait until it is on the tailnet;
6. only then remove the source's copy of the volume and its secret.

Until the record switches the source's volume is the container's data and the copy is
repeated; after it, the target's is, and the source's copy is kept until the target runs.
The journal (runtime/move_journal.py) remembers the source, the target and whether the
container was running, the facts a rerun cannot read from the declaration any more.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from devbox import clock, write
from devbox.declare import edit, placement
from devbox.declare.resolve import Container
from devbox.errors import DevboxError, ToolError, UsageError
from devbox.host import fleet as link
from devbox.host.context import Runtime
from devbox.host.identity import authorize
from devbox.runtime import fleet, move_journal, operations
from devbox.runtime.move_journal import Journal
from devbox.tools import ssh

Progress = Callable[[str], None]


@dataclass
class Moved:
    """What a move did."""

    container: Container
    source: str
    target: str
    resumed: bool = False


def _need(container: Container) -> placement.Need:
    return placement.Need(float(container.cpu), container.memory_bytes, frozenset(container.labels))


def move(rt: Runtime, name: str, to: str, *, progress: Progress = print) -> Moved:
    """Move a container to the host `to`, or finish a move that was interrupted."""
    container = rt.container(name)
    authorize(rt.caller, container.owner, name, "move")
    link.remote(rt, to)
    journal, resumed = _begin(rt, container, to, progress)
    source, owner = journal.source, container.owner
    if resumed:
        progress(f"Resuming the move of {name} from {source} to {to}.")
    if container.host == source:
        try:
            container = _relocate(rt, container, journal, progress)
        except Refused as refused:
            _call_off(rt, name, journal, progress)
            raise refused.error from None
    elif container.host == to:
        behind = link.undeployed(rt, [source, to])
        if behind:
            link.require_deployed(link.deploy_hosts(rt, behind, progress=progress))
    else:
        raise UsageError(
            f"{name} is declared on {container.host}, neither {source} nor {to} of its move",
            hint=f"remove {move_journal.path(rt, name)} after checking where its data is",
        )
    if journal.was_running:
        if container.state != "running":
            progress(f"Starting {name} on {to}")
            fleet.start(rt, name, progress=progress)
            container = rt.container(name)
        fleet.wait_until_joined(rt, container, 300, progress)
    progress(f"Removing the old copy of {name}'s volume on {source}")
    link.ask(
        rt, source, ["purge", name, "--owner", owner, "--no-snapshot"], timeout=link.ACT_TIMEOUT
    )
    write.remove_file(move_journal.path(rt, name))
    rt.event("move", name, owner=owner, source=source, target=to, resumed=resumed)
    progress(f"Moved {name} from {source} to {to}.")
    return Moved(container, source, to, resumed=resumed)


def _begin(rt: Runtime, container: Container, to: str, progress: Progress) -> tuple[Journal, bool]:
    """The move's journal: the one under way (resumed), or a new one once the target fits."""
    name = container.name
    journal, aside = move_journal.of(rt, container)
    if aside is not None:
        progress(f"A journal of a move of another container named {name} was set aside: {aside}")
    if journal is not None:
        if journal.target != to:
            raise UsageError(
                f"a move of {name} to {journal.target} is under way",
                hint=f"finish it first: devbox-ctl move {name} --to {journal.target}",
            )
        return journal, True
    if container.host == to:
        raise UsageError(f"{name} is already on {to}")
    # Refused before anything is done when the target cannot take it.
    edit.preview(
        rt.config.paths,
        lambda records: fleet.choose_host(
            rt.desired, records, _need(container), name=name, host=to
        ),
    )
    # Refused before anything is stopped when the volume does not fit the target's quota.
    _check_fits(rt, container, to, _sizes(rt, container, str(container.host)))
    journal = Journal(
        name,
        container.owner,
        clock.timestamp(container.created),
        str(container.host),
        to,
        container.running,
    )
    move_journal.save(rt, journal)
    return journal, False


def _relocate(rt: Runtime, container: Container, journal: Journal, progress: Progress) -> Container:
    """Stop on the source, copy the volume, declare it on the target, deploy both."""
    name, owner, source, to = container.name, container.owner, journal.source, journal.target
    if container.state == "running":
        progress(f"Stopping {name} on {source}")
        fleet.stop(rt, name, progress=progress, reason=f"moving to {to}")
        container = rt.container(name)
    else:
        # Declared stopped is not stopped: a move killed between its stop's commit and the
        # source's deploy left the container running there, and its volume cannot be copied
        # (the source refuses) until the source runs the committed slice.
        behind = link.undeployed(rt, [source])
        if behind:
            link.require_deployed(link.deploy_hosts(rt, behind, progress=progress))
    _copy(rt, container, source, to, progress)
    link.ask(rt, to, ["set-key", name, "--owner", owner], stdin=operations.NEUTRALISED)
    stopped = container

    def switch(records: edit.Records) -> str:
        record = edit.required(records, stopped)
        record["host"] = to
        return f"devbox: {rt.caller.name} moved {name} from {source} to {to}"

    progress(f"Declaring {name} on {to}")
    link.edit_and_deploy(rt, switch, apply=True, progress=progress, also=[source, to])
    return rt.container(name)


class Refused(Exception):  # noqa: N818 - a refusal carried out of _relocate, not a failure
    """The target refused the volume (its snapshot quota): the move is called off."""

    def __init__(self, error: UsageError) -> None:
        super().__init__(error.message)
        self.error = error


def _sizes(rt: Runtime, container: Container, source: str) -> list[str]:
    """The size options of `import`, as the source measures its volume (none if it cannot)."""
    try:
        said = link.ask_json(
            rt, source, ["export", container.name, "--owner", container.owner, "--sizes"]
        )
    except ToolError:
        return []  # unknown: the target bounds the stream as it comes
    options = []
    for key in ("allocated", "apparent"):
        value = said.get(key) if isinstance(said, dict) else None
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            options += [f"--{key}", str(value)]
    return options


def _refusal(reply: ssh.Reply, container: Container, target: str) -> UsageError:
    """The target's refusal (exit 2) as the control host says it: the host, and the way out."""
    reason = reply.message.removeprefix("error: ")
    return UsageError(
        f"on {target}: {reason}",
        hint=f"nothing was moved: {container.name} stays on {container.host} as it was; make "
        f"room there (devbox-ctl snapshots --prune ID on {target}), choose another host "
        f"(devbox-ctl move {container.name} --to HOST), or ask an admin to raise "
        "maxSnapshotBytesPerUser / maxSnapshotBytesGlobal in users.nix",
    )


def _check_fits(rt: Runtime, container: Container, target: str, sizes: list[str]) -> None:
    """Ask the target's import whether the volume fits its snapshot quota (exit 2: no).

    A target that cannot be asked now is no answer: the move goes on, and the copy is where
    the target checks and bounds the volume, refusing it there with the move called off.
    """
    args = ["import", container.name, "--owner", container.owner, "--check", *sizes]
    try:
        reply = link.ask(rt, target, args, codes=(0, 2))
    except ToolError:
        return
    if reply.returncode == 2:  # noqa: PLR2004 - devbox-ctl's exit status for a refusal
        raise _refusal(reply, container, target)


def _call_off(rt: Runtime, name: str, journal: Journal, progress: Progress) -> None:
    """Undo a refused move's stop: the journal goes, the container runs again if it did."""
    write.remove_file(move_journal.path(rt, name))
    if journal.was_running and rt.container(name).state != "running":
        progress(f"Starting {name} again on {journal.source}")
        fleet.start(rt, name, progress=progress)


def _copy(rt: Runtime, container: Container, source: str, target: str, progress: Progress) -> None:
    """The volume, streamed from the source host's podman into a fresh one on the target.

    The target holds the stream in its snapshot store (counted against the owner's quota
    there, holes kept) before it fills the volume; a stream that does not fit is refused
    (Refused) with nothing left on the target, and the source keeps its copy.
    """
    progress(f"Copying the volume {container.volume} from {source} to {target}")
    owner = container.owner
    sizes = _sizes(rt, container, source)
    sent, received = ssh.stream(
        link.remote(rt, source),
        ["fleet-host", "export", container.name, "--owner", owner],
        link.remote(rt, target),
        ["fleet-host", "import", container.name, "--owner", owner, *sizes],
        timeout=link.TRANSFER_TIMEOUT,
    )
    if isinstance(received, ssh.Reply) and received.returncode == 2:  # noqa: PLR2004
        raise Refused(_refusal(received, container, target))
    for side, answer in (("exporting on", sent), ("importing on", received)):
        if isinstance(answer, ssh.Unreachable):
            raise ToolError(
                f"{side} {answer.host}: {answer}",
                hint=f"the source keeps the data; run devbox-ctl move {container.name} "
                f"--to {target} again",
            )
        if not answer.ok:
            raise ToolError(
                f"{side} {answer.host} failed: {answer.message}",
                hint=f"the source keeps the data; run devbox-ctl move {container.name} "
                f"--to {target} again",
            )


@dataclass
class Drain:
    """A drain: where each container goes, and what happened."""

    host: str
    moves: list[tuple[str, str]]
    moved: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def drain_plan(rt: Runtime, host: str) -> list[tuple[str, str]]:
    """Where each container of the host goes: a move under way keeps its target."""
    link.remote(rt, host)
    desired = rt.desired
    entries = [
        (c.name, placement.Placed(str(c.host), float(c.cpu), c.memory_bytes), _need(c))
        for c in desired.containers
    ]
    try:
        planned = dict(placement.drain_plan(fleet.spaces(desired), entries, host))
    except placement.NoRoom as exc:
        raise UsageError(exc.message(), hint=f"nothing was moved off {host}") from exc
    by_name = desired.by_name()
    for name in planned:
        journal = move_journal.read(rt, name)
        # Only a move of this very container keeps its target: another's journal is not obeyed.
        mine = journal is not None and move_journal.belongs(journal, by_name[name])
        if mine and journal is not None and journal.source == host:
            planned[name] = journal.target
    return sorted(planned.items())


def drain(rt: Runtime, host: str, *, dry_run: bool, progress: Progress = print) -> Drain:
    """Move every container off a host (its maintenance); one failure does not stop the rest."""
    link.authorize_admin(rt, f"drain {host}")
    plan = Drain(host, drain_plan(rt, host))
    if dry_run:
        return plan
    for name, target in plan.moves:
        try:
            move(rt, name, target, progress=progress)
            plan.moved.append(name)
        except DevboxError as exc:
            plan.failed[name] = exc.message
            progress(f"Moving {name} to {target} failed: {exc.message}")
    return plan
