"""The scheduler side (`goalstore scheduler`, the Procfile's `scheduler`; `goalstore selector`).

`goalstore scheduler` is an RQ worker on the scheduler queue (GOALSTORE_SCHEDULER_QUEUE,
RQ's JSON serializer). Each job runs the configured executor (GOALSTORE_EXECUTOR) with
the task payload; the reference executor below reports the task running, then
succeeded with its evidence, through the same commands the REST API calls. A thread of
the same process notices RQ-level failures: a job that raised or timed out (RQ's
failure callback), and a job whose worker died (its registry entry expired, or its
process is gone from this host): the task is reported failed and the goal retried.

`goalstore selector` keeps the scheduler queue GOALSTORE_SCHEDULER_DEPTH deep by
selecting goals (the same selection as POST /v1/goals/select).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import Any

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus, get_current_job
from rq.registry import StartedJobRegistry
from rq.serializers import JSONSerializer
from rq.worker import Worker

from service.commands import Context
from service.commands.kinds import SelectionMode
from service.commands.selection import SELECT_BATCH
from service.domain.errors import RedisRequired
from service.domain.tasks import TaskState
from service.logs import traced
from service.runtime import Services, build_services, connect_redis
from service.tracing import new_trace, parse_traceparent
from workers.events import StoppableWorker, work_until_stopped

log = logging.getLogger("goalstore.scheduler")
ACTOR = "scheduler"

_services: Services | None = None


def use(services: Services | None) -> None:
    global _services
    _services = services


def _current() -> Services:
    global _services
    if _services is None:
        _services = build_services()
    return _services


def _job_context(meta: dict[str, Any] | None, actor: str = ACTOR) -> Context:
    """The task's own trace (from the job's meta), so its report carries the trace id."""
    trace = parse_traceparent((meta or {}).get("traceparent")) or new_trace()
    return Context(actor=actor, trace=trace)


# --- job functions ---------------------------------------------------------------------


def reference_executor(payload: dict[str, Any]) -> dict[str, Any]:
    """Run a task: report it running, do the work, report it succeeded with evidence.

    The work is a stand-in: it records what it was asked and when. A goal's
    `metadata.executor` may ask for `{"sleep_s": n}` (a long task) or `{"fail": "why"}`
    (a failed attempt), which the demos and tests use.
    """
    job = get_current_job()
    ctx = _job_context(job.meta if job else None)
    with traced(ctx.trace.trace_id):
        log.info("task started", extra={"task_id": payload["task_id"],
                                        "goal_id": payload["goal_id"]})  # fmt: skip
        outcome = _execute(ctx, payload)
        log.info("task finished", extra=outcome)
    return outcome


def _execute(ctx: Context, payload: dict[str, Any]) -> dict[str, Any]:
    gs = _current().goalstore
    task_id = payload["task_id"]
    gs.report_task(ctx, task_id, TaskState.RUNNING)
    asked = (payload.get("metadata") or {}).get("executor") or {}
    time.sleep(float(asked.get("sleep_s", 0)))
    if asked.get("fail"):
        gs.report_task(ctx, task_id, TaskState.FAILED, reason=str(asked["fail"]))
        return {"task_id": task_id, "state": "failed"}
    evidence = {
        "summary": f"executed: {payload['text']}",
        "executor": "reference",
        "host": socket.gethostname(),
        "trace_id": ctx.trace.trace_id,
        "goal_version": payload["goal_version"],
    }
    gs.report_task(ctx, task_id, TaskState.SUCCEEDED, evidence=evidence)
    return {"task_id": task_id, "state": "succeeded"}


def job_failed(job: Job, connection: Redis, exc_type: Any, exc_value: Any, tb: Any) -> None:
    """RQ's failure callback: the job raised, timed out, or was found abandoned."""
    gs = _current().goalstore
    reason = f"rq: {getattr(exc_type, '__name__', exc_type)}: {exc_value}"[:2_000]
    ctx = _job_context(job.meta)
    with traced(ctx.trace.trace_id):
        log.warning("task %s failed in RQ: %s", job.id, reason)
        gs.report_task(ctx, job.id, TaskState.FAILED, reason=reason)


# --- noticing dead jobs ------------------------------------------------------------------


class RqJobProbe:
    """What RQ knows of a task's job: failed, stopped, gone, or run by a dead process."""

    def __init__(self, connection: Redis) -> None:
        self.connection = connection

    def status(self, task_id: str) -> str | None:
        try:
            job = Job.fetch(task_id, connection=self.connection, serializer=JSONSerializer)
        except NoSuchJobError:
            return "missing"
        status = job.get_status()
        if status in (JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED):
            return str(status.value)
        if status == JobStatus.STARTED and job.worker_name and self._dead(job.worker_name):
            return "abandoned (its worker process is gone)"
        return None

    def _dead(self, worker_name: str) -> bool:
        """Whether the worker ran on this host and its process no longer exists."""
        key = Worker.redis_worker_namespace_prefix + worker_name
        found = Worker.find_by_key(key, connection=self.connection)
        if found is None:
            return True  # its registration expired: it stopped heart-beating long ago
        if found.hostname != socket.gethostname() or not found.pid:
            return False  # another host: RQ's own abandoned-job handling covers it
        try:
            os.kill(found.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False


class Sweeper(threading.Thread):
    def __init__(self, services: Services, queue: Queue, stop: threading.Event) -> None:
        super().__init__(name="task-sweeper", daemon=True)
        self.services, self.queue, self.stop = services, queue, stop
        self.probe = RqJobProbe(queue.connection)

    def sweep(self) -> int:
        # Jobs whose worker stopped heart-beating: RQ runs their failure callback.
        StartedJobRegistry(queue=self.queue).cleanup()
        failed = self.services.goalstore.sweep_tasks(Context(actor=ACTOR), self.probe)
        for task in failed:
            log.warning("task %s of goal %s failed: %s", task.task_id, task.goal_id, task.reason)
        return len(failed)

    def run(self) -> None:
        interval = max(1.0, self.services.settings.task_stale_s / 4)
        while not self.stop.wait(interval):
            try:
                self.sweep()
            except (RedisError, OSError) as exc:
                log.warning("task sweep failed (%s); retrying", exc)


# --- the processes -----------------------------------------------------------------------


def scheduler_queue(services: Services, connection: Redis) -> Queue:
    return Queue(services.settings.scheduler_queue, connection=connection,
                 serializer=JSONSerializer)  # fmt: skip


def run(services: Services, *, burst: bool = False) -> dict[str, Any]:
    settings = services.settings
    if settings.redis_url is None:
        raise RedisRequired("the scheduler worker")
    use(services)
    connection = connect_redis(settings.redis_url, blocking=True)
    queue = scheduler_queue(services, connection)
    stop = threading.Event()
    sweeper = Sweeper(services, queue, stop)

    def make() -> StoppableWorker:
        # No fork per job: the executor reports through this process's SQLite connection
        # (a connection must not cross a fork). A SIGKILL takes the job down with it:
        # the sweeper of another scheduler process notices.
        return StoppableWorker([queue], connection=connection, serializer=JSONSerializer)

    try:
        sweeper.sweep()
        if burst:
            make().work(burst=True, logging_level=settings.log_level)
            return {"swept": sweeper.sweep()}
        sweeper.start()
        work_until_stopped(make, settings.log_level)
    finally:
        stop.set()
        use(None)
    return {"stopped": True}


def top_up(services: Services, *, once: bool = False) -> dict[str, int]:
    """Keep the scheduler queue GOALSTORE_SCHEDULER_DEPTH deep (`goalstore selector`)."""
    depth = services.settings.scheduler_depth
    emitter = services.emitter
    if emitter is None:
        raise RedisRequired("the selector")
    if depth <= 0:
        raise ValueError("the selector needs GOALSTORE_SCHEDULER_DEPTH > 0")
    flags = services.selector.flags
    if not flags.system or flags.shadow:
        # Shadow is for the scheduler's own requests (the would-be pick, counted once per
        # request); a loop shadow-selecting the same goal every half second would only
        # inflate goal_selected_shadow_total. Idle until restarted with the flags on.
        log.warning("selector idle: it hands goals over only with GOAL_SYSTEM=on and "
                    "GOAL_SHADOW=off")  # fmt: skip
        if once:
            return {"selected": 0, "waiting": emitter.depth()}
        while True:
            time.sleep(3600)
    selected = 0
    while True:
        waiting = emitter.depth()
        if waiting < depth:
            # What the queue lacks, in one pass (one claim, one transaction, one MULTI),
            # at most SELECT_BATCH at a time so a deep queue fills in steps.
            want = min(depth - waiting, SELECT_BATCH)
            selections = services.goalstore.select_many(Context(actor="selector"), want)
            emitted = sum(s.mode == SelectionMode.EMITTED for s in selections)
            selected += emitted
            if emitted:
                continue
        if once:
            return {"selected": selected, "waiting": emitter.depth()}
        time.sleep(0.5)
