"""Select + emit with concurrent selector processes (`python -m service.bench.selector`),
started together on one signal once every one has said it is connected, until the plan's
goals are emitted: one goal per call (POST /v1/goals/select, `goalstore select`), then a
batch per call (what `goalstore selector` does to top the scheduler queue up), with one
events worker running under both. Met only at the target rate with every goal emitted
exactly once, each with its job on the queue."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

import orjson
from rq import Queue

from service.bench.plan import SCHEDULER_QUEUE, SELECTORS, TARGETS
from service.bench.processes import wait_for
from service.bench.stage import Stage
from service.bench.stats import progress
from service.commands.selection import SELECT_BATCH

READY_TIMEOUT_S = 120  # for every selector to import, build its services and connect


def measure(stage: Stage, goals: int) -> dict[str, Any]:
    """Both ways of selecting, `goals` each: {"one_per_call": …, "selector_batches": …}."""
    env = {**stage.env, "GOAL_SYSTEM": "on", "GOAL_SHADOW": "off",
           "GOALSTORE_SCHEDULER_QUEUE": SCHEDULER_QUEUE}  # fmt: skip
    with stage.worker(env, "select-worker.log"):
        one = _measure(stage, env, goals, 1)
        # the second run starts on a ranking with the first one's events applied
        wait_for("the first selection's events", stage.applied, seconds=120)
        return {"one_per_call": one, "selector_batches": _measure(stage, env, goals, SELECT_BATCH)}


def _measure(stage: Stage, env: dict[str, str], goals: int, batch: int) -> dict[str, Any]:
    progress(
        f"{stage.backend}: select: {SELECTORS} selector processes emit {goals} goals, "
        f"{batch} per call"
    )
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
    go, ready = f"{stage.keys.prefix}select-go", f"{stage.keys.prefix}select-ready"
    stage.redis.delete(go, ready)
    args = [sys.executable, "-m", "service.bench.selector", str(quota), str(batch), go,
            "--ready", ready]  # fmt: skip
    logs = [(stage.work / f"selector-{batch}-{n}.log").open("wb") for n in range(SELECTORS)]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for log in logs:
            procs.append(subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=log))
        _wait_ready(stage, procs, ready, batch)
        stage.redis.rpush(go, *["go"] * SELECTORS)
        outputs = [p.communicate(timeout=600)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for log in logs:
            log.close()
    failed = [n for n, p in enumerate(procs) if p.returncode != 0]
    if failed:
        raise RuntimeError(
            f"bench: selector process {failed[0]} failed:\n{_log(stage, batch, failed[0])}"
        )
    return [orjson.loads(out) for out in outputs]


def _wait_ready(stage: Stage, procs: list[subprocess.Popen[bytes]], ready: str, batch: int) -> None:
    """Until every selector has said it is connected; a selector that ended before is
    a failure (its log says why)."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while stage.redis.llen(ready) < len(procs):
        ended = [n for n, p in enumerate(procs) if p.poll() is not None]
        if ended:
            raise RuntimeError(
                f"bench: selector process {ended[0]} ended before the start:\n"
                f"{_log(stage, batch, ended[0])}"
            )
        if time.monotonic() > deadline:
            raise RuntimeError("bench: timed out waiting for the selectors to connect")
        time.sleep(0.02)


def _log(stage: Stage, batch: int, n: int) -> str:
    return (stage.work / f"selector-{batch}-{n}.log").read_text(errors="replace")[-2000:]
