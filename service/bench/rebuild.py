"""`goalstore cache rebuild` timed three ways at a size: first as loaded (the goals of the
previous size cached, the new ones' events unapplied), then into an emptied Redis (what a
restarted Redis gets), then over a full cache (a worker's start, or a rebuild by hand).
Beside each run, the time Redis itself spent in the rebuild's scripts; beside the runs
into an emptied Redis, the memory the cache they make takes in Redis."""

from __future__ import annotations

import statistics
import time
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
    written: list[int] = []  # goals each run wrote

    def rebuild() -> None:
        before = script_seconds(stage.redis)
        written.append(commands.rebuild_cache(stage.db, stage.cache)["goals"])
        in_scripts.append(script_seconds(stage.redis) - before)

    first = timed(rebuild, 1)[0]
    cold, grown = [], []  # each cold run's seconds, and the bytes Redis grew by in it
    for _ in range(RUNS):
        stage.clear_redis()
        before = used_memory(stage.redis)
        cold += timed(rebuild, 1)
        grown.append(used_memory(stage.redis) - before)
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
    out["memory"] = memory(statistics.median(grown), written[-1], size >= 100_000)
    if size >= 100_000:
        target = TARGETS[f"rebuild_100k_{stage.backend}_s"]
        out.update(target_s=target, met=max(figures.values()) <= target)
    return out


def memory(grown: float, goals: int, targeted: bool) -> dict[str, Any]:
    """What the cache of `goals` goals takes in Redis: how much INFO memory's used_memory
    grew by in a rebuild into an emptied prefix (the median of the cold runs), per goal
    and per 100k goals, beside its target from 100k goals up (at smaller sizes the sorted
    sets Redis keeps compact for their size, and the fixed costs, make it say little)."""
    per_goal = grown / max(goals, 1)
    out: dict[str, Any] = {
        "goals": goals, "redis_used_memory_bytes": round(grown),
        "bytes_per_goal": round(per_goal, 1), "bytes_per_100k_goals": round(per_goal * 100_000),
        "method": "INFO memory used_memory after the rebuild minus before it, the prefix "
                  "emptied; median of the cold runs",
    }  # fmt: skip
    if targeted:
        target = TARGETS["cache_bytes_per_100k_goals"]
        out.update(target_bytes_per_100k_goals=target, met=per_goal * 100_000 <= target)
    return out


def used_memory(redis: Redis) -> int:
    """INFO memory's used_memory, once Redis has freed what a DEL left to free in the
    background (lazyfree: a server may be set to free large keys so)."""
    for _ in range(50):
        info: dict[str, Any] = redis.info("memory")
        if not info.get("lazyfree_pending_objects"):
            break
        time.sleep(0.02)
    return int(info["used_memory"])


def script_seconds(redis: Redis) -> float:
    """Seconds Redis has spent running scripts (EVALSHA) since its stats were reset."""
    stats: dict[str, Any] = redis.info("commandstats")
    return float(stats.get("cmdstat_evalsha", {}).get("usec", 0)) / 1e6
