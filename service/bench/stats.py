"""Timing a callable and summing the samples up: median, p95 (and p99 where asked) in
milliseconds, the ratio to a baseline timed in the same run, and the progress lines (on
stderr, so that stdout holds only the JSON report, each with the seconds since the
bench started)."""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable

_STARTED = time.perf_counter()


def progress(message: str) -> None:
    elapsed = time.perf_counter() - _STARTED
    print(f"bench: [{elapsed:6.1f} s] {message}", file=sys.stderr, flush=True)


def restart_clock() -> None:
    """Progress lines count from now (the start of a run)."""
    global _STARTED
    _STARTED = time.perf_counter()


def timed(fn: Callable[[], object], runs: int) -> list[float]:
    """Seconds each of `runs` calls of `fn` took."""
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def _at(ordered: list[float], q: float) -> float:
    """The sample at quantile `q` (nearest rank) of samples in ascending order."""
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def percentiles(samples_s: list[float], *, p99: bool = False) -> dict[str, float]:
    """Median and p95 (and p99 with `p99`) of timings in seconds, in milliseconds."""
    ordered = sorted(samples_s)
    out = {
        "p50_ms": round(statistics.median(ordered) * 1000, 3),
        "p95_ms": round(_at(ordered, 0.95) * 1000, 3),
    }
    if p99:
        out["p99_ms"] = round(_at(ordered, 0.99) * 1000, 3)
    return {**out, "runs": len(ordered)}


def ratio(measured_ms: float, baseline_ms: float) -> float:
    """How many baselines the measured figure is, to one decimal (a 2-core machine shared
    with other work is noisy: the ratio moves less than the absolute figure)."""
    return round(measured_ms / max(baseline_ms, 1e-6), 1)
