"""`goalstore bench`: the ranking targets, measured on this machine.

`run(redis_url, plan)` returns one JSON-ready document (progress lines go to stderr).
Every figure is a median and a p95 over repeated runs, beside its target, and, where one
makes sense, beside a baseline measured in the same process (a sort of as many floats; a
raw ZREVRANGE), because a 2-core machine shared with other work is noisy and the ratio
says more than the absolute number. docs/benchmarks.md explains each figure.

It works in a temporary directory with its own SQLite file and its own Redis key prefix
and queues, starts the web, worker and selector processes itself, and removes everything
at the end. It needs a Redis: GOALSTORE_REDIS_URL or --redis-url.

The modules, in the order a run uses them: plan (sizes, targets), stats (timing, median,
p95), prioritizer, dataset (goals through the commands), stage (the temporary store and
its processes; processes), rebuild, ranked_read, events, selection (and selector, the
process it starts).
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from redis import Redis

from service.bench import events, prioritizer, ranked_read, rebuild, selection
from service.bench.dataset import load_goals
from service.bench.plan import FULL, PREFIX, QUICK, SCHEDULER_QUEUE, TARGETS, Plan, label
from service.bench.stage import Stage, clear_keys
from service.bench.stats import progress
from service.cache.keys import Keys
from service.commands.selection import SELECT_BATCH

__all__ = ["FULL", "PREFIX", "QUICK", "SCHEDULER_QUEUE", "TARGETS", "Plan", "run"]


def run(redis_url: str, plan: Plan) -> dict[str, Any]:
    """The whole benchmark: FULL for the issues' sizes, QUICK to check that it runs."""
    started = time.perf_counter()
    report: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "prioritizer": prioritizer.measure(plan.prioritizer_sizes),
        "ranked_read": {},
        "rebuild": {},
    }
    keys = Keys(PREFIX)
    redis = Redis.from_url(redis_url)
    clear_keys(redis, keys)
    with tempfile.TemporaryDirectory(prefix="goalstore-bench-") as tmp:
        stage = Stage(Path(tmp), redis_url, redis, keys)
        try:
            loaded = 0
            for size in sorted(plan.read_sizes):
                progress(f"loading {size - loaded} goals (create + adopt; {size} in all)")
                load_goals(stage.db, loaded, size - loaded, random.Random(size))
                loaded = size
                report["rebuild"][label(size)] = rebuild.measure(stage, size)
                report["ranked_read"][label(size)] = ranked_read.measure(stage, size, plan.requests)
                if size == min(plan.read_sizes):
                    report["events"] = events.measure(stage, plan.lag_samples, plan.burst)
                    report["events"]["goals_in_store"] = loaded + plan.burst
            report["select"] = {
                "one_per_call": selection.measure(stage, plan.selections, 1),
                "selector_batches": selection.measure(stage, plan.selections, SELECT_BATCH),
            }
        finally:
            stage.db.close()
            clear_keys(redis, keys)
            redis.close()
    report["targets"] = TARGETS
    report["seconds"] = round(time.perf_counter() - started, 1)
    return report
