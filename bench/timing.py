"""What the benchmarks share: the best of several timings."""

from __future__ import annotations

import time
from collections.abc import Callable


def best(runs: int, action: Callable[[], object]) -> float:
    """The shortest of `runs` timings of action()."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return min(times)
