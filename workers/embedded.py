"""The embedded mode: `goalstore serve` with GOALSTORE_REDIS_URL unset.

One process holds everything a newcomer needs to see goals ranked and selected:
an in-process Redis-compatible server (fakeredis, Lua included), and the same
workers the Procfile runs, as threads of the API process:

- the outbox relay, RQ's cron scheduler (the periodic refresh) and an RQ worker
  on the events queue (workers/events.py);
- an RQ worker on the scheduler queue running the tasks (workers/tasks.py), and the
  dead-job sweeper (workers/sweeper.py).

Nothing differs from production but where Redis lives and that the RQ workers run
in threads (so the job timeout uses a timer, not SIGALRM, and the API process keeps
the signals). The embedded Redis forgets everything when the process stops; SQLite
keeps every goal and event, and the next start rebuilds the ranking from it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fakeredis
from redis.exceptions import RedisError
from rq import Queue
from rq.serializers import JSONSerializer
from rq.timeouts import TimerDeathPenalty

from service.runtime import Services
from workers import jobs
from workers.events import Cron, Loop, Relay, StoppableWorker
from workers.sweeper import Sweeper, scheduler_queue

log = logging.getLogger("goalstore.embedded")

BANNER = (
    "EMBEDDED MODE: GOALSTORE_REDIS_URL is unset, so Redis is an in-process fakeredis and "
    "the events worker and the scheduler worker run as threads of this process. Goals and "
    "events are kept in SQLite at {database}; the ranking cache and the queues live in "
    "memory and are rebuilt at the next start. For production set GOALSTORE_REDIS_URL "
    "(e.g. redis://127.0.0.1:6379/0) and run the Procfile's web, worker and scheduler."
)


def embedded_redis() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(server=fakeredis.FakeServer())


class ThreadWorker(StoppableWorker):
    """An RQ SimpleWorker that runs in a thread other than the main one."""

    death_penalty_class = TimerDeathPenalty  # SIGALRM only reaches the main thread

    def _install_signal_handlers(self) -> None:
        """The API server owns SIGINT/SIGTERM; the thread stops with the process."""


class Drain(Loop):
    """Runs what is queued, then waits a little: a burst worker, again and again."""

    def __init__(
        self, name: str, queue: Queue, make: Callable[[], ThreadWorker], stop: threading.Event
    ) -> None:
        super().__init__(name, stop)
        self.queue, self.make = queue, make

    def step(self) -> float:
        if self.queue.count:  # a worker (its registration, its Redis keys) only for work
            self.make().work(burst=True, logging_level="WARNING")
        return 0.1


class Embedded:
    """The embedded workers of one API process."""

    def __init__(self, services: Services) -> None:
        connection = services.require_redis("the embedded workers")
        self.services = services
        self.stop_event = threading.Event()
        settings = services.settings
        events_queue = Queue(settings.events_queue, connection=connection)
        tasks_queue = scheduler_queue(services, connection)
        stop = self.stop_event

        def events_worker() -> ThreadWorker:
            return ThreadWorker([events_queue], connection=connection)

        def tasks_worker() -> ThreadWorker:
            return ThreadWorker([tasks_queue], connection=connection, serializer=JSONSerializer)

        self.threads: list[threading.Thread] = [
            Relay(services, events_queue, stop),
            Cron(connection, settings.events_queue, settings.tick_seconds, stop),
            Drain("events-worker", events_queue, events_worker, stop),
            Drain("scheduler-worker", tasks_queue, tasks_worker, stop),
            Sweeper(services, tasks_queue, stop),
        ]

    def start(self) -> dict[str, Any]:
        """Rebuild the (empty) cache from SQLite and start the workers."""
        log.warning(BANNER.format(database=Path(self.services.settings.database).resolve()))
        jobs.use(self.services)
        try:
            summary = self.services.goalstore.rebuild_cache()
        except RedisError as exc:  # pragma: no cover - fakeredis does not go away
            log.warning("embedded cache rebuild failed (%s); the refresh retries", exc)
            summary = {}
        for thread in self.threads:
            thread.start()
        return summary

    def stop(self) -> None:
        self.stop_event.set()
        for thread in self.threads:
            thread.join(timeout=5)
        jobs.use(None)
