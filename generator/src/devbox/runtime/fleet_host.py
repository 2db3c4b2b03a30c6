"""`devbox-ctl fleet-host OP`: what the control host asks of a fleet host, over SSH, as root.

The control host edits the declaration and deploys; what only the host itself can do runs
here, on the host, from its own deployed declaration (docs/fleet.md): say which slice is
deployed, set a container's Tailscale key (from stdin), export and import a volume as a tar
stream, purge a container's volume and key, and say whether a volume exists.

What is declared *here* is the deployed slice manifest (config.deployedManifest), never the
control host's word: an import or purge of a container this host's deployment declares
running is refused, and a container declared here under another owner is refused too. Every
name and owner is checked before podman hears of it.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable
from typing import IO, Any, BinaryIO

from devbox import clock, rules, write
from devbox.declare.resolve import Container
from devbox.errors import ToolError, UsageError
from devbox.escaping import shown
from devbox.host import deployed, hostconfig
from devbox.host.context import Runtime
from devbox.lifecycle import snapshot_quota, snapshots
from devbox.runtime import operations, restore
from devbox.tools import onepassword, systemd
from devbox.volume import Budget, Unreadable, open_below, open_volume

# A Tailscale auth key is about 60 characters; what comes on stdin is read no further.
MAX_KEY_BYTES = 4096
# A tar stream is whole 512-byte blocks: a shorter one is not a volume's export.
TAR_BLOCK = 512
COPY_CHUNK = 1 << 20
# What measuring a volume for a move may take (export --sizes); past it the size is unknown.
SIZE_SECONDS = 120
SIZE_ENTRIES = 1_000_000
# The directory whose lock a host's destructive fleet-host acts hold (under its state dir):
# what they check of the deployed declaration cannot change under another such act.
HOST_LOCK = "fleet-host"
# What the control host writes over a key once the container joined (operations.NEUTRALISED).
_NEUTRAL = re.compile(r"\s*")


def _declared_here(rt: Runtime) -> dict[str, Container]:
    """The containers this host's deployment declares (none when nothing was deployed)."""
    if rt.deployed_only:
        return rt.desired.by_name()
    if deployed.read_bytes(rt.config.deployed_manifest) is None:
        return {}
    return deployed.current(rt.config.deployed_manifest).by_name()


def target(rt: Runtime, name: str, owner: str, created: str | None = None) -> Container:
    """The container NAME of OWNER as this host knows it (declared here or not).

    `created` (the control host's record of it): a container declared here under that name
    must be that one, not one created since under the same name (by its owner or another).
    """
    issue = rules.container_name(name)
    if issue is not None:
        raise UsageError(f"container name {issue[0]}; {issue[1]}")
    if owner not in rt.desired.users:
        raise UsageError(f"{owner!r} is not a user of this host's declaration ({rt.source})")
    here = _declared_here(rt).get(name)
    if here is not None:
        if here.owner != owner:
            raise UsageError(f"{name} is declared on this host for {here.owner}, not {owner}")
        declared = clock.timestamp(here.created) or "at an unrecorded time"
        if created is not None and declared != created:
            raise UsageError(
                f"{name} on this host is another container (created {declared}, not "
                f"{shown(created, 40)}): nothing was done",
                hint=f"devbox-ctl status {name} on the control host shows which one is declared",
            )
        return here
    policy = rt.desired.policy
    # Not declared here (moved away, or not yet arrived): what a snapshot records of its
    # settings is the policy's defaults.
    return Container(
        name=name,
        owner=owner,
        uid=rt.desired.users[owner].uid,
        cpu=policy.default_cpu,
        memory=policy.default_memory,
        syncthing=False,
        state="stopped",
        image=policy.image,
    )


def _refuse_running(rt: Runtime, container: Container, what: str) -> None:
    here = _declared_here(rt).get(container.name)
    if here is not None and here.running:
        raise UsageError(
            f"{container.name} is declared running on this host: {what} refused",
            hint=f"stop it first (devbox-ctl stop {container.name} on the control host)",
        )


def deployed_state(config: hostconfig.HostConfig) -> dict[str, Any]:
    """Which slice is deployed here: the host's name and the manifest's SHA-256 (or null)."""
    return {"host": config.host_name, "manifestSha256": deployed.sha256(config.deployed_manifest)}


def set_key(rt: Runtime, name: str, owner: str, source: BinaryIO) -> dict[str, Any]:
    """Put the key that came on stdin into the container's podman secret (replacing it)."""
    container = target(rt, name, owner)
    raw = source.read(MAX_KEY_BYTES + 1)
    if len(raw) > MAX_KEY_BYTES:
        raise UsageError(f"the key on standard input is longer than {MAX_KEY_BYTES} bytes")
    try:
        key = raw.decode("ascii")
    except UnicodeDecodeError as exc:
        raise UsageError("the key on standard input is not ASCII text") from exc
    neutral = _NEUTRAL.fullmatch(key) is not None
    # The value itself is never shown: it is a secret, or a mistake that may hold one.
    if not neutral and onepassword.KEY.fullmatch(key.strip()) is None:
        raise UsageError(
            "standard input does not hold a Tailscale auth key (tskey-auth-…), nor nothing"
        )
    rt.podman(owner).set_secret(container.secret, "\n" if neutral else key.strip())
    return {"name": name, "secret": container.secret, "neutralised": neutral}


def _stopped_volume(rt: Runtime, name: str, owner: str) -> Container:
    """The container whose volume is exported: not running here, and with its volume."""
    container = target(rt, name, owner)
    podman = rt.podman(owner)
    if podman.status_of(podman.inspect_container(name)) == "running":
        raise UsageError(
            f"{name} is running on this host: its volume would be copied mid-change",
            hint=f"stop it first (devbox-ctl stop {name} on the control host)",
        )
    if not podman.volume_exists(container.volume):
        raise UsageError(f"{name} has no volume {container.volume} on this host")
    return container


def export(rt: Runtime, name: str, owner: str, into: IO[bytes]) -> None:
    """Write the container's volume, as a tar stream, to into (stdout)."""
    container = _stopped_volume(rt, name, owner)

    def send(chunk: bytes) -> None:
        into.write(chunk)

    rt.podman(owner).export_volume(container.volume, send)
    into.flush()


def sizes(rt: Runtime, name: str, owner: str) -> dict[str, Any]:
    """How big the container's volume is: its files' length and what they take on disk.

    What a move tells the target before it stops or sends anything (import --allocated), so
    one that cannot fit is refused with nothing changed. Counted as the owner, in the time and
    number of entries allowed; a volume that cannot be counted so (or is not there) is `null`
    for both. Only a hint either way: the target bounds the stream itself as it comes.
    """
    container = target(rt, name, owner)
    budget = Budget.of(SIZE_SECONDS, f"the {SIZE_SECONDS} s to measure the volume")
    try:
        tree = open_volume(rt.podman(owner), container.volume, budget)
        if tree is not None:
            with tree:
                apparent, allocated = tree.call(_measure)
            return {"name": name, "apparent": apparent, "allocated": allocated}
    except Unreadable:
        pass
    return {"name": name, "apparent": None, "allocated": None}


def _measure(root: int) -> tuple[int, int]:
    """The length of the files below root, and the bytes everything there takes on disk."""
    apparent = allocated = entries = 0
    stack: list[tuple[str, ...]] = [()]
    while stack:
        here = stack.pop()
        fd = open_below(root, here) if here else os.dup(root)
        try:
            with os.scandir(fd) as listing:
                for entry in listing:
                    entries += 1
                    if entries > SIZE_ENTRIES:
                        raise Unreadable(f"more than {SIZE_ENTRIES} entries to count")
                    info = entry.stat(follow_symlinks=False)
                    allocated += write.allocated(info)
                    if stat.S_ISREG(info.st_mode):
                        apparent += info.st_size
                    elif stat.S_ISDIR(info.st_mode):
                        stack.append((*here, entry.name))
        finally:
            os.close(fd)
    return apparent, allocated


def import_volume(
    rt: Runtime,
    name: str,
    owner: str,
    source: BinaryIO,
    *,
    allocated: int | None = None,
    apparent: int | None = None,
    check: bool = False,
) -> dict[str, Any]:
    """Fill a fresh volume of the container from the tar stream on stdin.

    The stream is held in this host's snapshot store first (lifecycle/snapshots.py `stage`):
    it counts against the owner's and the host's snapshot quotas, the size the source said it
    takes on disk (`allocated`) is checked before anything is read or written, and every piece
    of it again as it comes; its holes stay holes there and on the volume. Only a stream that
    fit and was read back whole touches the volume. With `check`, only the quota is asked.

    A volume left by an earlier, interrupted import (the container is not declared here) is
    removed first, so a rerun starts clean; a container declared here keeps its volume.
    """
    container = target(rt, name, owner)
    _refuse_running(rt, container, "import")
    podman = rt.podman(owner)
    if podman.volume_exists(container.volume) and name in _declared_here(rt):
        raise UsageError(
            f"{name} is declared on this host and has its volume {container.volume}: "
            "import refused, nothing was replaced",
            hint=f"move it elsewhere first, or destroy it (devbox-ctl destroy {name})",
        )
    host = rt.config.host_name
    said = f"{snapshot_quota.size(apparent)} long, " if apparent is not None else ""
    subject = f"the volume {container.volume} of {name} ({said}moving to {host})"
    hint = (
        f"make room in {owner}'s snapshots on {host} (devbox-ctl snapshots --prune ID there), "
        f"move {name} to another host, or ask an admin to raise the limit in users.nix"
    )
    if check:
        snapshot_quota.room(
            rt, owner, name, snapshots.every(rt), need=allocated or 0, subject=subject, hint=hint
        )
        return {"name": name, "fits": True}
    # A source whose export failed sends nothing: that must never become an empty volume
    # that reports success (the control host would then purge the only copy).
    head = _read_up_to(source, TAR_BLOCK)
    if len(head) < TAR_BLOCK:
        raise UsageError(
            f"standard input held {len(head)} bytes, not a volume's tar stream: "
            "nothing was imported",
            hint="check the export on the source host (devbox-ctl fleet-host export)",
        )

    def feed(put: Callable[[bytes], None]) -> None:
        put(head)
        while chunk := source.read(COPY_CHUNK):
            put(chunk)

    def exceeded(room: snapshot_quota.Room, stored: int) -> UsageError:
        limit = room.bound
        return UsageError(
            f"{subject} takes more than the {snapshot_quota.size(limit.left)} left of "
            f"{limit.whose} snapshot space on {host} ({limit.shown}, containers.{limit.field}; "
            f"it had reached {snapshot_quota.size(stored)} when it was stopped): nothing was "
            "imported",
            hint=hint,
        )

    with snapshots.stage(
        rt, owner, name, feed, exceeded, need=allocated or 0, subject=subject, hint=hint
    ) as staged:
        if podman.volume_exists(container.volume):  # an interrupted import's, not declared here
            podman.remove_container(name)
            podman.remove_volume(container.volume)
        try:
            snapshots.fill_volume(rt, staged.path, container)
        except BaseException:
            # Nothing half-made stays: the source still has the data, a rerun imports again.
            podman.remove_volume(container.volume)
            raise
    rt.event("fleet-import", name, owner=owner, host=host, stored=staged.stored)
    return {"name": name, "volume": container.volume, "imported": True}


def _read_up_to(source: BinaryIO, size: int) -> bytes:
    """Up to size bytes of a stream (a pipe gives them in pieces); fewer only at its end."""
    pieces: list[bytes] = []
    left = size
    while left:
        piece = source.read(left)
        if not piece:
            break
        pieces.append(piece)
        left -= len(piece)
    return b"".join(pieces)


def purge(
    rt: Runtime,
    name: str,
    owner: str,
    *,
    snapshot: bool,
    keep_volume: bool,
    created: str | None = None,
) -> dict[str, Any]:
    """Remove the container's key and (after a snapshot, as destroy takes it) its volume.

    Refused while this host's deployment declares it running, or declares another container
    of that name (`created`). Those are checked under this host's lock, right before the
    removal. Nothing left to remove is success: a rerun after an interruption finishes it.
    """
    with write.locked(write.ensure_directory(rt.config.state_dir / HOST_LOCK, mode=0o700)):
        return _purge(rt, name, owner, snapshot=snapshot, keep_volume=keep_volume, created=created)


def _purge(
    rt: Runtime, name: str, owner: str, *, snapshot: bool, keep_volume: bool, created: str | None
) -> dict[str, Any]:
    container = target(rt, name, owner, created)
    _refuse_running(rt, container, "purge")
    podman = rt.podman(owner)
    has_volume = podman.volume_exists(container.volume)
    keep_snapshot = snapshot and not keep_volume and has_volume
    if keep_snapshot:
        snapshots.check_room(rt, container)
    operations.halt(container)  # a stop that failed stops the purge: nothing is removed
    podman.remove_container(name)
    taken = str(snapshots.take(rt, container)) if keep_snapshot else None
    podman.remove_secret(container.secret)
    removed = has_volume and not keep_volume
    if removed:
        podman.remove_volume(container.volume)
    said: list[str] = []
    operations.remove_nix_roots(container, podman.uid, said.append, volume_kept=keep_volume)
    rt.event(
        "fleet-purge",
        name,
        owner=owner,
        host=rt.config.host_name,
        snapshot=taken,
        keptVolume=container.volume if keep_volume and has_volume else None,
    )
    return {"name": name, "snapshot": taken, "volumeRemoved": removed, "nixRoots": said}


def volume(rt: Runtime, name: str, owner: str) -> dict[str, Any]:
    """Whether the container's volume exists here."""
    container = target(rt, name, owner)
    return {"exists": rt.podman(owner).volume_exists(container.volume)}


def relogin(rt: Runtime, name: str, owner: str, *, timeout: float) -> dict[str, Any]:
    """Log NAME out of the tailnet and restart it, to join with the key just set (rotate-key).

    The second half of `rotate-key` (runtime/operations.py), which the control host runs here
    after `set-key` gave the container a fresh key; the key is neutralised once it joined.
    """
    container = target(rt, name, owner)
    here = _declared_here(rt).get(name)
    if here is None or not here.running:
        raise UsageError(f"{name} is not declared running on this host: nothing to re-enroll")
    podman = rt.podman(owner)
    if podman.status_of(podman.inspect_container(name)) == "running":
        podman.exec(name, "tailscale", "logout")
    result = systemd.act(owner, "restart", [container.service])
    if not result.ok:
        raise ToolError(f"{container.service} did not restart: {result.stderr.strip()}")
    node = operations.wait_until_joined(rt, container, timeout, lambda _line: None)
    operations.neutralise_key(rt, container)
    return {"joined": True, "dnsName": node.dns_name}


# restore in a fleet: the snapshot is here, where its container was destroyed. The control
# host chooses it from every host's list, declares the restored container on this host and
# deploys; the checks and the filling are this host's own restore's (runtime/restore.py).


def snapshots_here(rt: Runtime, name: str | None) -> list[dict[str, Any]]:
    """The snapshots held here (of container NAME), as `restore --list` describes them."""
    return restore.restorable(rt, name)


def _snapshot(rt: Runtime, name: str, owner: str, snapshot_id: str) -> snapshots.Snapshot:
    """Snapshot ID of container NAME, held here, and OWNER's: the control host's word checked."""
    snapshot = snapshots.choose(rt, name, snapshot_id)
    if snapshot.owner != owner:
        raise UsageError(
            f"snapshot {snapshot.id} belongs to {snapshot.owner}, not {owner}: nothing was restored"
        )
    return snapshot


def restore_here(
    rt: Runtime,
    name: str,
    owner: str,
    snapshot_id: str,
    *,
    as_name: str,
    created: str | None,
    check: bool = False,
    replace: bool = False,
) -> dict[str, Any]:
    """Fill AS_NAME's new volume from snapshot ID of NAME, as this host's restore does.

    `check`: only what restore checks before it declares anything (the volume name is free,
    the data is what was exported); nothing changes. Otherwise, under this host's lock and
    right before acting: the container AS_NAME here is the control host's (owner, `created`)
    and not declared running, the same checks again, then the filling. `replace`: the control
    host resumes its own interrupted restore, so a volume of AS_NAME while AS_NAME is not
    declared here is that restore's leftover, removed first (a volume of a container declared
    here is never replaced). A filling that fails leaves no volume behind.
    """
    snapshot = _snapshot(rt, name, owner, snapshot_id)
    if check:
        target(rt, as_name, owner)
        restore.prepare(rt, snapshot, as_name)
        return {"snapshot": snapshot.id, "name": as_name, "restorable": True}
    with write.locked(write.ensure_directory(rt.config.state_dir / HOST_LOCK, mode=0o700)):
        container = target(rt, as_name, owner, created)
        _refuse_running(rt, container, "restore")
        podman = rt.podman(owner)
        if replace and as_name not in _declared_here(rt) and podman.volume_exists(container.volume):
            podman.remove_container(as_name)
            podman.remove_volume(container.volume)
        snapshot = _snapshot(rt, name, owner, snapshot_id)
        restore.prepare(rt, snapshot, as_name)
        try:
            restore.fill(rt, snapshot, container)
        except BaseException:
            podman.remove_volume(container.volume)
            raise
    rt.event(
        "fleet-restore",
        as_name,
        owner=owner,
        host=rt.config.host_name,
        snapshot=snapshot.id,
        fromContainer=snapshot.container,
    )
    return {"name": as_name, "volume": container.volume, "snapshot": snapshot.id}
