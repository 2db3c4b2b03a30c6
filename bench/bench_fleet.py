"""Benchmark of a fleet: placement, then generate and plan. Prints numbers, asserts nothing.

For 50 and 500 hosts, each with room for 40 containers (192 CPUs, 320G, 40 slots: the slots
run out first; every tenth host has the label gpu), it times, each as the best of a few runs:

- fill:    2,000 and 20,000 containers (0.5 to 4 CPUs, 2G to 7G) placed one by one into the
           empty fleet, as that many creates would choose (declare/placement.py `Occupancy`:
           choose, then count it on its host);
- last:    one `place` into the fleet full but one slot: what `create` does, counting every
           declared container first, then choosing among all hosts;
- refuse:  one `place` into the full fleet: the refusal with a reason for every host;
- drain:   `drain_plan` of one host's containers in a fleet with just enough room elsewhere;

then the time per placement and the ratio of 500 hosts to 50 (ten times the hosts and ten
times the containers: a fill ratio near 100 is one pass over the hosts per placement, a ratio
near 10 for `last` is linear in the declaration).

`plan_timings` times the generator on the same fleets (users.nix with 50 or 500 hosts,
containers.json with every container on the host placement chose): the Nix evaluation, generate
(validate, resolve, render every slice), the first write, and a plan after one container's
memory changed.

Run: .venv/bin/python bench/bench_fleet.py [--sizes 50,500] [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from timing import best

from devbox.declare import generated_tree, load, models, pipeline, render
from devbox.declare import plan as planning
from devbox.declare.placement import HostSpace, Need, NoRoom, Occupancy, Placed, drain_plan, place
from devbox.declare.validate import Files
from devbox.host import fleet as fleet_host_link
from devbox.runtime import fleet as fleet_verbs
from devbox.runtime import fleet_views

G = 1024**3
SLOTS = 40
HOST_CPUS = 192
HOST_MEMORY_G = 320


def fleet(hosts: int) -> list[HostSpace]:
    return [
        HostSpace(
            name=f"host-{i:03d}",
            cpus=HOST_CPUS,
            memory_bytes=HOST_MEMORY_G * G,
            containers=SLOTS,
            labels=frozenset({"gpu"}) if i % 10 == 0 else frozenset(),
        )
        for i in range(hosts)
    ]


def need(i: int) -> Need:
    return Need(cpu=0.5 * (1 + i % 8), memory_bytes=(2 + i % 6) * G)


def fill(hosts: list[HostSpace], count: int) -> list[Placed]:
    """`count` containers placed one by one into the empty fleet."""
    occupancy = Occupancy(hosts)
    placed = []
    for i in range(count):
        wanted = need(i)
        where = Placed(occupancy.choose(wanted), wanted.cpu, wanted.memory_bytes)
        occupancy.add(where)
        placed.append(where)
    return placed


def placement_timings(size: int) -> dict[str, float]:
    hosts = fleet(size)
    total = size * SLOTS
    runs = 3 if size <= 100 else 2
    results = {"containers": float(total), "fill": best(runs, lambda: fill(hosts, total))}
    full = fill(hosts, total)

    results["last"] = best(5, lambda: place(hosts, full[:-1], need(total - 1)))

    def refuse() -> None:
        try:
            place(hosts, full, need(total))
        except NoRoom as refusal:
            refusal.message()

    results["refuse"] = best(5, refuse)
    # Free 40 slots in all, then drain the first host: its containers take exactly those.
    almost = full[: total - SLOTS]
    declared = [(f"box-{i:05d}", p, need(i)) for i, p in enumerate(almost)]
    results["drain"] = best(5, lambda: drain_plan(hosts, declared, "host-000"))
    results["moved"] = float(len(drain_plan(hosts, declared, "host-000")))
    return results


def print_placement(sizes: list[int]) -> None:
    print(
        f"{'hosts':>6} {'containers':>10} {'fill':>8} {'per place':>9} {'ratio':>6} "
        f"{'last':>8} {'ratio':>6} {'refuse':>8} {'drain':>8} {'moved':>5}"
    )
    previous: dict[str, float] | None = None
    for size in sizes:
        r = placement_timings(size)
        fill_ratio = f"{r['fill'] / previous['fill']:6.1f}" if previous else f"{'':>6}"
        last_ratio = f"{r['last'] / previous['last']:6.1f}" if previous else f"{'':>6}"
        previous = r
        print(
            f"{size:>6} {int(r['containers']):>10} {r['fill']:>7.3f}s "
            f"{r['fill'] / r['containers'] * 1e6:>7.0f}µs {fill_ratio} "
            f"{r['last'] * 1000:>6.1f}ms {last_ratio} {r['refuse'] * 1000:>6.1f}ms "
            f"{r['drain'] * 1000:>6.1f}ms {int(r['moved']):>5}"
        )


# --- plan_timings: the generator's half ------------------------------------------------------


def users_nix(hosts: list[HostSpace], users: int, containers: int) -> str:
    lines = ["{", "  users = {"]
    lines += [f"    user{i} = {{ uid = {1000 + i}; }};" for i in range(users)]
    lines += ["  };", "  hosts = {"]
    for h in hosts:
        labels = " ".join(f'"{label}"' for label in sorted(h.labels))
        lines.append(
            f'    {h.name} = {{ reach = "root@{h.name}"; capacity = {{ cpus = {HOST_CPUS}; '
            f'memory = "{HOST_MEMORY_G}G"; containers = {SLOTS}; }}; labels = [ {labels} ]; }};'
        )
    per_user = -(-containers // users)
    lines += [
        "  };",
        f"  containers = {{ maxGlobal = {containers}; maxPerUser = {max(per_user, 5)}; }};",
        "}",
        "",
    ]
    return "\n".join(lines)


def containers_json(placed: list[Placed], users: int) -> dict[str, Any]:
    return {
        "version": 1,
        "containers": [
            {
                "name": f"box-{i:05d}",
                "owner": f"user{i % users}",
                "host": p.host,
                "cpu": int(p.cpu) if p.cpu.is_integer() else p.cpu,
                "memory": f"{p.memory_bytes // G}G",
                "state": "stopped" if i % 7 == 0 else "running",
                "created": "2026-11-20T09:30:00Z",
            }
            for i, p in enumerate(placed)
        ],
    }


def generator_timings(size: int, base: Path) -> dict[str, float]:
    hosts = fleet(size)
    total = size * SLOTS
    users = total // 5
    case = base / f"hosts{size}"
    case.mkdir()
    (case / "users.nix").write_text(users_nix(hosts, users, total))
    records = containers_json(fill(hosts, total), users)
    files = Files()
    runs = 3 if size <= 100 else 2
    users_raw: Any = None

    def evaluate() -> None:
        nonlocal users_raw
        users_raw = load.read_users(load.Source.of(case / "users.nix"))

    results = {"eval": best(runs, evaluate)}

    def generate() -> generated_tree.Contents:
        return render.render(pipeline.validated(users_raw, records, files))

    results["generate"] = best(runs, generate)
    tree = generate()
    attempt = iter(range(runs))

    def first_write() -> None:
        generated_tree.write_tree(case / f"first-{next(attempt)}", tree)

    results["write"] = best(runs, first_write)
    out = case / "generated"
    generated_tree.write_tree(out, tree)
    changed = json.loads(json.dumps(records))
    changed["containers"][total // 2]["memory"] = "3G"

    def plan() -> None:
        state = pipeline.validated(users_raw, changed, files)
        new = render.render(state)
        planning.compute_fleet(out, state, new, generated_tree.read_tree(out))

    results["plan"] = best(runs, plan)
    return results


def plan_timings(sizes: list[int], where: Path | None) -> None:
    """The generator on the fleets above: eval, generate, first write, plan after a change.

    Measured where the declaration knows fleets (declare/models.py has `Host`).
    """
    if not hasattr(models, "Host"):
        print("plan: not measured (no fleet model in this tree)")
        return
    base = Path(tempfile.mkdtemp(prefix="devbox-bench-fleet-", dir=where))
    print(f"generator on the same fleets, writing under {base}")
    print(
        f"{'hosts':>6} {'containers':>10} {'eval':>8} {'generate':>9} {'ratio':>6} "
        f"{'write':>8} {'plan':>8} {'ratio':>6}"
    )
    previous: dict[str, float] | None = None
    try:
        for size in sizes:
            r = generator_timings(size, base)
            generate_ratio = f"{r['generate'] / previous['generate']:6.1f}" if previous else ""
            plan_ratio = f"{r['plan'] / previous['plan']:6.1f}" if previous else ""
            previous = r
            print(
                f"{size:>6} {size * SLOTS:>10} {r['eval']:>7.3f}s {r['generate']:>8.3f}s "
                f"{generate_ratio:>6} {r['write']:>7.3f}s {r['plan']:>7.3f}s {plan_ratio:>6}"
            )
    finally:
        shutil.rmtree(base)


class _Declared:
    """What `_act` reads again before each act: the declared names (every row's is)."""

    def __init__(self, names: set[str]) -> None:
        self.names = names

    def refresh(self) -> _Declared:
        return self

    def by_name(self) -> set[str]:
        return self.names


def cleanup_deploys(hosts: int, due: int) -> tuple[int, int, int, float]:
    """The fleet cleanup's acting phase (fleet_views.act_on_all, as it is) with `due` stops
    and destroys spread over the hosts: the hosts deployed, the deploys in all, the most of
    one host, and the phase's own time. What a host and the config repository do is left out
    (the stop and destroy are counted, each changing its host's slice; the deploy is counted).
    """
    names = [f"c{i}" for i in range(due)]
    rows = [
        {"name": name, "host": f"host-{i % hosts:03d}", "action": ("stop", "destroy")[i % 2]}
        for i, name in enumerate(names)
    ]
    changed: dict[str, int] = {}
    deployed: list[str] = []

    def act(_rt: Any, name: str, **_options: Any) -> Any:
        host = rows[int(name[1:])]["host"]
        changed[host] = changed.get(host, 0) + 1
        return type("Done", (), {"snapshot": None})()

    def deploy(_rt: Any, chosen: Any, **_options: Any) -> Any:
        deployed.extend(chosen)
        return fleet_host_link.Deployment(applied=list(chosen))

    saved = (
        fleet_verbs.stop,
        fleet_verbs.destroy,
        fleet_host_link.slice_hashes,
        fleet_host_link.deploy_hosts,
    )
    fleet_verbs.stop, fleet_verbs.destroy = act, act
    every = [f"host-{i:03d}" for i in range(hosts)]
    fleet_host_link.slice_hashes = lambda _rt: {h: str(changed.get(h, 0)) for h in every}
    fleet_host_link.deploy_hosts = deploy
    try:
        report = fleet_views.Cleanup(dry_run=False, rows=[dict(r) for r in rows])
        start = time.perf_counter()
        fleet_views.act_on_all(_Declared(set(names)), report, lambda _line: None)
        seconds = time.perf_counter() - start
    finally:
        (
            fleet_verbs.stop,
            fleet_verbs.destroy,
            fleet_host_link.slice_hashes,
            fleet_host_link.deploy_hosts,
        ) = saved
    most = max((deployed.count(h) for h in set(deployed)), default=0)
    return len(set(deployed)), len(deployed), most, seconds


def print_cleanup(sizes: list[int]) -> None:
    print("fleet cleanup's acting phase: stops and destroys, then the deploys")
    print(
        f"{'hosts':>6} {'due':>6} {'hosts deployed':>15} {'deploys':>8} {'most on one':>12} "
        f"{'time':>9}"
    )
    for size in sizes:
        for due in (size, 4 * size):
            touched, total, most, seconds = cleanup_deploys(size, due)
            print(
                f"{size:>6} {due:>6} {touched:>15} {total:>8} {most:>12} {seconds * 1000:>7.1f}ms"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="50,500", help="host counts (default: 50,500)")
    parser.add_argument(
        "--dir", type=Path, default=None, help="where to write (default: a temporary directory)"
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(
        f"devbox fleet benchmark, Python {sys.version.split()[0]}: {SLOTS} containers per host, "
        f"best of a few runs"
    )
    print_placement(sizes)
    print_cleanup(sizes)
    plan_timings(sizes, args.dir)


if __name__ == "__main__":
    main()
