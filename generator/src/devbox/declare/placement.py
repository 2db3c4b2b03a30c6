"""Placement: which host of a fleet takes a new container, and where a drained host's go.

Pure: the declared hosts and what is already placed on them come in, a host name (or the
reasons none fits) goes out; nothing is read or run. `create` calls `place` inside its locked
edit of containers.json, `drain` calls `drain_plan` (docs/fleet.md).

The rule (docs/fleet.md, `create`): a host fits when it carries every label the container
needs and its declared CPUs, memory and container slots still hold the container next to
everything already placed there. Among the hosts that fit, the one with the most free capacity
after placing wins; a host's score is the smallest of its free fractions of CPUs, memory and
slots, so the dimension closest to full decides. Ties go to more free slots, then to the name
that sorts first. The same hosts and containers give the same answer in any order.

CPUs are counted in whole milli-CPUs (a container's CPU count has at most two decimals, so the
conversion is exact): a sum such as 0.1 + 0.2 never refuses a fit that 0.3 would take. A host's
count with more decimals is rounded down, a container's up, so a fit is never over capacity.
Placing many containers one after the other goes through `Occupancy`, which keeps running
totals per host so each placement costs one pass over the hosts (bench/bench_fleet.py).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

MILLI = 1000
# Below any real difference of milli-CPUs, above a float's error in cpus * 1000 (0.57 * 1000 is
# 569.9999999999999).
_SLACK = 1e-6
# A message names this many hosts with their reasons; `NoRoom.reasons` holds them all.
MESSAGE_HOSTS = 10
_MEMORY_UNITS = (("T", 1024**4), ("G", 1024**3), ("M", 1024**2), ("K", 1024))


@dataclass(frozen=True)
class HostSpace:
    """A declared host as placement sees it: its capacity and its labels."""

    name: str
    cpus: float
    memory_bytes: int
    containers: int
    labels: frozenset[str]


@dataclass(frozen=True)
class Need:
    """What a container asks of its host."""

    cpu: float
    memory_bytes: int
    labels: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Placed:
    """A container already on a host, by what it takes from that host."""

    host: str
    cpu: float
    memory_bytes: int


class NoRoom(Exception):  # noqa: N818 (the name the fleet verbs code against)
    """No host takes the container: `reasons` says, per host, why it does not fit."""

    def __init__(
        self,
        reasons: dict[str, str],
        *,
        need: Need | None = None,
        forced: str | None = None,
        container: str | None = None,
        fixes: Sequence[str] = (),
    ) -> None:
        self.reasons = dict(sorted(reasons.items()))
        self.need = need
        self.forced = forced
        self.container = container
        self.fixes = tuple(fixes)
        super().__init__(self.message())

    def message(self) -> str:
        """One sentence: what could not be placed, each host's reason, and what to do."""
        what = f"container {self.container}" if self.container else "a container"
        if self.need is not None:
            what += f" needing {describe_need(self.need)}"
        if self.forced is not None:
            reason = self.reasons.get(self.forced, "")
            # "is not a declared host" and "is excluded" follow the name; a shortfall the need.
            sentence = (
                f"host {self.forced} {reason}"
                if reason.startswith("is ")
                else f"host {self.forced} cannot take {what}: {reason}"
            )
        elif self.reasons:
            shown = list(self.reasons.items())[:MESSAGE_HOSTS]
            why = "; ".join(f"{name}: {reason}" for name, reason in shown)
            if len(self.reasons) > MESSAGE_HOSTS:
                why += f"; {len(self.reasons) - MESSAGE_HOSTS} more hosts do not fit either"
            sentence = f"no host can take {what} ({why})"
        else:
            sentence = f"no host can take {what}: no host is declared"
        return f"{sentence}; {', or '.join(self.fixes)}" if self.fixes else sentence


class Occupancy:
    """The declared hosts with running totals of what is placed on each.

    Built once from the containers already placed, it places any number of new ones one after
    the other (`choose`, then `add`), each in one pass over the hosts. A placed container whose
    host is not declared takes room nowhere.
    """

    def __init__(self, hosts: Sequence[HostSpace], placed: Iterable[Placed] = ()) -> None:
        ordered = sorted(hosts, key=lambda h: h.name)
        names = [h.name for h in ordered]
        duplicates = sorted({n for a, n in itertools.pairwise(names) if a == n})
        if duplicates:
            raise ValueError(f"hosts declared twice: {', '.join(duplicates)}")
        self._hosts = ordered
        self._index = {name: i for i, name in enumerate(names)}
        self._cpu_cap = [_milli_down(h.cpus) for h in ordered]
        self._memory_cap = [h.memory_bytes for h in ordered]
        self._slot_cap = [h.containers for h in ordered]
        # What is left on each host (capacity minus what is placed), kept as containers come.
        self._cpu_free = list(self._cpu_cap)
        self._memory_free = list(self._memory_cap)
        self._slots_free = list(self._slot_cap)
        # The denominators of the free fractions (a capacity of 0 leaves 0 free: 0/1).
        self._denominators = [
            (max(c, 1), max(m, 1), max(s, 1))
            for c, m, s in zip(self._cpu_cap, self._memory_cap, self._slot_cap, strict=True)
        ]
        for each in placed:
            self.add(each)

    def add(self, placed: Placed) -> None:
        """Count a container on its host (on no host if that host is not declared)."""
        i = self._index.get(placed.host)
        if i is None:
            return
        self._cpu_free[i] -= _milli(placed.cpu)
        self._memory_free[i] -= placed.memory_bytes
        self._slots_free[i] -= 1

    def choose(
        self,
        need: Need,
        *,
        host: str | None = None,
        exclude: frozenset[str] = frozenset(),
        container: str | None = None,
    ) -> str:
        """The host for `need` by the placement rule (or the forced `host` if it fits).

        Raises NoRoom naming every host (or only the forced one) with its reason.
        """
        if host is not None:
            return self._forced(need, host, exclude, container)
        cpu = _milli(need.cpu)
        memory = need.memory_bytes
        hosts = self._hosts
        restricted = bool(exclude or need.labels)
        best = -1
        best_num, best_den, best_slots = 0, 1, 0
        # One pass, the cheap arithmetic first: this loop is the cost of placing (bench_fleet).
        for i, (cpu_free, memory_free, slots_free, (cpu_den, memory_den, slot_den)) in enumerate(
            zip(
                self._cpu_free, self._memory_free, self._slots_free, self._denominators, strict=True
            )
        ):
            cpu_left = cpu_free - cpu
            memory_left = memory_free - memory
            slots_left = slots_free - 1
            if cpu_left < 0 or memory_left < 0 or slots_left < 0:
                continue
            if restricted and (hosts[i].name in exclude or not need.labels <= hosts[i].labels):
                continue
            # The score is a fraction num/den, compared exactly (a/b < c/d as a*d < c*b):
            # floats would call two different fractions of large byte counts a tie.
            num, den = cpu_left, cpu_den
            if memory_left * den < num * memory_den:
                num, den = memory_left, memory_den
            if slots_left * den < num * slot_den:
                num, den = slots_left, slot_den
            # Hosts go by name, so on a full tie the first one seen (the smaller name) stays.
            ours, theirs = num * best_den, best_num * den
            if best < 0 or ours > theirs or (ours == theirs and slots_left > best_slots):
                best, best_num, best_den, best_slots = i, num, den, slots_left
        if best >= 0:
            return hosts[best].name
        reasons = {h.name: self._reason(i, need, exclude) for i, h in enumerate(hosts)}
        raise NoRoom(reasons, need=need, container=container, fixes=_fixes(reasons, exclude))

    def _forced(self, need: Need, host: str, exclude: frozenset[str], container: str | None) -> str:
        i = self._index.get(host)
        if i is None:
            reasons = {host: "is not a declared host"}
            fixes = [
                f"choose one of {', '.join(self._index)}"
                if self._index
                else "declare hosts in users.nix"
            ]
        else:
            reason = self._reason(i, need, exclude)
            if not reason:
                return host
            reasons = {host: reason}
            fixes = [] if host in exclude else _fixes(reasons, exclude)
            fixes.append("choose another host")
        raise NoRoom(reasons, need=need, forced=host, container=container, fixes=fixes)

    def _reason(self, i: int, need: Need, exclude: frozenset[str]) -> str:
        """Why host i does not take `need` ("" when it does)."""
        host = self._hosts[i]
        if host.name in exclude:
            return "is excluded"
        parts = []
        missing = sorted(need.labels - host.labels)
        if missing:
            label = "label" if len(missing) == 1 else "labels"
            parts.append(f"lacks {label} {', '.join(missing)}")
        cpu_free = self._cpu_free[i]
        if cpu_free < _milli(need.cpu):
            unit = "CPU" if self._cpu_cap[i] == MILLI else "CPUs"
            parts.append(f"{_cpus(max(cpu_free, 0))} of {_cpus(self._cpu_cap[i])} {unit} free")
        memory_free = self._memory_free[i]
        if memory_free < need.memory_bytes:
            parts.append(
                f"{_size(max(memory_free, 0))} of {_size(self._memory_cap[i])} memory free"
            )
        if self._slots_free[i] < 1:
            used = self._slot_cap[i] - self._slots_free[i]
            parts.append(f"no container slot free ({used} of {self._slot_cap[i]} used)")
        return ", ".join(parts)


def place(
    hosts: Sequence[HostSpace],
    placed: Iterable[Placed],
    need: Need,
    *,
    host: str | None = None,
    exclude: frozenset[str] = frozenset(),
) -> str:
    """The host a new container goes to (see the module's rule), or NoRoom.

    `host` forces that host, still refused (with its reason) when it does not fit; hosts in
    `exclude` are never chosen.
    """
    return Occupancy(hosts, placed).choose(need, host=host, exclude=exclude)


def drain_plan(
    hosts: Sequence[HostSpace],
    containers: Sequence[tuple[str, Placed, Need]],
    source: str,
) -> list[tuple[str, str]]:
    """Where each container of `source` goes when the host is drained: (name, target) pairs.

    `containers` is every declared container as (name, where it is, what it needs). Those on
    `source` are placed one after the other, `source` excluded, each counted on its target
    before the next is placed: the largest first (by CPUs, then memory), equal ones by name,
    so the plan is the same for the same declaration. The first container that fits nowhere
    raises NoRoom naming it, with every host's reason; nothing is planned then.
    """
    staying = (where for _, where, _ in containers if where.host != source)
    occupancy = Occupancy(hosts, staying)
    leaving = sorted(
        ((name, need) for name, where, need in containers if where.host == source),
        key=lambda item: (-_milli(item[1].cpu), -item[1].memory_bytes, item[0]),
    )
    moves = []
    for name, need in leaving:
        target = occupancy.choose(need, exclude=frozenset({source}), container=name)
        occupancy.add(Placed(target, need.cpu, need.memory_bytes))
        moves.append((name, target))
    return moves


def describe_need(need: Need) -> str:
    """A need as a person reads it: "2 CPUs, 4G of memory and label gpu"."""
    cpu = _milli(need.cpu)
    parts = [
        f"{_cpus(cpu)} {'CPU' if cpu == MILLI else 'CPUs'}",
        f"{_size(need.memory_bytes)} of memory",
    ]
    if need.labels:
        label = "label" if len(need.labels) == 1 else "labels"
        parts.append(f"{label} {', '.join(sorted(need.labels))}")
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def _fixes(reasons: dict[str, str], exclude: frozenset[str]) -> list[str]:
    """What a person can do about these reasons, most likely first."""
    texts = reasons.values()
    fixes = []
    if any(" free" in text for text in texts):
        fixes.append(
            "free room by destroying or moving a container, or raise the capacity in users.nix"
        )
    if any(text.startswith("lacks ") for text in texts):
        fixes.append("add the label to a host in users.nix")
    if not reasons:
        fixes.append("declare hosts in users.nix")
    elif all(name in exclude for name in reasons):
        fixes.append("declare another host in users.nix")
    return fixes


def _milli(cpus: float) -> int:
    """What a container takes, in milli-CPUs: exact for up to three decimals, else more."""
    return math.ceil(cpus * MILLI - _SLACK)


def _milli_down(cpus: float) -> int:
    """What a host offers, in milli-CPUs: exact for up to three decimals, else less."""
    return math.floor(cpus * MILLI + _SLACK)


def _cpus(milli: int) -> str:
    whole, part = divmod(milli, MILLI)
    return str(whole) if not part else f"{whole}.{part:03d}".rstrip("0")


def _size(size: int) -> str:
    """Bytes as a podman size, rounded down to two decimals ("1.5G", "512M")."""
    for suffix, unit in _MEMORY_UNITS:
        if size >= unit:
            hundredths = size * 100 // unit
            whole, part = divmod(hundredths, 100)
            return (f"{whole}.{part:02d}".rstrip("0").rstrip(".")) + suffix
    return f"{size}B"
