"""Limits hold across a fleet: every create that the fleet's create lets through validates.

`create` in a fleet checks the per-user and global limits and places the container
(runtime/operations.py `check_limits`, runtime/fleet.py `choose_host`), inside the locked edit; validation
(declare/validate.py) is the backstop that refuses any declaration over a limit or a host's
capacity. For any fleet and any sequence of creates: what create accepts, validation accepts
too; what it refuses, it refuses for a reason that an independent count confirms.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from devbox import rules
from devbox.declare import edit, pipeline, placement, validate
from devbox.declare.resolve import Desired
from devbox.errors import UsageError
from devbox.runtime import fleet, operations

FILES = validate.Files()
CREATED = datetime(2026, 11, 28, tzinfo=UTC)
MEMORY = ["1G", "2G", "4G", "8G"]


@dataclass
class Declared:
    """What `check_limits` reads of a runtime: the declaration."""

    desired: Desired


host_strategy = st.fixed_dictionaries(
    {
        "cpus": st.sampled_from([1, 2, 4, 8]),
        "memory": st.sampled_from(["4G", "8G", "16G"]),
        "containers": st.integers(0, 4),
        "labels": st.sampled_from([[], ["gpu"]]),
    }
)
request_strategy = st.tuples(
    st.integers(0, 2),  # owner
    st.sampled_from([0.5, 1, 2, 4]),  # cpu
    st.sampled_from(MEMORY),
    st.sampled_from([(), ("gpu",)]),
)


def users_nix(hosts: list[dict[str, Any]], per_user: int, global_: int) -> dict[str, Any]:
    return {
        "users": {f"user{i}": {"uid": 1001 + i} for i in range(3)},
        "containers": {"maxPerUser": per_user, "maxGlobal": global_},
        "hosts": {
            f"h{i}": {
                "reach": f"root@h{i}",
                "capacity": {k: h[k] for k in ("cpus", "memory", "containers")},
                "labels": h["labels"],
            }
            for i, h in enumerate(hosts)
        },
    }


def fits_somewhere(desired: Desired, records: list[dict[str, Any]], request: tuple) -> bool:
    """Whether any host has room and the labels, counted from the records alone."""
    _, cpu, memory, labels = request
    for name, host in desired.hosts.items():
        mine = [r for r in records if r["host"] == name]
        used_cpu = sum(r.get("cpu", 2) for r in mine)
        used_memory = sum(rules.memory_bytes(r.get("memory", "4G")) or 0 for r in mine)
        if (
            set(labels) <= set(host.labels)
            and len(mine) < host.capacity.containers
            and used_cpu + cpu <= host.capacity.cpus + 1e-9
            and used_memory + (rules.memory_bytes(memory) or 0) <= host.capacity.memory_bytes
        ):
            return True
    return False


@settings(max_examples=150, deadline=None)
@given(
    hosts=st.lists(host_strategy, min_size=1, max_size=4),
    per_user=st.integers(1, 4),
    extra_global=st.integers(0, 4),
    requests=st.lists(request_strategy, max_size=14),
)
def test_what_a_fleet_create_accepts_validates_and_what_it_refuses_is_full(
    hosts: list[dict[str, Any]],
    per_user: int,
    extra_global: int,
    requests: list[tuple[int, float, str, tuple[str, ...]]],
) -> None:
    raw_users = users_nix(hosts, per_user, per_user + extra_global)
    desired = pipeline.validated(raw_users, {"version": 1, "containers": []}, FILES)
    records: list[dict[str, Any]] = []
    for index, request in enumerate(requests):
        owner_index, cpu, memory, labels = request
        owner = f"user{owner_index}"
        owned = sum(1 for r in records if r["owner"] == owner)
        try:
            operations.check_limits(Declared(desired), records, owner)  # type: ignore[arg-type]
            need = placement.Need(float(cpu), rules.memory_bytes(memory) or 0, frozenset(labels))
            host = fleet.choose_host(desired, records, need, name=f"box-{index}")
        except UsageError:
            at_limit = owned >= per_user or len(records) >= desired.policy.max_global
            assert at_limit or not fits_somewhere(desired, records, request)
            continue
        assert owned < per_user
        assert len(records) < desired.policy.max_global
        records.append(
            edit.new_record(
                f"box-{index}",
                owner,
                cpu=cpu,
                memory=memory,
                state="running",
                created=CREATED,
                host=host,
                labels=labels,
            )
        )
        # The backstop agrees: the declaration as create would write it is valid.
        pipeline.validated(raw_users, {"version": 1, "containers": records}, FILES)
