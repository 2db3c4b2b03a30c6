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
import shutil
import threading
from typing import IO, Any, BinaryIO

from devbox import clock, rules, write
from devbox.declare.resolve import Container
from devbox.errors import ToolError, UsageError
from devbox.escaping import shown
from devbox.host import deployed, hostconfig
from devbox.host.context import Runtime
from devbox.lifecycle import snapshots
from devbox.runtime import operations
from devbox.tools import onepassword, systemd
from devbox.tools.podman import Podman

# A Tailscale auth key is about 60 characters; what comes on stdin is read no further.
MAX_KEY_BYTES = 4096
# A tar stream is whole 512-byte blocks: a shorter one is not a volume's export.
TAR_BLOCK = 512
COPY_CHUNK = 1 << 20
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


def export(rt: Runtime, name: str, owner: str, into: IO[bytes]) -> None:
    """Write the container's volume, as a tar stream, to into (stdout)."""
    container = target(rt, name, owner)
    podman = rt.podman(owner)
    if podman.status_of(podman.inspect_container(name)) == "running":
        raise UsageError(
            f"{name} is running on this host: its volume would be copied mid-change",
            hint=f"stop it first (devbox-ctl stop {name} on the control host)",
        )
    if not podman.volume_exists(container.volume):
        raise UsageError(f"{name} has no volume {container.volume} on this host")

    def send(chunk: bytes) -> None:
        into.write(chunk)

    podman.export_volume(container.volume, send)
    into.flush()


def import_volume(rt: Runtime, name: str, owner: str, source: BinaryIO) -> dict[str, Any]:
    """Fill a fresh volume of the container from the tar stream on stdin.

    A volume left by an earlier, interrupted import (the container is not declared here) is
    removed first, so a rerun starts clean; a container declared here keeps its volume.
    """
    container = target(rt, name, owner)
    _refuse_running(rt, container, "import")
    # A source whose export failed sends nothing: that must never become an empty volume
    # that reports success (the control host would then purge the only copy).
    head = _read_up_to(source, TAR_BLOCK)
    if len(head) < TAR_BLOCK:
        raise UsageError(
            f"standard input held {len(head)} bytes, not a volume's tar stream: "
            "nothing was imported",
            hint="check the export on the source host (devbox-ctl fleet-host export)",
        )
    podman = rt.podman(owner)
    if podman.volume_exists(container.volume):
        if name in _declared_here(rt):
            raise UsageError(
                f"{name} is declared on this host and has its volume {container.volume}: "
                "import refused, nothing was replaced",
                hint=f"move it elsewhere first, or destroy it (devbox-ctl destroy {name})",
            )
        podman.remove_container(name)
        podman.remove_volume(container.volume)
    podman.create_volume(
        container.volume,
        {"devbox.managed": "true", "devbox.container": name, "devbox.owner": owner},
    )
    _import_with_head(podman, container.volume, head, source)
    rt.event("fleet-import", name, owner=owner, host=rt.config.host_name)
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


def _import_with_head(podman: Podman, volume: str, head: bytes, rest: BinaryIO) -> None:
    """Import head, then the rest of the stream, into the volume (through a pipe)."""
    read_end, write_end = os.pipe()
    failure: list[BaseException] = []

    def feed() -> None:
        try:
            with os.fdopen(write_end, "wb") as into:
                into.write(head)
                shutil.copyfileobj(rest, into, COPY_CHUNK)
        except BaseException as exc:  # noqa: BLE001 - reported below, after podman ended
            failure.append(exc)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    with os.fdopen(read_end, "rb") as stream:
        podman.import_volume(volume, stream)
    feeder.join()
    if failure and not isinstance(failure[0], BrokenPipeError):
        raise ToolError(f"reading the volume's stream failed: {failure[0]}")


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
    systemd.act(owner, "stop", [container.service])
    podman.remove_container(name)
    taken = str(snapshots.take(rt, container)) if keep_snapshot else None
    podman.remove_secret(container.secret)
    removed = has_volume and not keep_volume
    if removed:
        podman.remove_volume(container.volume)
    rt.event(
        "fleet-purge",
        name,
        owner=owner,
        host=rt.config.host_name,
        snapshot=taken,
        keptVolume=container.volume if keep_volume and has_volume else None,
    )
    return {"name": name, "snapshot": taken, "volumeRemoved": removed}


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
