"""Select + emit with concurrent selector processes (`python -m service.bench.selector`),
started together on one signal, until the plan's goals are emitted: one goal per call
(POST /v1/goals/select, `goalstore select`), or a batch per call (what `goalstore
selector` does to top the scheduler queue up). Met only at the target rate with every goal
emitted exactly once, each with its job on the queue."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

import orjson
from rq import Queue

from service.bench.plan import SCHEDULER_QUEUE, SELECTORS, TARGETS
from service.bench.stage import Stage
from service.bench.stats import progress

START_DELAY_S = 2.0  # let the selectors import and connect before the start signal


def measure(stage: Stage, goals: int, batch: int) -> dict[str, Any]:
    progress(f"select: {SELECTORS} selector processes emit {goals} goals, {batch} per call")
    env = {**stage.env, "GOAL_SYSTEM": "on", "GOAL_SHADOW": "off",
           "GOALSTORE_SCHEDULER_QUEUE": SCHEDULER_QUEUE}  # fmt: skip
    with stage.worker(env, f"select-worker-{batch}.log"):
        results = _run_selectors(stage, env, quota=-(-goals // SELECTORS), batch=batch)
    scheduler = Queue(SCHEDULER_QUEUE, connection=stage.redis)
    queued = len(scheduler)
    scheduler.delete(delete_jobs=True)
    emitted = [goal_id for r in results for goal_id in r["emitted"]]
    seconds = max(r["seconds"] for r in results)
    rate = len(emitted) / seconds if seconds else 0.0
    target = TARGETS["select_goals_per_s"]
    return {
        "selectors": SELECTORS, "goals_per_call": batch, "emitted": len(emitted),
        "seconds": round(seconds, 3),
        "goals_per_s": round(rate), "exactly_once": len(set(emitted)) == len(emitted),
        "jobs_queued": queued, "target_goals_per_s": target,
        # every goal asked for, each once, each with its job on the queue
        "met": rate >= target and goals <= len(set(emitted)) == len(emitted) == queued,
    }  # fmt: skip


def _run_selectors(
    stage: Stage, env: dict[str, str], quota: int, batch: int
) -> list[dict[str, Any]]:
    """Each selector's report ({"emitted": [ids], "seconds": s}), once all have ended."""
    go = f"{stage.keys.prefix}select-go"
    args = [sys.executable, "-m", "service.bench.selector", str(quota), str(batch), go]
    logs = [(stage.work / f"selector-{n}.log").open("wb") for n in range(SELECTORS)]
    try:
        procs = [
            subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=log) for log in logs
        ]
        time.sleep(START_DELAY_S)
        stage.redis.rpush(go, *["go"] * SELECTORS)
        outputs = [p.communicate(timeout=600)[0] for p in procs]
    finally:
        for log in logs:
            log.close()
    failed = [n for n, p in enumerate(procs) if p.returncode != 0]
    if failed:
        detail = (stage.work / f"selector-{failed[0]}.log").read_text()[-2000:]
        raise RuntimeError(f"bench: selector process {failed[0]} failed:\n{detail}")
    return [orjson.loads(out) for out in outputs]
