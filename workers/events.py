"""The events worker (`goalstore worker`, the Procfile's `worker`).

One process runs three things:

- an RQ worker on the `goalstore-events` queue (GOALSTORE_EVENTS_QUEUE). It is a
  SimpleWorker (no fork per job): a job is a *batch* of events, applied with one
  SQLite read and one Redis pipeline, and forking for each would cost more than
  the work;
- the outbox relay, a thread that polls the outbox every GOALSTORE_RELAY_INTERVAL_MS
  and enqueues what it finds in batches of up to GOALSTORE_EVENTS_BATCH events, and
  that releases claims never applied (GOALSTORE_REDELIVER_AFTER_S) so they are sent
  again;
- RQ's own cron scheduler, in a thread, enqueuing `refresh` every
  GOALSTORE_TICK_SECONDS: urgencies move with time, and a Redis that came back
  empty is rebuilt whole.

Jobs use RQ's default serializer: the cron scheduler enqueues with it and cannot be
told otherwise, and one worker reads one format. The jobs carry only ledger seqs,
event types and ids; the scheduler queue (selection) uses the JSON serializer.

The job functions also run under a plain `rq worker goalstore-events`: they build
their services from the environment, as every entry point does.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue
from rq.cron import CronScheduler
from rq.worker import SimpleWorker

from service.domain.errors import RedisRequired
from service.domain.events import EventRef
from service.runtime import Services, connect_redis
from service.usecases import GoalStore
from workers import jobs
from workers.sweeper import Sweeper, scheduler_queue

JOB_TIMEOUT_S = 600  # a rebuild of 100k goals takes seconds; leave room on a slow disk
RESULT_TTL_S = 300  # long enough for `rq info` and a look at the last results

log = logging.getLogger("goalstore.worker")


def _current() -> GoalStore:
    return jobs.services().goalstore


# --- job functions (what the queue names) -------------------------------------------


def apply_batch(events: list[list[Any]]) -> dict[str, Any]:
    return _current().apply_events([EventRef.from_job_arg(e) for e in events])


def refresh() -> dict[str, Any]:
    return _current().refresh_cache()


def enqueue_batch(queue: Queue, events: list[EventRef]) -> None:
    traces = sorted({e.trace_id for e in events if e.trace_id})
    queue.enqueue(
        apply_batch,
        [e.as_job_arg() for e in events],
        job_timeout=JOB_TIMEOUT_S,
        result_ttl=RESULT_TTL_S,
        description=f"apply events {events[0].seq}..{events[-1].seq} ({len(events)})",
        meta={"first_seq": events[0].seq, "last_seq": events[-1].seq, "trace_ids": traces[:50]},
    )


# --- the process ----------------------------------------------------------------------


class StoppableWorker(SimpleWorker):
    """RQ's SimpleWorker, remembering whether it was asked to stop (SIGTERM, SIGINT), so
    that `work_until_stopped` tells a shutdown from a worker that quit because Redis
    went away."""

    stop_asked = False

    def request_stop(self, signum: Any, frame: Any) -> None:
        self.stop_asked = True
        super().request_stop(signum, frame)  # type: ignore[no-untyped-call]


def work_until_stopped(make: Callable[[], StoppableWorker], logging_level: str) -> None:
    """Run RQ workers one after another until one is asked to stop: a worker whose Redis
    went away quits, and a new one starts once Redis answers again."""
    while True:
        worker = make()
        try:
            worker.work(logging_level=logging_level)
        except RedisError as exc:
            log.warning("RQ worker stopped: %s", exc)
        if worker.stop_asked:
            return
        log.warning("RQ worker quit (Redis gone?); starting a new one")
        time.sleep(1.0)


class Loop(threading.Thread):
    """A daemon thread repeating `step` until stopped; Redis or SQLite errors back off."""

    def __init__(self, name: str, stop: threading.Event) -> None:
        super().__init__(name=name, daemon=True)
        self.stop = stop

    def step(self) -> float:
        """One round; returns how long to wait before the next."""
        raise NotImplementedError

    def run(self) -> None:
        failures = 0
        while not self.stop.is_set():
            try:
                wait = self.step()
                failures = 0
            except Exception as exc:  # keep the thread alive: the outbox keeps the events
                failures += 1
                wait = min(5.0, 0.1 * 2**failures)
                log.warning("%s failed (%s), retrying in %.1fs", self.name, exc, wait)
            self.stop.wait(wait)


class Relay(Loop):
    def __init__(self, services: Services, queue: Queue, stop: threading.Event) -> None:
        super().__init__("outbox-relay", stop)
        self.services, self.queue = services, queue
        self.next_sweep = 0.0

    def step(self) -> float:
        settings, gs = self.services.settings, self.services.goalstore
        if time.monotonic() >= self.next_sweep:
            swept = gs.redeliver_stale()
            if swept["released"]:
                log.warning("redelivering %d events never applied", swept["released"])
            self.next_sweep = time.monotonic() + min(5.0, settings.redeliver_after_s / 2)
        sent = gs.relay_outbox(lambda events: enqueue_batch(self.queue, events))
        return 0.0 if sent >= gs.policy.relay_limit else settings.relay_interval_ms / 1000


class Cron(Loop):
    """RQ's CronScheduler, driven from a thread (its own start() wants the main thread)."""

    def __init__(
        self, connection: Redis, queue: str, tick_seconds: int, stop: threading.Event
    ) -> None:
        super().__init__("cron", stop)
        self.scheduler = CronScheduler(
            connection, name=f"goalstore:{socket.gethostname()}:{os.getpid()}"
        )
        self.scheduler.register(
            refresh, queue, interval=tick_seconds, job_timeout=JOB_TIMEOUT_S,
            result_ttl=RESULT_TTL_S,
        )  # fmt: skip
        self.registered = False

    def step(self) -> float:
        if not self.registered:
            self.scheduler.register_birth()
            self.registered = True
        if self.scheduler.enqueue_jobs():
            self.scheduler.save()
        self.scheduler.heartbeat()
        return max(0.05, min(self.scheduler.calculate_sleep_interval(), 5.0))

    def run(self) -> None:
        try:
            super().run()
        finally:
            if self.registered:
                with contextlib.suppress(RedisError):
                    self.scheduler.register_death()


def run(services: Services, *, burst: bool = False) -> dict[str, Any]:
    """Rebuild the cache, then relay and apply events until stopped.

    `burst`: relay and apply everything pending, then return (for catch-up and tests).
    """
    settings, gs = services.settings, services.goalstore
    gs.require_cache("the events worker")
    if settings.redis_url is None:  # an embedded Redis has no URL a second client can use
        raise RedisRequired("the events worker process")
    # SimpleWorker runs jobs in this process, and the sweeper may run the failure
    # callbacks of dead scheduler jobs: both share this process's connections.
    jobs.use(services)
    connection = connect_redis(settings.redis_url, blocking=True)
    queue = Queue(settings.events_queue, connection=connection)
    try:
        summary = gs.rebuild_cache()
        log.info("ranking cache rebuilt from SQLite", extra={"rebuild": summary})
    except RedisError as exc:
        log.warning("Redis does not answer (%s): the cache is rebuilt once it does", exc)
    if burst:
        return _burst(services, queue, connection)
    stop = threading.Event()
    threads = [
        Relay(services, queue, stop),
        Cron(connection, settings.events_queue, settings.tick_seconds, stop),
        # Every deployment runs an events worker, whatever runs the scheduler's jobs (the
        # stock `rq worker` has no sweeper): dead jobs are noticed here.
        Sweeper(services, scheduler_queue(services, connection), stop),
    ]
    for thread in threads:
        thread.start()
    try:
        work_until_stopped(lambda: StoppableWorker([queue], connection=connection),
                           settings.log_level)  # fmt: skip
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=5)
        jobs.use(None)
    return {"stopped": True}


def _burst(services: Services, queue: Queue, connection: Redis) -> dict[str, Any]:
    relayed = 0
    while True:
        sent = services.goalstore.relay_outbox(lambda events: enqueue_batch(queue, events))
        relayed += sent
        StoppableWorker([queue], connection=connection).work(
            burst=True, logging_level=services.settings.log_level
        )
        if sent == 0:
            break
    jobs.use(None)
    return {"relayed": relayed, **services.goalstore.cache_backlog()}
