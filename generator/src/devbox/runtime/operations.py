"""The runtime verbs' work: create, start, stop, destroy and rotate-key a container.

Each is the seed's flow made declarative: the change is recorded in containers.json, the tree
regenerated and committed (declare.edit, under the config lock, with every limit checked).
create and destroy change what NixOS installs, and are applied with the rebuild command.
stop and start change only the run state: they record it on the host (host/runstate.py),
which boot and every later switch honour, act through the owner's systemd manager at once,
and commit the same state to the declaration, with no rebuild.

The order of steps is chosen so that a kill at any point leaves a state that `status` can
describe and a rerun (or `destroy`) can finish: a secret or volume is created only for a
container that is already declared, and removed before its declaration is.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from devbox import clock, rules, volume
from devbox.declare import edit, resolve
from devbox.declare.models import Policy
from devbox.declare.resolve import Container
from devbox.errors import DevboxError, ToolError, UsageError
from devbox.escaping import shown
from devbox.host import rebuild, runstate
from devbox.host.context import Runtime
from devbox.host.identity import authorize
from devbox.lifecycle import snapshots
from devbox.tools import onepassword, systemd, tailscale

Progress = Callable[[str], None]
Joined = TypeVar("Joined")
# What a key secret holds once the container has joined: nothing usable. The secret stays
# (a container whose secret is missing cannot start), and the image reads a blank key file as
# "no key", which is fine while its Tailscale state is on the volume.
NEUTRALISED = "\n"


@dataclass
class Created:
    """What create did, for the connection instructions."""

    container: Container
    applied: bool
    joined: bool
    node: tailscale.NodeState | None = None
    resumed: bool = False


@dataclass
class Destroyed:
    """What destroy did and did not remove."""

    container: Container
    snapshot: str | None = None
    kept_volume: str | None = None
    devices_removed: list[str] = field(default_factory=list)
    device_note: str = ""
    # Why its Nix GC roots were left, with the fix; "" when removed or there were none.
    nix_roots_left: str = ""
    applied: bool = False


def owner_for(rt: Runtime, owner: str | None) -> str:
    """Whom a new container is for: --owner (a user of users.nix), or the caller."""
    if owner is None:
        if rt.caller.is_system:
            raise UsageError("root creates a container for someone: pass --owner USER")
        return rt.caller.name
    if owner not in rt.desired.users:
        raise UsageError(
            f"{owner!r} is not a user in users.nix",
            hint=f"users: {', '.join(sorted(rt.desired.users))}",
        )
    return owner


def resumes(records: edit.Records, name: str, owner: str) -> bool:
    """Whether a create finds its own earlier record (it resumes); another owner's: exit 2."""
    existing = edit.record_named(records, name)
    if existing is not None and existing.get("owner") != owner:
        raise UsageError(f"{name} already exists (owner {existing.get('owner')})")
    return existing is not None


def check_limits(rt: Runtime, records: edit.Records, owner: str) -> None:
    """The limits, said for a person creating a container (validation is the backstop).

    In a fleet the records are the whole fleet's, so the limits count across it.
    """
    policy = rt.desired.policy
    user = rt.desired.users[owner]
    where = "the fleet" if rt.desired.fleet else "the host"
    limit = policy.max_per_user if user.max_containers is None else user.max_containers
    owned = sorted(str(r.get("name", "?")) for r in records if r.get("owner") == owner)
    if len(owned) >= limit:
        raise UsageError(
            f"{owner} already has {rules.count(len(owned), 'container')} ({', '.join(owned)}), "
            f"the limit of {limit}",
            hint="destroy one first (devbox-ctl destroy NAME), or ask an admin to raise the "
            "limit in users.nix",
        )
    if len(records) >= policy.max_global:
        raise UsageError(
            f"{where} already has {len(records)} containers, the limit of {policy.max_global} "
            "(containers.maxGlobal)",
            hint="destroy one first, or ask an admin to raise maxGlobal in users.nix",
        )


def auth_key(rt: Runtime, container: Container) -> str:
    """The owner's Tailscale auth key, from 1Password (never an argument, never a file)."""
    policy = rt.desired.policy
    vault = rt.config.op_vault or policy.op_vault
    return onepassword.read_auth_key(
        vault, container.owner, policy.op_field, rt.config.op_token_file
    )


def provision_key(rt: Runtime, container: Container) -> None:
    """Fetch the owner's auth key from 1Password into the owner's podman secret (stdin only)."""
    rt.podman(container.owner).set_secret(container.secret, auth_key(rt, container))


def neutralise_key(rt: Runtime, container: Container) -> None:
    """Replace a joined container's key with nothing usable."""
    rt.podman(container.owner).set_secret(container.secret, NEUTRALISED)


def wait_until_joined(
    rt: Runtime, container: Container, timeout: float, progress: Progress
) -> tailscale.NodeState:
    """Poll the container's tailscaled until it has joined; a timeout is an error."""
    podman = rt.podman(container.owner)

    def look() -> tuple[str, tailscale.NodeState | None]:
        status = podman.status_of(podman.inspect_container(container.name))
        node = tailscale.node_state(podman, container.name) if status == "running" else None
        now = f"container {status}" + (f", Tailscale {node.backend}" if node else "")
        return now, node if node is not None and node.joined else None

    return poll_until_joined(container.name, look, timeout, progress)


def poll_until_joined(
    name: str,
    look: Callable[[], tuple[str, Joined | None]],
    timeout: float,
    progress: Progress,
) -> Joined:
    """Ask `look` every 2 s until it returns the joined node; say each new state; time out.

    `look` says the state in words and returns the node once it has joined (here through the
    owner's podman; in a fleet through the host's devbox-ctl).
    """
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        now, joined = look()
        if joined is not None:
            return joined
        if now != last:
            progress(f"Waiting for {name} to join the tailnet: {now}")
            last = now
        if time.monotonic() >= deadline:
            raise ToolError(
                f"{name} did not join the tailnet within {timeout:g} s ({now})",
                hint=f"devbox-ctl status {name} and devbox-ctl logs {name} "
                "show why; an expired or untagged auth key is the usual cause: fix it in "
                f"1Password, then devbox-ctl rotate-key {name}",
            )
        time.sleep(2)


def check_request(
    rt: Runtime, name: str, owner: str | None, cpu: float | None, memory: str | None
) -> str:
    """What a create checks before anything is read or written; the owner it is for.

    The name, the sizes, who it is for and whether the caller may: on one host and from a
    fleet's control host alike (runtime/fleet.py), so both refuse the same requests.
    """
    issue = rules.container_name(name)
    if issue:
        raise UsageError(f"{issue[0]}; {issue[1]}")
    check_resources(cpu, memory)
    check_bounds(rt.desired.policy, cpu, memory)
    owner = owner_for(rt, owner)
    authorize(rt.caller, owner, name, "create a container for")
    return owner


def check_resources(cpu: float | None, memory: str | None) -> None:
    """What the user typed for --cpu and --memory, by the rules of containers.json's fields.

    Blamed on the option, before any record is read, placed or written (a NaN would reach a
    fleet's placement arithmetic).
    """
    issues = {
        "--cpu": None if cpu is None else rules.cpu(cpu, shown=f"{cpu:g}"),
        "--memory": None if memory is None else rules.memory(memory),
    }
    for option, issue in issues.items():
        if issue:
            raise UsageError(f"{option}: {issue[0]}; {issue[1]}")


def check_bounds(policy: Policy, cpu: float | None, memory: str | None) -> None:
    """--cpu and --memory against users.nix's maxCpu and maxMemory, blamed on the option.

    The same bounds as containers.json's validation (declare/validate.py), which still
    checks the record; this names what the user typed, not a record that does not exist yet.
    """
    if cpu is not None and cpu > policy.max_cpu:
        raise UsageError(
            f"--cpu: {cpu:g} is more than maxCpu ({policy.max_cpu})",
            hint=f"use at most {policy.max_cpu}, or ask an admin to raise containers.maxCpu",
        )
    size = rules.memory_bytes(memory) if memory is not None else None
    if size is not None and size > (rules.memory_bytes(policy.max_memory) or 0):
        raise UsageError(
            f"--memory: {rules.show(memory)} is more than maxMemory ({policy.max_memory})",
            hint=f"use at most {policy.max_memory}, or ask an admin to raise containers.maxMemory",
        )


def for_owner(rt: Runtime, owner: str) -> str:
    """The words " for OWNER" when the caller asked for another's container, else none.

    Every commit subject names who asked (the caller), as the message's "Requested by" does.
    """
    return "" if owner == rt.caller.name else f" for {owner}"


def create(
    rt: Runtime,
    name: str,
    *,
    owner: str | None = None,
    cpu: float | None = None,
    memory: str | None = None,
    syncthing: bool = False,
    apply: bool = True,
    timeout: float = 300,
    progress: Progress = print,
) -> Created:
    """Declare a container, provision its key, apply, and wait for it to join the tailnet."""
    owner = check_request(rt, name, owner, cpu, memory)
    resumed = False

    def change(records: edit.Records) -> str:
        nonlocal resumed
        if resumes(records, name, owner):
            resumed = True
            return f"devbox: {rt.caller.name} resumed the creation of {name}{for_owner(rt, owner)}"
        check_limits(rt, records, owner)
        record = edit.new_record(
            name,
            owner,
            cpu=cpu,
            memory=memory,
            syncthing=syncthing,
            state="running",
            created=clock.now(),
        )
        records.append(record)
        return f"devbox: {rt.caller.name} created {name}{for_owner(rt, owner)}"

    rt.change(change)
    container = rt.container(name)
    # Running on this host from now: a run state left by a container of the same name that
    # was destroyed without a rebuild since must not keep this one stopped.
    runstate.record(rt.config.state_dir, owner, name, runstate.RUNNING)
    if resumed:
        progress(f"{name} is already declared; continuing its creation.")
    else:
        progress(f"Declared {name} (owner {owner}, {container.cpu} CPUs, {container.memory})")
        rt.event("create", name, owner=owner, cpu=container.cpu, memory=container.memory)
    podman = rt.podman(owner)
    joined_before = resumed and _joined(rt, container)
    if not joined_before:
        progress(f"Fetching {owner}'s Tailscale auth key from 1Password")
        provision_key(rt, container)
    applied = rebuild.run_or_print(rt.config, apply, progress)
    if not applied:
        return Created(container, applied=False, joined=False, resumed=resumed)
    node = wait_until_joined(rt, container, timeout, progress)
    if podman.secret_exists(container.secret):
        neutralise_key(rt, container)
    return Created(container, applied=True, joined=True, node=node, resumed=resumed)


def _joined(rt: Runtime, container: Container) -> bool:
    podman = rt.podman(container.owner)
    inspected = podman.inspect_container(container.name)
    if podman.status_of(inspected) != "running":
        return False
    return tailscale.node_state(podman, container.name).joined


def declare_state(record: dict[str, Any], state: str) -> str:
    """Set a record's state (a stop also its stop time, now); the verb for the commit."""
    record["state"] = state
    if state == "stopped":
        record["stoppedAt"] = clock.timestamp(clock.now())
        return "stopped"
    record.pop("stoppedAt", None)
    return "started"


def _record_state(rt: Runtime, container: Container, state: str) -> None:
    """Commit a container's new state to the declaration: the audit trail, no rebuild."""

    def change(records: edit.Records) -> str:
        verb = declare_state(edit.required(records, container), state)
        return f"devbox: {rt.caller.name} {verb} {container.name}"

    rt.change(change)


def start(rt: Runtime, name: str, *, progress: Progress = print) -> Container:
    """Start a container now and record it running, on this host and in the declaration."""
    container = rt.container(name)
    authorize(rt.caller, container.owner, name, "start")
    state_dir, owner = rt.config.state_dir, container.owner
    with runstate.held(state_dir, owner):
        before = runstate.read(state_dir, owner, name)
        runstate.record(state_dir, owner, name, runstate.RUNNING)
        result = systemd.act(owner, "start", [container.service])
        if not result.ok:
            _undo_start(state_dir, container, before)
            raise ToolError(
                f"{container.service} did not start: {result.stderr.strip()}",
                hint=f"devbox-ctl status {name} and devbox-ctl logs {name} show why",
            )
    progress(f"Started {name}.")
    rt.event("start", name, owner=owner)
    if container.state != "running":
        _record_state(rt, container, "running")
    return container


def _undo_start(state_dir: Path, container: Container, before: str | None) -> None:
    """A start that failed leaves the run state as it was, and a stopped container stopped.

    Its unit would otherwise retry on its own (Restart=on-failure) while its record says
    stopped.
    """
    if before is None:
        runstate.forget(state_dir, container.owner, container.name)
    else:
        runstate.record(state_dir, container.owner, container.name, before)
    if (before or container.state) != runstate.RUNNING:
        systemd.act(container.owner, "stop", [container.service])


def stop(
    rt: Runtime,
    name: str,
    *,
    reason: str = "",
    automatic: bool = False,
    progress: Progress = print,
    details: dict[str, object] | None = None,
) -> Container:
    """Stop a container now and record it stopped (the auto-destroy clock starts)."""
    container = rt.container(name)
    authorize(rt.caller, container.owner, name, "stop")
    with runstate.held(rt.config.state_dir, container.owner):
        runstate.record(rt.config.state_dir, container.owner, name, runstate.STOPPED)
        halt(container)
    progress(f"Stopped {name}.")
    rt.event(
        "stop",
        name,
        owner=container.owner,
        reason=reason or None,
        automatic=automatic,
        **(details or {}),
    )
    if container.state != "stopped":
        _record_state(rt, container, "stopped")
    return container


def destroy(
    rt: Runtime,
    name: str,
    *,
    keep_volume: bool = False,
    snapshot: bool = True,
    automatic: bool = False,
    reason: str = "",
    apply: bool = True,
    progress: Progress = print,
    details: dict[str, object] | None = None,
) -> Destroyed:
    """Remove a container: its unit, key, volume (after a snapshot) and tailnet device."""
    container = rt.container(name)
    authorize(rt.caller, container.owner, name, "destroy")

    def forget(records: edit.Records) -> str:
        # This container's record only: the name may belong to someone else by now.
        records[:] = [r for r in records if not edit.same(r, container)]
        return f"devbox: {rt.caller.name if not automatic else 'cleanup'} destroyed {name}"

    def check(records: edit.Records) -> str:
        edit.required(records, container)
        return forget(records)

    # Under the lock, before anything is removed: the record is still this container's, and
    # the declaration without it can be recorded (a state that cannot be written is refused
    # now, not after the volume is gone).
    edit.preview(rt.config.paths, check)
    podman = rt.podman(container.owner)
    done = Destroyed(container)
    # A probe that cannot tell raises here, before anything is stopped or removed.
    had_volume = not keep_volume and podman.volume_exists(container.volume)
    keep_snapshot = had_volume and snapshot
    if keep_snapshot:
        # A snapshot that no quota has room for stops the destroy before anything changes.
        snapshots.check_room(rt, container)
    # Stopped on this host first: a boot before the rebuild does not start it again.
    with runstate.held(rt.config.state_dir, container.owner):
        runstate.record(rt.config.state_dir, container.owner, name, runstate.STOPPED)
        halt(container)
    podman.remove_container(name)
    progress(f"Stopped {name}.")
    if keep_snapshot:
        try:
            done.snapshot = str(snapshots.take(rt, container))
        except DevboxError:
            # No snapshot (it did not fit, or the export failed): nothing is removed, and the
            # container is left as it was, running if it is declared so.
            if container.state == "running":
                _start_again(rt, container, progress)
            raise
        progress(f"Saved the volume {container.volume} to {done.snapshot}")
    podman.remove_secret(container.secret)
    if keep_volume:
        done.kept_volume = container.volume
    elif had_volume:
        podman.remove_volume(container.volume)
        progress(f"Removed the volume {container.volume}.")
    elif podman.volume_exists(container.volume):
        # None was there when destroy looked, so none was saved: one made since (a start in
        # between) is left, and the record with it, for a rerun to save and remove.
        raise ToolError(
            f"the volume {container.volume} appeared while {name} was being destroyed: it "
            "was not saved, so it was not removed",
            hint=f"run devbox-ctl destroy {name} again",
        )
    done.nix_roots_left = remove_nix_roots(container, podman.uid, progress, volume_kept=keep_volume)
    remove_device(rt, container, done)

    rt.change(forget)
    rt.event(
        "destroy",
        name,
        owner=container.owner,
        reason=reason or None,
        automatic=automatic,
        snapshot=done.snapshot,
        keptVolume=done.kept_volume,
        **(details or {}),
    )
    done.applied = rebuild.run_or_print(rt.config, apply, progress)
    return done


def halt(container: Container) -> None:
    """Stop the container's service in its owner's manager; a ToolError unless it stopped.

    A unit the manager does not know (never applied, already removed) is stopped already.
    """
    result = systemd.act(container.owner, "stop", [container.service])
    if not result.ok and not systemd.not_loaded(result):
        raise ToolError(
            f"{container.service} did not stop: {result.stderr.strip() or result.returncode}",
            hint=f"is {container.owner}'s systemd manager running? devbox-ctl status "
            f"{container.name} shows the state; the same command run again finishes the work",
        )


def _start_again(rt: Runtime, container: Container, progress: Progress) -> None:
    """Start a container a failed destroy had stopped, and say whether it did."""
    with runstate.held(rt.config.state_dir, container.owner):
        runstate.record(rt.config.state_dir, container.owner, container.name, runstate.RUNNING)
        result = systemd.act(container.owner, "start", [container.service])
    if result.ok:
        progress(f"Started {container.name} again.")
    else:
        progress(
            f"{container.name} did not start again: "
            f"{result.stderr.strip() or result.returncode}; devbox-ctl start {container.name}"
        )


def remove_nix_roots(
    container: Container, uid: int, progress: Progress, *, volume_kept: bool
) -> str:
    """Remove the container's GC roots with its volume; a volume kept keeps them.

    Then the host's GC may collect what only they kept (docs/nix-in-containers.md). Never fails
    the destroy: what could not be removed is said, with the fix, and returned ("" otherwise).
    """
    if volume_kept:
        return ""
    path = volume.NIX_ROOTS / container.owner / container.name
    try:
        removed = volume.remove_nix_roots(
            uid, container.owner, container.name, volume.Budget.of(60, "removing its GC roots")
        )
    except volume.Unreadable as exc:
        left = (
            f"Left its Nix GC roots {path}: {shown(str(exc))}. Until they are removed (as root: "
            f"rm -r {path}), the host's GC keeps what they link to."
        )
        progress(left)
        return left
    if removed:
        progress(f"Removed its Nix GC roots {path}.")
    return ""


def remove_device(rt: Runtime, container: Container, done: Destroyed) -> None:
    """Remove the container's tailnet device (API key configured), or say how to."""
    key_file = rt.config.tailscale_api_key_file
    if key_file is None:
        done.device_note = (
            f"No Tailscale API key is configured: remove the device {container.name} in the "
            "Tailscale admin console (Machines)."
        )
        return
    try:
        api = tailscale.TailscaleApi(rt.config.tailscale_api_url, rt.config.tailnet, key_file)
        done.devices_removed = tailscale.remove_device(
            api, container.name, resolve.owner_tag(container.owner)
        )
    except tailscale.ApiError as exc:
        done.device_note = (
            f"Could not remove the Tailscale device {container.name} ({exc}): remove it in the "
            "admin console."
        )


def rotate_key(
    rt: Runtime, name: str, *, timeout: float = 300, progress: Progress = print
) -> tailscale.NodeState:
    """Re-enroll a container with a fresh key, keeping the container and its volume."""
    container = rt.container(name)
    authorize(rt.caller, container.owner, name, "rotate the key of")
    podman = rt.podman(container.owner)
    progress(f"Fetching {container.owner}'s Tailscale auth key from 1Password")
    provision_key(rt, container)
    inspected = podman.inspect_container(name)
    if podman.status_of(inspected) == "running":
        progress(f"Logging {name} out of the tailnet")
        podman.exec(name, "tailscale", "logout")
    result = systemd.act(container.owner, "restart", [container.service])
    if not result.ok:
        raise ToolError(f"{container.service} did not restart: {result.stderr.strip()}")
    node = wait_until_joined(rt, container, timeout, progress)
    neutralise_key(rt, container)
    rt.event("rotate-key", name, owner=container.owner)
    return node
