"""Noticing dead jobs: a task whose job failed, was stopped, vanished, or whose worker
died is reported failed, so its goal is retried (DESIGN §3.2).

RQ's callbacks record what a living worker saw; this covers what no callback can
(a worker SIGKILLed mid-job, a job lost with Redis). The sweeper runs in the events
worker (every deployment has one) and in `goalstore scheduler`; several at once are
harmless, since a report applies once.
"""

from __future__ import annotations

import logging
import os
import socket
import threading

from redis import Redis
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry
from rq.serializers import JSONSerializer
from rq.worker import Worker

from service.commands import Context
from service.commands.tasks import JobOutcome
from service.domain.tasks import TaskState
from service.runtime import Services

log = logging.getLogger("goalstore.sweeper")
ACTOR = "scheduler"


def _failed(why: str) -> JobOutcome:
    return JobOutcome(TaskState.FAILED, reason=f"rq job {why}")


def scheduler_queue(services: Services, connection: Redis) -> Queue:
    return Queue(services.settings.scheduler_queue, connection=connection,
                 serializer=JSONSerializer)  # fmt: skip


class RqJobProbe:
    """What RQ knows of a task's job: finished, failed, stopped, gone, or run by a dead
    process."""

    def __init__(self, connection: Redis) -> None:
        self.connection = connection

    def outcome(self, task_id: str) -> JobOutcome | None:
        try:
            job = Job.fetch(task_id, connection=self.connection, serializer=JSONSerializer)
        except NoSuchJobError:
            return _failed("missing")
        status = job.get_status()
        if status == JobStatus.FINISHED:  # its success callback did not reach the store
            return JobOutcome(TaskState.SUCCEEDED, evidence=job.return_value())
        if status in (JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED):
            return _failed(str(status.value))
        if status == JobStatus.STARTED and job.worker_name and self._dead(job.worker_name):
            return _failed("abandoned (its worker process is gone)")
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
        system = Context(actor=ACTOR, admin=True)  # the system acts, on anyone's goals
        reported = self.services.goalstore.sweep_tasks(system, self.probe)
        for task in reported:
            log.warning("task %s of goal %s reported %s by the sweep: %s", task.task_id,
                        task.goal_id, task.state.value, task.reason)  # fmt: skip
        return len(reported)

    def run(self) -> None:
        interval = max(1.0, self.services.settings.task_stale_s / 4)
        while not self.stop.wait(interval):
            try:
                self.sweep()
            except Exception:  # a store or Redis hiccup must not end the only sweeper
                log.exception("task sweep failed; retrying in %.0f s", interval)
