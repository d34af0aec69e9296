"""The scheduler side (`goalstore scheduler`, the Procfile's `scheduler`; `goalstore selector`).

`goalstore scheduler` is a convenience, not a requirement: an RQ worker on the
scheduler queue (GOALSTORE_SCHEDULER_QUEUE, RQ's JSON serializer) that runs jobs in
its own process (workers/tasks.py: the executor, and the callbacks that record the
outcome) plus the dead-job sweeper (workers/sweeper.py). The stock `rq worker` runs
the same jobs and callbacks; the events worker sweeps too.

`goalstore selector` keeps the scheduler queue GOALSTORE_SCHEDULER_DEPTH deep by
selecting goals (the same selection as POST /v1/goals/select).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from redis.exceptions import RedisError
from rq.serializers import JSONSerializer

from service.commands import Context
from service.commands.kinds import SelectionMode
from service.commands.selection import SELECT_BATCH
from service.domain.errors import RedisRequired
from service.runtime import Services, connect_redis
from service.store.db import StoreBusy, StoreUnavailable
from workers import jobs
from workers.events import StoppableWorker, work_until_stopped
from workers.sweeper import Sweeper, scheduler_queue

# The names that jobs emitted before executors became plain functions call (their
# function, their failure callback); the sweeper records what such a job returns.
from workers.tasks import job_failed, reference_executor  # noqa: F401

log = logging.getLogger("goalstore.scheduler")


def run(services: Services, *, burst: bool = False) -> dict[str, Any]:
    settings = services.settings
    if settings.redis_url is None:
        raise RedisRequired("the scheduler worker")
    jobs.use(services)
    connection = connect_redis(settings.redis_url, blocking=True)
    queue = scheduler_queue(services, connection)
    stop = threading.Event()
    sweeper = Sweeper(services, queue, stop)

    def make() -> StoppableWorker:
        # No fork per job: jobs share this process's connections. A SIGKILL takes the
        # job down with it: a sweeper (this process's, once restarted, or the events
        # worker's) notices.
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
        jobs.use(None)
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
    selected = failures = 0
    while True:
        try:
            waiting = emitter.depth()
            if waiting < depth:
                # What the queue lacks, in one pass (one claim, one transaction, one MULTI),
                # at most SELECT_BATCH at a time so a deep queue fills in steps.
                want = min(depth - waiting, SELECT_BATCH)
                system = Context(actor="selector", admin=True)  # on anyone's goals
                selections = services.goalstore.select_many(system, want)
                emitted = sum(s.mode == SelectionMode.EMITTED for s in selections)
                selected += emitted
                failures = 0
                if emitted:
                    continue
        except (StoreUnavailable, StoreBusy, RedisError) as exc:
            # The database or Redis is away for a moment: nothing was started (the
            # selection's transaction rolled back whole); wait, then select again.
            if once:
                raise
            failures += 1
            wait_s = min(5.0, 0.1 * 2**failures)
            log.warning("selection failed (%s), retrying in %.1fs", exc, wait_s)
            time.sleep(wait_s)
            continue
        if once:
            return {"selected": selected, "waiting": emitter.depth()}
        time.sleep(0.5)
