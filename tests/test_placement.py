"""Placement (declare/placement.py): properties of the choice, and the refusal messages.

The properties run over random fleets: hosts with whole or two-decimal CPU counts, memory in
steps of 256M, a few container slots and labels, and containers already placed on them (some
fleets start over their capacity, as a hand-edited declaration could). An independent oracle
(`best_by_rule`, exact fractions) says which host the rule picks and whether any fits.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import TypeVar

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from devbox.declare.placement import (
    HostSpace,
    Need,
    NoRoom,
    Occupancy,
    Placed,
    drain_plan,
    place,
)

T = TypeVar("T")
G = 1024**3
M = 1024**2
STEP = 256 * M
LABELS = ["arm", "fast", "gpu"]
NAMES = [f"{prefix}{n}" for prefix in ("alpha", "beta", "gamma", "z") for n in ("", "-2", "9")]

CPUS = st.one_of(
    st.integers(1, 8).map(float),
    st.decimals("0.1", "8", places=2).map(float),
)
NEED_CPU = st.sampled_from([0.1, 0.2, 0.25, 0.3, 0.5, 1.0, 1.5, 2.0, 3.0])
LABEL_SET = st.frozensets(st.sampled_from(LABELS), max_size=2)


# Hosts often share a size, so that ties (and the tie-break) are common.
SIZES = st.sampled_from([(2.0, 16, 2), (4.0, 32, 4), (4.0, 32, 5), (8.0, 64, 4)])


@st.composite
def hosts(draw: st.DrawFn, min_size: int = 1) -> list[HostSpace]:
    names = draw(st.lists(st.sampled_from(NAMES), min_size=min_size, max_size=6, unique=True))
    fleet = []
    for name in names:
        cpus, steps, slots = draw(
            st.one_of(SIZES, st.tuples(CPUS, st.integers(1, 64), st.integers(1, 5)))
        )
        labels = draw(LABEL_SET)
        fleet.append(HostSpace(name, cpus, steps * STEP, slots, labels))
    return fleet


def needs() -> st.SearchStrategy[Need]:
    return st.builds(
        Need,
        cpu=NEED_CPU,
        memory_bytes=st.integers(1, 16).map(lambda n: n * STEP),
        labels=LABEL_SET,
    )


@st.composite
def fleets(draw: st.DrawFn, min_size: int = 1) -> tuple[list[HostSpace], list[Placed]]:
    fleet = draw(hosts(min_size))
    # Mostly on declared hosts; now and then on a host that is not (it takes room nowhere).
    where = st.one_of(st.sampled_from([h.name for h in fleet]), st.just("gone"))
    placed = draw(
        st.lists(
            st.builds(
                Placed,
                host=where,
                cpu=NEED_CPU,
                memory_bytes=st.integers(1, 16).map(lambda n: n * STEP),
            ),
            max_size=12,
        )
    )
    return fleet, placed


@dataclass(frozen=True)
class Use:
    cpu: Fraction
    memory: int
    count: int


def exact(cpus: float) -> Fraction:
    """A CPU count as the decimal a person wrote (0.1 is one tenth, not the nearest float)."""
    return Fraction(str(cpus))


def usage(fleet: list[HostSpace], placed: list[Placed]) -> dict[str, Use]:
    totals = {h.name: Use(Fraction(0), 0, 0) for h in fleet}
    for p in placed:
        if p.host in totals:
            u = totals[p.host]
            totals[p.host] = Use(u.cpu + exact(p.cpu), u.memory + p.memory_bytes, u.count + 1)
    return totals


def fits(host: HostSpace, use: Use, need: Need) -> bool:
    return (
        need.labels <= host.labels
        and use.cpu + exact(need.cpu) <= exact(host.cpus)
        and use.memory + need.memory_bytes <= host.memory_bytes
        and use.count + 1 <= host.containers
    )


def within_capacity(host: HostSpace, use: Use) -> bool:
    return (
        use.cpu <= exact(host.cpus)
        and use.memory <= host.memory_bytes
        and use.count <= host.containers
    )


def best_by_rule(
    fleet: list[HostSpace], placed: list[Placed], need: Need, exclude: frozenset[str] = frozenset()
) -> str | None:
    """The rule of docs/fleet.md computed directly, with exact fractions."""
    use = usage(fleet, placed)
    ranked = []
    for h in fleet:
        u = use[h.name]
        if h.name in exclude or not fits(h, u, need):
            continue
        cpu_left = (exact(h.cpus) - u.cpu - exact(need.cpu)) / exact(h.cpus)
        memory_left = Fraction(h.memory_bytes - u.memory - need.memory_bytes, h.memory_bytes)
        slots_left = h.containers - u.count - 1
        score = min(cpu_left, memory_left, Fraction(slots_left, h.containers))
        ranked.append((-score, -slots_left, h.name))
    return min(ranked)[2] if ranked else None


def attempt(action: Callable[[], T]) -> T | NoRoom:
    """What action() gives, or its refusal."""
    try:
        return action()
    except NoRoom as refusal:
        return refusal


def outcome(action: Callable[[], str]) -> str | dict[str, str]:
    """The host chosen, or the reasons of the refusal (to compare two calls)."""
    result = attempt(action)
    return result.reasons if isinstance(result, NoRoom) else result


# --- properties -------------------------------------------------------------------------


@settings(max_examples=400)
@given(fleets(), needs())
def test_the_choice_is_the_host_the_rule_names(fleet, need) -> None:
    hosts_, placed = fleet
    expected = best_by_rule(hosts_, placed, need)
    event("refused" if expected is None else "placed")
    if expected is None:
        with pytest.raises(NoRoom):
            place(hosts_, placed, need)
    else:
        assert place(hosts_, placed, need) == expected


@given(hosts(), st.lists(needs(), max_size=30))
def test_placing_one_by_one_never_goes_over_capacity(fleet, arrivals) -> None:
    placed: list[Placed] = []
    for need in arrivals:
        try:
            chosen = place(fleet, placed, need)
        except NoRoom:
            continue
        placed.append(Placed(chosen, need.cpu, need.memory_bytes))
    use = usage(fleet, placed)
    for h in fleet:
        assert within_capacity(h, use[h.name]), (h, use[h.name])


@given(fleets(), needs())
def test_the_chosen_host_has_room_and_the_labels(fleet, need) -> None:
    hosts_, placed = fleet
    try:
        chosen = place(hosts_, placed, need)
    except NoRoom:
        return
    host = next(h for h in hosts_ if h.name == chosen)
    assert need.labels <= host.labels
    assert fits(host, usage(hosts_, placed)[chosen], need)


@given(fleets(), needs(), st.data())
def test_a_forced_host_is_taken_if_it_fits_and_refused_if_not(fleet, need, data) -> None:
    hosts_, placed = fleet
    forced = data.draw(st.sampled_from([*(h.name for h in hosts_), "nowhere"]))
    host = next((h for h in hosts_ if h.name == forced), None)
    if host is not None and fits(host, usage(hosts_, placed)[forced], need):
        assert place(hosts_, placed, need, host=forced) == forced
        return
    with pytest.raises(NoRoom) as refused:
        place(hosts_, placed, need, host=forced)
    assert list(refused.value.reasons) == [forced]
    assert refused.value.reasons[forced]
    assert forced in refused.value.message()


@given(fleets(), needs(), st.data())
def test_an_excluded_host_is_never_chosen(fleet, need, data) -> None:
    hosts_, placed = fleet
    exclude = data.draw(st.frozensets(st.sampled_from([h.name for h in hosts_])))
    chosen = attempt(lambda: place(hosts_, placed, need, exclude=exclude))
    event("refused" if isinstance(chosen, NoRoom) else "placed")
    if isinstance(chosen, NoRoom):
        assert best_by_rule(hosts_, placed, need, exclude) is None
        for name in exclude:
            assert chosen.reasons[name] == "is excluded"
        return
    assert chosen not in exclude
    assert chosen == best_by_rule(hosts_, placed, need, exclude)
    for name in exclude:
        with pytest.raises(NoRoom, match="is excluded"):
            place(hosts_, placed, need, host=name, exclude=exclude)


@given(fleets(), needs(), st.randoms(use_true_random=False))
def test_the_answer_is_the_same_in_any_order(fleet, need, shuffler) -> None:
    hosts_, placed = fleet
    first = outcome(lambda: place(hosts_, placed, need))
    assert outcome(lambda: place(hosts_, placed, need)) == first
    hosts_again, placed_again = list(hosts_), list(placed)
    shuffler.shuffle(hosts_again)
    shuffler.shuffle(placed_again)
    assert outcome(lambda: place(hosts_again, placed_again, need)) == first


@given(
    st.integers(1, 12),
    st.integers(1, 8),
    st.data(),
)
def test_uniform_fleets_stay_balanced_within_one(count, slots, data) -> None:
    fleet = [HostSpace(f"h{i:02d}", 16.0, 64 * G, slots, frozenset()) for i in range(count)]
    cpu = data.draw(st.sampled_from([0.1, 0.5, 1.0, 2.0]))
    need = Need(cpu, data.draw(st.integers(1, 8)) * G)
    arrivals = data.draw(st.integers(0, count * slots))
    placed: list[Placed] = []
    for _ in range(arrivals):
        placed.append(Placed(place(fleet, placed, need), need.cpu, need.memory_bytes))
    per_host = Counter({h.name: 0 for h in fleet}) + Counter(p.host for p in placed)
    counts = [per_host[h.name] for h in fleet]
    assert max(counts) - min(counts) <= 1, counts


@given(fleets(), needs())
def test_a_refusal_names_every_host_with_a_reason(fleet, need) -> None:
    hosts_, placed = fleet
    refusal = attempt(lambda: place(hosts_, placed, need))
    if isinstance(refusal, NoRoom):
        assert set(refusal.reasons) == {h.name for h in hosts_}
        assert all(refusal.reasons.values())
        use = usage(hosts_, placed)
        for h in hosts_:
            reason = refusal.reasons[h.name]
            missing = need.labels - h.labels
            assert ("lacks label" in reason) == bool(missing), (h, reason)
            short_of_cpu = use[h.name].cpu + exact(need.cpu) > exact(h.cpus)
            assert ("CPU free" in reason or "CPUs free" in reason) == short_of_cpu, (h, reason)
            short_of_memory = use[h.name].memory + need.memory_bytes > h.memory_bytes
            assert ("memory free" in reason) == short_of_memory, (h, reason)
            assert ("no container slot free" in reason) == (use[h.name].count >= h.containers)


@given(fleets(min_size=2), st.data())
def test_a_drain_moves_every_container_off_within_capacity(fleet, data) -> None:
    hosts_, others = fleet
    source = data.draw(st.sampled_from([h.name for h in hosts_]))
    # About half of the containers on the host to drain; most need no label.
    placed = [
        Placed(source, p.cpu, p.memory_bytes) if data.draw(st.booleans()) else p for p in others
    ]
    placed.append(Placed(source, data.draw(NEED_CPU), data.draw(st.integers(1, 16)) * STEP))
    labels = st.one_of(st.just(frozenset()), LABEL_SET)
    containers = [
        (f"box-{i:02d}", p, Need(p.cpu, p.memory_bytes, data.draw(labels)))
        for i, p in enumerate(placed)
    ]
    leaving = {name for name, p, _ in containers if p.host == source}
    moves = attempt(lambda: drain_plan(hosts_, containers, source))
    event("refused" if isinstance(moves, NoRoom) else f"moves: {min(len(moves), 3)}")
    if isinstance(moves, NoRoom):
        assert moves.container in leaving
        assert moves.reasons[source] == "is excluded"
        assert f"container {moves.container} " in moves.message()
        return
    assert sorted(name for name, _ in moves) == sorted(leaving)
    assert drain_plan(hosts_, list(reversed(containers)), source) == moves
    targets = dict(moves)
    needs_ = {name: need for name, _, need in containers}
    after = [Placed(targets.get(name, p.host), p.cpu, p.memory_bytes) for name, p, _ in containers]
    use = usage(hosts_, after)
    before = usage(hosts_, placed)
    for name, target in moves:
        host = next(h for h in hosts_ if h.name == target)
        assert target != source
        assert needs_[name].labels <= host.labels
    for h in hosts_:
        if h.name != source and use[h.name] != before[h.name]:
            assert within_capacity(h, use[h.name]), (h, use[h.name])


# --- examples ---------------------------------------------------------------------------


def test_decimal_cpus_add_up_exactly() -> None:
    """0.1 + 0.2 is 0.30000000000000004 as floats: a host of 0.3 CPUs still takes it."""
    tight = [HostSpace("alpha", 0.3, 4 * G, 4, frozenset())]
    assert place(tight, [Placed("alpha", 0.1, G)], Need(0.2, G)) == "alpha"
    with pytest.raises(NoRoom):
        place(tight, [Placed("alpha", 0.1, G)], Need(0.21, G))
    # A host declared with more decimals than a milli-CPU offers less, never more.
    odd = [HostSpace("alpha", 1.9995, 4 * G, 4, frozenset())]
    with pytest.raises(NoRoom, match=r"alpha: 1\.999 of 1\.999 CPUs free"):
        place(odd, [], Need(2.0, G))
    assert place(odd, [], Need(1.99, G)) == "alpha"


def test_ties_go_to_more_free_slots_then_to_the_first_name() -> None:
    # Both end with half their CPUs free; beta has more slots left.
    alpha = HostSpace("alpha", 4.0, 64 * G, 4, frozenset())
    beta = HostSpace("beta", 4.0, 64 * G, 8, frozenset())
    assert place([alpha, beta], [], Need(2.0, G)) == "beta"
    twin = HostSpace("aaa", 4.0, 64 * G, 8, frozenset())
    assert place([beta, twin], [], Need(2.0, G)) == "aaa"


def test_the_dimension_closest_to_full_decides() -> None:
    # alpha has more CPUs free, but only 1/8 of its memory would be left; beta keeps 3/4 of
    # its CPUs (its fullest dimension).
    alpha = HostSpace("alpha", 32.0, 8 * G, 8, frozenset())
    beta = HostSpace("beta", 8.0, 16 * G, 8, frozenset())
    assert place([alpha, beta], [Placed("alpha", 1.0, 6 * G)], Need(2.0, G)) == "beta"
    assert place([alpha, beta], [], Need(2.0, G)) == "alpha"


def test_a_refusal_says_which_host_lacks_what() -> None:
    fleet = [
        HostSpace("alpha", 2.0, 8 * G, 8, frozenset()),
        HostSpace("beta", 16.0, 64 * G, 8, frozenset({"gpu"})),
        HostSpace("gamma", 16.0, 2 * G, 8, frozenset({"gpu"})),
    ]
    placed = [Placed("alpha", 1.5, 2 * G), *[Placed("beta", 1.0, G)] * 8]
    with pytest.raises(NoRoom) as refused:
        place(fleet, placed, Need(1.0, 4 * G, frozenset({"gpu"})))
    assert refused.value.reasons == {
        "alpha": "lacks label gpu, 0.5 of 2 CPUs free",
        "beta": "no container slot free (8 of 8 used)",
        "gamma": "2G of 2G memory free",
    }
    assert refused.value.message() == (
        "no host can take a container needing 1 CPU, 4G of memory and label gpu "
        "(alpha: lacks label gpu, 0.5 of 2 CPUs free; beta: no container slot free (8 of 8 "
        "used); gamma: 2G of 2G memory free); free room by destroying or moving a container, "
        "or raise the capacity in users.nix, or add the label to a host in users.nix"
    )


def test_a_forced_host_that_does_not_fit_is_refused_with_its_reason() -> None:
    fleet = [
        HostSpace("alpha", 2.0, 8 * G, 8, frozenset()),
        HostSpace("beta", 16.0, 64 * G, 8, frozenset()),
    ]
    with pytest.raises(NoRoom) as refused:
        place(fleet, [Placed("alpha", 1.5, 2 * G)], Need(1.0, G), host="alpha")
    assert refused.value.message() == (
        "host alpha cannot take a container needing 1 CPU and 1G of memory: 0.5 of 2 CPUs "
        "free; free room by destroying or moving a container, or raise the capacity in "
        "users.nix, or choose another host"
    )
    with pytest.raises(NoRoom) as unknown:
        place(fleet, [], Need(1.0, G), host="zeta")
    assert unknown.value.reasons == {"zeta": "is not a declared host"}
    assert unknown.value.message() == "host zeta is not a declared host; choose one of alpha, beta"
    with pytest.raises(NoRoom) as excluded:
        place(fleet, [], Need(1.0, G), host="beta", exclude=frozenset({"beta"}))
    assert excluded.value.message() == "host beta is excluded; choose another host"


def test_a_refusal_with_every_host_excluded_or_none_declared() -> None:
    fleet = [HostSpace("alpha", 2.0, 8 * G, 8, frozenset())]
    with pytest.raises(NoRoom) as refused:
        place(fleet, [], Need(0.5, 512 * M), exclude=frozenset({"alpha"}))
    assert refused.value.message() == (
        "no host can take a container needing 0.5 CPUs and 512M of memory (alpha: is "
        "excluded); declare another host in users.nix"
    )
    with pytest.raises(NoRoom) as none:
        place([], [], Need(0.5, 512 * M))
    assert none.value.reasons == {}
    assert none.value.message() == (
        "no host can take a container needing 0.5 CPUs and 512M of memory: no host is "
        "declared; declare hosts in users.nix"
    )


def test_a_refusal_over_many_hosts_names_ten_and_counts_the_rest() -> None:
    fleet = [HostSpace(f"h{i:02d}", 1.0, G, 1, frozenset()) for i in range(25)]
    with pytest.raises(NoRoom) as refused:
        place(fleet, [], Need(2.0, M))
    assert len(refused.value.reasons) == 25
    message = refused.value.message()
    assert "h09: 1 of 1 CPU free" in message
    assert "h10" not in message
    assert message.endswith(
        "; 15 more hosts do not fit either); free room by destroying or moving a container, "
        "or raise the capacity in users.nix"
    )


def test_a_drain_places_the_largest_first_and_names_what_does_not_fit() -> None:
    fleet = [
        HostSpace("alpha", 4.0, 16 * G, 4, frozenset()),
        HostSpace("beta", 4.0, 16 * G, 4, frozenset()),
        HostSpace("old", 8.0, 32 * G, 8, frozenset({"gpu"})),
    ]
    on_old = [
        ("small", Placed("old", 1.0, G), Need(1.0, G)),
        ("large", Placed("old", 3.0, 4 * G), Need(3.0, 4 * G)),
        ("mid", Placed("old", 2.0, 2 * G), Need(2.0, 2 * G)),
    ]
    assert drain_plan(fleet, on_old, "old") == [
        ("large", "alpha"),
        ("mid", "beta"),
        ("small", "beta"),
    ]
    assert drain_plan(fleet, on_old, "alpha") == []
    needs_gpu = [*on_old, ("trainer", Placed("old", 1.0, G), Need(1.0, G, frozenset({"gpu"})))]
    with pytest.raises(NoRoom) as refused:
        drain_plan(fleet, needs_gpu, "old")
    assert refused.value.container == "trainer"
    assert refused.value.message().startswith(
        "no host can take container trainer needing 1 CPU, 1G of memory and label gpu "
        "(alpha: lacks label gpu; beta: lacks label gpu; old: is excluded)"
    )


def test_hosts_declared_twice_are_a_programming_error() -> None:
    twice = [HostSpace("alpha", 1.0, G, 1, frozenset())] * 2
    with pytest.raises(ValueError, match="hosts declared twice: alpha"):
        Occupancy(twice)


def test_running_totals_agree_with_placing_from_scratch() -> None:
    rng = random.Random(13)
    fleet = [
        HostSpace(f"h{i}", float(rng.randint(2, 16)), rng.randint(4, 64) * G, 6, frozenset())
        for i in range(7)
    ]
    occupancy = Occupancy(fleet)
    placed: list[Placed] = []
    for _ in range(60):
        need = Need(rng.choice([0.5, 1.0, 2.0]), rng.randint(1, 6) * G)
        fresh = outcome(lambda: place(fleet, placed, need))  # noqa: B023 (called at once)
        running = outcome(lambda: occupancy.choose(need))  # noqa: B023
        assert running == fresh
        if isinstance(running, str):
            occupancy.add(Placed(running, need.cpu, need.memory_bytes))
            placed.append(Placed(running, need.cpu, need.memory_bytes))
