"""Where a verb's time goes: `devbox-ctl --timings VERB …` says it on stderr when the verb ends.

For the benchmarks (bench/bench_host.py, the host test's step timings): the process's start
and imports (its age when `main` begins), each program it ran (tools/process.py times every
one, by name), the waits for the config lock, devbox's own work (the rest) and the total.
Through sudo, the caller's devbox-ctl says its own start before it hands over, and the root
process says the rest; sudo's share is what a caller's clock sees beyond the two.

Off unless asked: then nothing is measured beyond two clock reads per program.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

_enabled = False
_age_at_main: float | None = None
_programs: dict[str, list[float]] = {}
_stages: dict[str, list[float]] = {}


def enable() -> None:
    """Measure from now on; the process's age now is its start and imports."""
    global _enabled, _age_at_main  # noqa: PLW0603 - one switch for the process, set by main
    _enabled = True
    _age_at_main = process_age()


def finish() -> None:
    """Stop measuring and forget what was measured (one command per process, or per test)."""
    global _enabled, _age_at_main
    _enabled, _age_at_main = False, None
    _programs.clear()
    _stages.clear()


def enabled() -> bool:
    """Whether `--timings` asked for them."""
    return _enabled


def process_age() -> float | None:
    """Seconds since this process started (the kernel's start time); None if unreadable."""
    try:
        stat = Path("/proc/self/stat").read_text()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    # Field 22 (starttime, in clock ticks since boot) counts from after the command's ")".
    fields = stat.rsplit(")", 1)[-1].split()
    try:
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (IndexError, ValueError, OSError):
        return None
    return max(0.0, uptime - started)


@contextlib.contextmanager
def _timed(into: dict[str, list[float]], key: str) -> Iterator[None]:
    if not _enabled:
        yield
        return
    start = time.monotonic()
    try:
        yield
    finally:
        into.setdefault(key, []).append(time.monotonic() - start)


def program(label: str) -> contextlib.AbstractContextManager[None]:
    """Time one run of a program, under the name it is reported by."""
    return _timed(_programs, label)


def stage(name: str) -> contextlib.AbstractContextManager[None]:
    """Time a stage of devbox's own (added up when it recurs)."""
    return _timed(_stages, name)


def report(who: str) -> list[str]:
    """The lines `--timings` prints: start, programs, stages, devbox's own share, total."""
    age_at_main = _age_at_main
    total = process_age()
    lines = []
    if age_at_main is not None:
        lines.append(f"timing: {who}: start and imports: {age_at_main:.2f} s")
    spent = sum(sum(runs) for runs in (*_programs.values(), *_stages.values()))
    for name, runs in sorted(_programs.items(), key=lambda item: -sum(item[1])):
        count = f"{len(runs)} run{'s' if len(runs) != 1 else ''}"
        lines.append(f"timing: {who}: program {name}: {sum(runs):.2f} s ({count})")
    for name, runs in sorted(_stages.items(), key=lambda item: -sum(item[1])):
        lines.append(f"timing: {who}: {name}: {sum(runs):.2f} s")
    if total is not None and age_at_main is not None:
        lines.append(f"timing: {who}: devbox itself: {max(0.0, total - age_at_main - spent):.2f} s")
    if total is not None:
        lines.append(f"timing: {who}: total: {total:.2f} s")
    return lines
