"""Events through the worker (outbox -> relay -> RQ -> re-ranking in Redis). Lag: one
change at a time, from its commit until Redis holds the new version. Throughput: a burst
of goals created and adopted in one go (2 events each), from the commit until the worker
has applied them all; beside it, how long writing the burst through the commands took
(the backend's write speed, one transaction per 5,000 goals)."""

from __future__ import annotations

import random
import time
from typing import Any

from service import commands
from service.bench.dataset import load_goals
from service.bench.plan import TARGETS
from service.bench.processes import wait_for
from service.bench.stage import Stage
from service.bench.stats import percentiles, progress
from service.commands import Context
from service.domain.inputs import GoalUpdate

BURST_FIRST_ID = 10_000_000  # the burst's goals are numbered apart from the loaded ones


def measure(stage: Stage, lag_samples: int, burst: int) -> dict[str, Any]:
    progress(f"{stage.backend}: events: worker lag over {lag_samples} changes, then a burst")
    with stage.worker(stage.env, "worker.log"):
        lag = _lag(stage, lag_samples)
        progress(
            f"  lag p50 {lag['p50_ms']} ms, p95 {lag['p95_ms']} ms; "
            f"now a burst of {2 * burst} events"
        )
        loading, elapsed = _burst(stage, burst)
    rate = 2 * burst / elapsed
    return {
        "lag": {**lag, "target_p95_ms": TARGETS["event_lag_p95_ms"],
                "met": lag["p95_ms"] <= TARGETS["event_lag_p95_ms"]},
        "throughput": {
            "events": 2 * burst, "seconds": round(elapsed, 3), "events_per_s": round(rate),
            "target_events_per_s": TARGETS["events_per_s"],
            "met": rate >= TARGETS["events_per_s"],
            "written_in_s": round(loading, 3),
            "goals_written_per_s": round(burst / loading),
        },
    }  # fmt: skip


def _lag(stage: Stage, samples: int) -> dict[str, float]:
    """Change goals g0… one at a time; each, from its commit until Redis has its version."""
    db, redis, keys = stage.db, stage.redis, stage.keys
    ctx = Context("bench")
    lags = []
    for n in range(samples):
        goal_id = f"g{n}"
        goal = commands.get_goal(db, goal_id)
        commands.update_goal(
            db, ctx, goal_id, GoalUpdate(value=round((n % 10) / 10, 1) + 0.05), goal.version
        )
        committed = time.perf_counter()
        wanted = str(goal.version + 1).encode()
        while redis.hget(keys.goal(goal_id), "version") != wanted:
            if time.perf_counter() - committed > 10:
                raise RuntimeError(f"bench: {goal_id} never reached Redis")
            time.sleep(0.0005)
        lags.append(time.perf_counter() - committed)
    return percentiles(lags)


def _burst(stage: Stage, goals: int) -> tuple[float, float]:
    """Seconds writing the burst took, and from its last commit until the outbox holds
    nothing unapplied."""
    started = time.perf_counter()
    load_goals(stage.db, BURST_FIRST_ID, goals, random.Random(3))
    committed = time.perf_counter()
    wait_for(
        "the burst to be applied",
        stage.applied,
        seconds=300,
    )
    return committed - started, time.perf_counter() - committed
