"""The job side of a task: what any RQ worker runs for a scheduler job.

A scheduler job runs `run_task(payload)`: it reports the task running, then calls
the executor named in the job's meta (GOALSTORE_EXECUTOR when it was emitted), a
plain function `payload -> result` that needs no GoalStore import. The job's RQ
callbacks record the outcome, so the stock `rq worker` records it as `goalstore
scheduler` does:

- the executor returned: `succeeded`, with the returned mapping as evidence
  (anything else is kept as `{"result": value}`);
- it raised: `failed`, the reason `ExceptionType: message` (the traceback goes to the
  log, under the task's trace id, not to the ledger); RQ's timeout is such a failure;
- the job was stopped (`rq` stop command; the stock forking worker only): `failed`,
  reason `stopped`.

A worker that dies mid-job reports nothing: the sweeper (workers/sweeper.py, run by
the events worker and the scheduler) fails the task once its job is gone or its
worker dead, and records a finished job's result if its callback could not write.
Reports are idempotent: the same report twice changes nothing, and a report for a
superseded attempt is ignored. Callbacks reach the store through the
configuration of the process they run in (GOALSTORE_DATABASE, GOALSTORE_REDIS_URL).
"""

from __future__ import annotations

import importlib
import logging
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any

from redis import Redis
from rq.job import Job, get_current_job

from service.commands import Context
from service.domain.tasks import IllegalTaskTransition, TaskNotFound, TaskState
from service.logs import traced
from service.store.db import StoreBusy, StoreUnavailable
from service.tracing import new_trace, parse_traceparent
from workers import jobs

log = logging.getLogger("goalstore.tasks")
BUSY_RETRIES_S = (0.5, 1.0, 2.0)  # well within RQ's callback timeout (60 s)
ACTOR = "scheduler"


def job_context(meta: Mapping[str, Any] | None, actor: str = ACTOR) -> Context:
    """The task's own trace (from the job's meta), so its reports carry the trace id. The
    job acts for the system (admin rights: the goal's owner is someone else)."""
    trace = parse_traceparent((meta or {}).get("traceparent")) or new_trace()
    return Context(actor=actor, trace=trace, admin=True)


def _executor(path: str) -> Callable[[dict[str, Any]], Any]:
    module, _, name = path.rpartition(".")
    function: Callable[[dict[str, Any]], Any] = getattr(importlib.import_module(module), name)
    return function


def _report(job: Job, state: TaskState, **fields: Any) -> None:
    """Report the job's task; a report the task no longer takes is logged, not raised
    (a callback racing the sweeper, a retried callback). A store busy or away for a
    moment is tried again a few times; if it stays so the sweeper records the job's
    outcome."""
    ctx = job_context(job.meta)
    with traced(ctx.trace.trace_id):
        for wait_s in BUSY_RETRIES_S:
            try:
                jobs.services().goalstore.report_task(ctx, job.id, state, **fields)
                return
            except (IllegalTaskTransition, TaskNotFound) as exc:
                log.warning("report %s of task %s not applied: %s", state.value, job.id, exc)
                return
            except (StoreBusy, StoreUnavailable) as exc:
                log.warning("report %s of task %s: %s; again in %.1f s", state.value, job.id,
                            exc, wait_s)  # fmt: skip
                time.sleep(wait_s)
        log.error("report %s of task %s left to the sweeper: the store stayed busy or away",
                  state.value, job.id)  # fmt: skip


# --- what RQ runs -----------------------------------------------------------------------


def run_task(payload: dict[str, Any]) -> Any:
    """The scheduler job: report running, run the executor, return its evidence."""
    job = get_current_job()
    meta = job.meta if job else {}
    ctx = job_context(meta)
    path = meta.get("executor") or jobs.services().settings.executor
    with traced(ctx.trace.trace_id):
        jobs.services().goalstore.report_task(ctx, payload["task_id"], TaskState.RUNNING)
        started = {"task_id": payload["task_id"], "goal_id": payload["goal_id"], "executor": path}
        log.info("task started", extra=started)
        result = _executor(path)(payload)
        log.info("task finished", extra={"task_id": payload["task_id"], "state": "succeeded"})
    return dict(result) if isinstance(result, Mapping) else {"result": result}


def job_succeeded(job: Job, connection: Redis, result: Any, *args: Any, **kwargs: Any) -> None:
    """RQ's success callback: the executor returned; its result is the evidence."""
    _report(job, TaskState.SUCCEEDED, evidence=result)


def job_failed(job: Job, connection: Redis, exc_type: Any, exc_value: Any, tb: Any) -> None:
    """RQ's failure callback: the executor raised or timed out, or RQ found the job
    abandoned. The reason is the exception's type and message; the traceback is logged."""
    name = getattr(exc_type, "__name__", str(exc_type))
    reason = f"{name}: {exc_value}"[:2_000]
    with traced(job_context(job.meta).trace.trace_id):
        log.warning("task %s failed: %s", job.id, reason, exc_info=(exc_type, exc_value, tb))
    _report(job, TaskState.FAILED, reason=reason)


def job_stopped(job: Job, connection: Redis, *args: Any, **kwargs: Any) -> None:
    """RQ's stopped callback: someone stopped the job (`rq` stop command): failed."""
    _report(job, TaskState.FAILED, reason="stopped")


# --- for executors that want it -----------------------------------------------------------


def report_progress(note: str, fraction: float | None = None) -> None:
    """From inside an executor: record how a long task is going (`task_progress_reported`,
    under the job's trace). Optional; does nothing outside a scheduler job."""
    job = get_current_job()
    if job is None:
        return
    ctx = job_context(job.meta)
    with traced(ctx.trace.trace_id):
        jobs.services().goalstore.report_progress(ctx, job.id, note, fraction)


# --- the reference executor -----------------------------------------------------------------


def reference_executor(payload: dict[str, Any]) -> dict[str, Any]:
    """The default GOALSTORE_EXECUTOR: a stand-in that records what it was asked.

    A goal's `metadata.executor` may ask for `{"sleep_s": n}` (a long task) or
    `{"fail": "why"}` (a failed attempt), which the demos and tests use."""
    asked = (payload.get("metadata") or {}).get("executor") or {}
    time.sleep(float(asked.get("sleep_s", 0)))
    if asked.get("fail"):
        raise RuntimeError(str(asked["fail"]))
    return {
        "summary": f"executed: {payload['text']}",
        "executor": "reference",
        "host": socket.gethostname(),
        "trace_id": payload["trace_id"],
        "goal_version": payload["goal_version"],
    }
