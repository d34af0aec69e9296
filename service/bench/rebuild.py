"""`goalstore cache rebuild` timed three ways at a size: first as loaded (the goals of the
previous size cached, the new ones' events unapplied), then into an emptied Redis (what a
restarted Redis gets), then over a full cache (a worker's start, or a rebuild by hand).
Beside each run, the time Redis itself spent in the rebuild's scripts."""

from __future__ import annotations

import statistics
from typing import Any

from redis import Redis

from service import commands
from service.bench.plan import TARGETS
from service.bench.stage import Stage
from service.bench.stats import progress, timed

RUNS = 3  # the median of 3: one slow run on a noisy machine does not decide it


def measure(stage: Stage, size: int) -> dict[str, Any]:
    progress(
        f"{stage.backend}: rebuilding the Redis ranking of {size} goals: "
        f"first, {RUNS} cold, {RUNS} warm"
    )
    in_scripts: list[float] = []  # Redis's own time in scripts, per run

    def rebuild() -> None:
        before = script_seconds(stage.redis)
        commands.rebuild_cache(stage.db, stage.cache)
        in_scripts.append(script_seconds(stage.redis) - before)

    first = timed(rebuild, 1)[0]
    cold = []
    for _ in range(RUNS):
        stage.clear_redis()
        cold += timed(rebuild, 1)
    warm = timed(rebuild, RUNS)
    figures = {"first": first, "cold_p50": statistics.median(cold),
               "warm_p50": statistics.median(warm)}  # fmt: skip
    out: dict[str, Any] = {
        "goals": size, **{f"{k}_s": round(v, 3) for k, v in figures.items()},
        "cold_runs_s": [round(v, 3) for v in cold],
        "warm_runs_s": [round(v, 3) for v in warm],
        # first, the cold runs, the warm runs: how much of each Redis spent running
        # the rebuild's scripts, snapshots then placing (the rest: the store, Python,
        # what did not overlap)
        "redis_in_scripts_s": [round(v, 3) for v in in_scripts],
    }  # fmt: skip
    if size >= 100_000:
        target = TARGETS[f"rebuild_100k_{stage.backend}_s"]
        out.update(target_s=target, met=max(figures.values()) <= target)
    return out


def script_seconds(redis: Redis) -> float:
    """Seconds Redis has spent running scripts (EVALSHA) since its stats were reset."""
    stats: dict[str, Any] = redis.info("commandstats")
    return float(stats.get("cmdstat_evalsha", {}).get("usec", 0)) / 1e6
