"""The desired state: validated records with every default resolved, in a stable order.

This is the model that rendering, the manifest and `plan` all work from. Its JSON form
(`Container.manifest_entry`) is what manifest.json records per container, so `plan` can compare
what a rebuild would deploy with what the committed generated tree deploys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from devbox import clock, rules
from devbox.declare.models import ContainerRecord, Host, Pin, Policy, User

ACCESS_TAG = "tag:devcontainer"
# Unit files carry this prefix, so a user's own Quadlet file in ~/.config/containers/systemd
# (which Quadlet prefers over /etc) does not take a devbox unit's place by accident.
UNIT_PREFIX = "devbox-"


def owner_tag(owner: str) -> str:
    """The Tailscale tag that gives a user access to their containers."""
    return f"tag:{owner}-container"


def pin_json(pin: Pin | None) -> dict[str, str] | None:
    """A pin as containers.json, the manifest, events and --json write it."""
    return None if pin is None else {"until": clock.day(pin.until), "reason": pin.reason}


@dataclass(frozen=True)
class Container:
    """One container, fully resolved."""

    name: str
    owner: str
    uid: int
    cpu: int | float
    memory: str
    syncthing: bool
    state: str
    image: str
    created: datetime | None = None
    stopped_at: datetime | None = None
    pin: Pin | None = None
    host: str | None = None  # the fleet host it runs on; None on a single host
    labels: tuple[str, ...] = ()  # the host labels it needs
    nix_daemon: bool = True  # the host's store, daemon socket and GC roots are mounted

    @property
    def running(self) -> bool:
        """Whether the container is declared running (started at boot)."""
        return self.state == "running"

    @property
    def tags(self) -> tuple[str, str]:
        """The Tailscale tags the container advertises."""
        return (ACCESS_TAG, owner_tag(self.owner))

    @property
    def volume(self) -> str:
        """The podman volume that holds /home/dev."""
        return f"{self.name}-data"

    @property
    def secret(self) -> str:
        """The podman secret that holds the Tailscale auth key (never its value here)."""
        return f"devbox-{self.name}-ts-authkey"

    @property
    def service(self) -> str:
        """The systemd user service Quadlet makes of the container unit."""
        return f"container-{self.name}.service"

    @property
    def volume_unit(self) -> str:
        """The Quadlet volume file's name; the container unit refers to it."""
        return f"{UNIT_PREFIX}{self.volume}.volume"

    @property
    def container_file(self) -> str:
        """Path of the Quadlet container unit in the generated tree."""
        return f"users/{self.uid}/{UNIT_PREFIX}{self.name}.container"

    @property
    def volume_file(self) -> str:
        """Path of the Quadlet volume unit in the generated tree."""
        return f"users/{self.uid}/{self.volume_unit}"

    @property
    def memory_bytes(self) -> int:
        """The memory limit in bytes."""
        return rules.memory_bytes(self.memory) or 0

    def manifest_entry(self) -> dict[str, Any]:
        """The resolved settings, as manifest.json records them (a fleet's: with the host)."""
        fleet = {} if self.host is None else {"host": self.host, "labels": list(self.labels)}
        return fleet | {
            "name": self.name,
            "owner": self.owner,
            "uid": self.uid,
            "cpu": self.cpu,
            "memory": self.memory,
            "memoryBytes": self.memory_bytes,
            "syncthing": self.syncthing,
            "state": self.state,
            "image": self.image,
            "hostname": self.name,
            "tags": list(self.tags),
            "service": self.service,
            "volume": self.volume,
            "secret": self.secret,
            "units": [self.container_file, self.volume_file],
            "created": clock.timestamp(self.created),
            "stoppedAt": clock.timestamp(self.stopped_at),
            "pin": pin_json(self.pin),
        }


@dataclass(frozen=True)
class Desired:
    """Everything the generator writes is a function of this."""

    users: dict[str, User]
    policy: Policy
    containers: tuple[Container, ...]
    hosts: dict[str, Host] = field(default_factory=dict)  # a fleet's; empty on a single host

    @property
    def fleet(self) -> bool:
        """Whether users.nix declares hosts: the declaration is sliced per host."""
        return bool(self.hosts)

    def by_name(self) -> dict[str, Container]:
        """The containers keyed by name."""
        return {c.name: c for c in self.containers}

    def by_host(self) -> dict[str, tuple[Container, ...]]:
        """Each declared host's containers, sorted out in one pass (a fleet's)."""
        on: dict[str, list[Container]] = {host: [] for host in self.hosts}
        for container in self.containers:
            on.setdefault(str(container.host), []).append(container)
        return {host: tuple(containers) for host, containers in on.items()}

    def on(self, host: str, mine: tuple[Container, ...] | None = None) -> Desired:
        """One host's slice: its containers (`mine`, when already sorted out), every user."""
        if mine is None:
            mine = tuple(c for c in self.containers if c.host == host)
        return Desired(users=self.users, policy=self.policy, containers=mine, hosts=self.hosts)


def normalize_memory(value: str) -> str:
    """One spelling per size: upper-case unit, no byte suffix ("512m" → "512M")."""
    unit = value[-1:].upper() if value[-1:].isalpha() else ""
    number = value[:-1] if unit else value
    return number if unit == "B" else number + unit


def _whole(value: float) -> int | float:
    """2.0 and 2 are the same CPU count: keep one form, so plans and manifests agree."""
    return int(value) if float(value).is_integer() else value


def resolve(
    users: dict[str, User],
    policy: Policy,
    records: list[ContainerRecord],
    hosts: dict[str, Host] | None = None,
) -> Desired:
    """Apply the users.nix defaults to validated records, ordered by name."""
    containers = tuple(
        Container(
            name=record.name,
            owner=record.owner,
            uid=users[record.owner].uid,
            cpu=_whole(policy.default_cpu if record.cpu is None else record.cpu),
            memory=normalize_memory(record.memory or policy.default_memory),
            syncthing=record.syncthing,
            state=record.state,
            image=policy.image,
            created=record.created,
            stopped_at=record.stopped_at,
            pin=record.pin,
            host=record.host,
            labels=tuple(record.labels),
            nix_daemon=policy.nix_daemon,
        )
        for record in sorted(records, key=lambda r: r.name)
    )
    return Desired(
        users=dict(sorted(users.items())),
        policy=policy,
        containers=containers,
        hosts=dict(sorted((hosts or {}).items())),
    )
