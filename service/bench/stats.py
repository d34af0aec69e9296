"""Timing a callable and summing the samples up: median and p95 in milliseconds, the
ratio to a baseline timed in the same run, and the progress lines (on stderr, so that
stdout holds only the JSON report)."""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable


def progress(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def timed(fn: Callable[[], object], runs: int) -> list[float]:
    """Seconds each of `runs` calls of `fn` took."""
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def percentiles(samples_s: list[float]) -> dict[str, float]:
    """Median and p95 of timings in seconds, reported in milliseconds."""
    ordered = sorted(samples_s)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 3),
        "p95_ms": round(p95 * 1000, 3),
        "runs": len(ordered),
    }


def ratio(measured_ms: float, baseline_ms: float) -> float:
    """How many baselines the measured figure is, to one decimal (a 2-core machine shared
    with other work is noisy: the ratio moves less than the absolute figure)."""
    return round(measured_ms / max(baseline_ms, 1e-6), 1)
