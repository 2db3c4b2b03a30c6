"""`devbox-ctl restore`: bring a destroyed container's snapshot back as a new container.

The snapshot (lifecycle/snapshots.py) is checked, the new container declared stopped, its
volume filled from the snapshot, its key provisioned, and only then declared running and
applied, so a failure in between leaves a stopped container that status explains.

A restore killed or failed on the way is finished by the same command run again. Before it
declares anything it writes a journal, `<stateDir>/restores/<name>.json` (the snapshot, the
owner and the new record's creation time): a record that matches it is this restore's own.
Still stopped and never stopped since (no stoppedAt), its volume holds nothing but a partial
filling, which is removed and filled again; declared running, the filling was done, and the
rebuild, the wait and the key's neutralising are done again. The journal is removed last.
Any other container of that name is never touched.

In a fleet the snapshot is on the host where the container was destroyed: the control host
declares and deploys (runtime/fleet.py), and that host runs `prepare` and `fill` below
(runtime/fleet_host.py `restore`), the same checks and the same filling as here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from devbox import clock, rules, write
from devbox.declare import edit
from devbox.declare.resolve import Container
from devbox.errors import UsageError
from devbox.host import rebuild, runstate
from devbox.host.context import Runtime
from devbox.host.identity import authorize
from devbox.lifecycle import snapshots
from devbox.runtime import operations


@dataclass
class Restored:
    """What restore did."""

    container: Container
    snapshot: snapshots.Snapshot
    applied: bool = False
    joined: bool = False

    def as_json(self) -> dict[str, Any]:
        """`restore --json`."""
        return {
            "name": self.container.name,
            "owner": self.container.owner,
            "snapshot": self.snapshot.id,
            "applied": self.applied,
            "joined": self.joined,
        }


def restorable(rt: Runtime, name: str | None) -> list[dict[str, Any]]:
    """`restore --list`: the snapshots the caller may restore (of container NAME, if given)."""
    return [
        s.description() | {"path": str(s.path)}
        for s in snapshots.every(rt)
        if rt.caller.may_act_on(s.owner) and (name is None or s.container == name)
    ]


def restore(
    rt: Runtime,
    name: str,
    *,
    snapshot_id: str | None = None,
    as_name: str | None = None,
    apply: bool = True,
    timeout: float = 300,
    progress: Callable[[str], None] = print,
) -> Restored:
    """Bring a snapshot back as a new container with that data."""
    snapshot = snapshots.choose(rt, name, snapshot_id)
    authorize(rt.caller, snapshot.owner, snapshot.container, "restore")
    target = as_name or name
    issue = rules.container_name(target)
    if issue:
        raise UsageError(f"{issue[0]}; {issue[1]}")
    container = _interrupted(rt, snapshot, target)
    resumed = container is not None
    if container is None:
        if target in rt.desired.by_name():
            raise UsageError(
                f"a container named {target} exists",
                hint=f"restore it under another name: devbox-ctl restore {name} --as NEWNAME",
            )
        prepare(rt, snapshot, target)
        progress(f"Restoring {target} from snapshot {snapshot.id} ({snapshot.size} bytes)")
        created = clock.now()
        _write_journal(rt, snapshot, target, created)
        container = _declare(rt, snapshot, target, created)
    else:
        progress(f"{target} is already being restored from snapshot {snapshot.id}; continuing.")
    if container.state != "running":
        if resumed:
            # Declared stopped by this restore and never run: its volume is a partial filling.
            rt.podman(container.owner).remove_volume(container.volume)
            prepare(rt, snapshot, target)
        fill(rt, snapshot, container)
        progress(f"Filled the volume {container.volume} from {snapshot.path}")
        operations.provision_key(rt, container)
        container = _start(rt, snapshot, container)
    rt.event(
        "restore",
        target,
        owner=container.owner,
        snapshot=snapshot.id,
        fromContainer=snapshot.container,
        sha256=snapshot.sha256,
        resumed=resumed or None,
    )
    done = Restored(container, snapshot)
    # The journal goes last: a restore killed after its record was declared running, but
    # before its rebuild, its wait or its key's neutralising, is finished by a rerun too.
    if not rebuild.run_or_print(rt.config, apply, progress):
        write.remove_file(journal(rt, target))
        return done
    done.applied = True
    operations.wait_until_joined(rt, container, timeout, progress)
    operations.neutralise_key(rt, container)
    done.joined = True
    write.remove_file(journal(rt, target))
    return done


def prepare(rt: Runtime, snapshot: snapshots.Snapshot, target: str) -> None:
    """What is checked on the snapshot's host before the restore declares anything.

    The new container's volume name is free (a volume kept by destroy --keep-volume is never
    overwritten), and the snapshot's data is what was exported (its sha256).
    """
    if rt.podman(snapshot.owner).volume_exists(f"{target}-data"):
        raise UsageError(
            f"the volume {target}-data exists (kept by destroy --keep-volume?)",
            hint=f"remove it (podman volume rm {target}-data, as {snapshot.owner}) or restore "
            f"--as another name",
        )
    snapshots.verify(snapshot)


def fill(rt: Runtime, snapshot: snapshots.Snapshot, container: Container) -> None:
    """Fill the restored container's new volume from the snapshot.

    The snapshot's tar holds the owner's bytes, read as hostile: lifecycle/snapshots.py
    `import_snapshot` admits only what stays inside the volume, holes kept.
    """
    snapshots.import_snapshot(rt, snapshot, container)


def journal(rt: Runtime, target: str) -> Path:
    """Where a restore under way to target keeps what a rerun needs to know it (docstring)."""
    return rt.config.state_dir / "restores" / f"{target}.json"


def _write_journal(
    rt: Runtime, snapshot: snapshots.Snapshot, target: str, created: datetime
) -> None:
    entry = {"snapshot": snapshot.id, "owner": snapshot.owner, "created": clock.timestamp(created)}
    write.ensure_directory(journal(rt, target).parent, mode=0o700)
    write.write_file(journal(rt, target), json.dumps(entry).encode("utf-8"), mode=0o600)


def _interrupted(rt: Runtime, snapshot: snapshots.Snapshot, target: str) -> Container | None:
    """The container of this very restore, interrupted after it was declared; else None.

    Its record matches the journal (owner, creation time, the same snapshot) and is either
    declared running (filled) or stopped and never stopped since (no stoppedAt: not run).
    """
    container = rt.desired.by_name().get(target)
    try:
        entry = json.loads(journal(rt, target).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if container is None or not isinstance(entry, dict):
        return None
    same = (
        entry.get("snapshot") == snapshot.id
        and entry.get("owner") == container.owner == snapshot.owner
        and entry.get("created") == clock.timestamp(container.created)
    )
    if not same or (container.state != "running" and container.stopped_at is not None):
        return None
    return container


def _declare(
    rt: Runtime, snapshot: snapshots.Snapshot, target: str, created: datetime
) -> Container:
    """Record the restored container, stopped until its volume is full; return it.

    The name is checked again here, under the config lock: checked only before, a name another
    user took in between would get this snapshot's files in their volume.
    """

    def change(records: edit.Records) -> str:
        existing = edit.record_named(records, target)
        if existing is not None:
            raise UsageError(
                f"a container named {target} exists (owner {existing.get('owner')})",
                hint=f"restore it under another name: devbox-ctl restore {snapshot.container} "
                "--as NEWNAME",
            )
        settings = snapshot.settings
        record = edit.new_record(
            target,
            snapshot.owner,
            cpu=settings.get("cpu"),
            memory=settings.get("memory"),
            syncthing=bool(settings.get("syncthing")),
            state="stopped",
            created=created,
        )
        records.append(record)
        return f"devbox: {rt.caller.name} is restoring {target} from snapshot {snapshot.id}"

    return rt.change(change).by_name()[target]


def _start(rt: Runtime, snapshot: snapshots.Snapshot, container: Container) -> Container:
    """Declare the restored container running, if its record is still the one restore made."""

    def change(records: edit.Records) -> str:
        edit.required(records, container)["state"] = "running"
        return f"devbox: {rt.caller.name} restored {container.name} from snapshot {snapshot.id}"

    started = rt.change(change).by_name()[container.name]
    # Running on this host from now, as create records it: a run state left by a destroyed
    # container of the same name (no rebuild since) must not keep this one stopped.
    runstate.record(rt.config.state_dir, started.owner, started.name, runstate.RUNNING)
    return started
