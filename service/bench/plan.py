"""What `goalstore bench` runs and what it holds each figure to: the sizes of a run
(FULL for the issues' sizes, QUICK to check that it runs), the targets, and the names
it works under (a Redis key prefix and queues of its own, never a real worker's)."""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = "goalstore-bench:"
EVENTS_QUEUE = "goalstore-bench-events"
SCHEDULER_QUEUE = "goalstore-bench-scheduler"
SELECTORS = 4  # selector processes started together for the selection runs

PRIORITIZER_TARGETS_P95_MS = {1_000: 2.0, 100_000: 150.0}
TARGETS = {
    "prioritizer_1k_p95_ms": 2.0,
    "prioritizer_100k_p95_ms": 150.0,
    "ranked_read_p95_ms": 5.0,
    "event_lag_p95_ms": 100.0,
    "events_per_s": 5000.0,
    "rebuild_100k_s": 2.0,
    "select_goals_per_s": 500.0,
}


@dataclass(frozen=True)
class Plan:
    read_sizes: tuple[int, ...]  # goals in the store for the ranked-read and rebuild runs
    prioritizer_sizes: tuple[int, ...]
    requests: int  # HTTP reads per size
    lag_samples: int  # changes timed one at a time through the worker
    burst: int  # goals created (2 events each) at once for the throughput run
    selections: int  # goals selected and emitted by the selector processes


FULL = Plan((10_000, 100_000), (1_000, 100_000), requests=300, lag_samples=200, burst=5_000,
            selections=4_000)  # fmt: skip
QUICK = Plan((500, 1_000), (1_000, 10_000), requests=50, lag_samples=20, burst=500,
             selections=200)  # fmt: skip


def label(n: int) -> str:
    """A size as the report's key: 1000 -> "1k", 500 -> "500"."""
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)
