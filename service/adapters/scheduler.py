"""The scheduler's queue: one RQ job per task (DESIGN §7).

Job id = task id; RQ's JSON serializer, so `redis-cli HGET rq:job:<id> meta` and the
args are readable; `meta` carries `trace_id`, `span_id`, `traceparent` and the
configured executor (an import path). The job runs `workers.tasks.run_task` with the
task payload, which calls that executor; the job's success, failure and stopped
callbacks record the outcome, so any RQ worker with GoalStore installed can run it. Jobs are
written and queued in one MULTI (one round trip, however many). A task id is fresh
for every start and emitted once: the exactly-once guarantee is SQLite's (a goal
version starts once), so RQ's `unique=True` (a Lua check and a round trip per job,
outside the MULTI) would add nothing.
"""

from __future__ import annotations

from typing import Any

from redis import Redis
from rq import Callback, Queue
from rq.serializers import JSONSerializer

from service.domain.tasks import Task

# Names, not imports: the web process that emits does not load the worker side.
RUN_TASK = "workers.tasks.run_task"
ON_SUCCESS = Callback("workers.tasks.job_succeeded")
ON_FAILURE = Callback("workers.tasks.job_failed")  # the executor raised, or timed out
ON_STOPPED = Callback("workers.tasks.job_stopped")


class RqEmitter:
    def __init__(self, redis: Redis, queue: str, executor: str, job_timeout_s: int) -> None:
        self.queue = Queue(queue, connection=redis, serializer=JSONSerializer)
        self.executor, self.job_timeout_s = executor, job_timeout_s

    def emit(self, jobs: list[tuple[Task, dict[str, Any]]]) -> None:
        """One job per (task, payload), all written and queued in one MULTI."""
        pipe = self.queue.connection.pipeline()
        for task, payload in jobs:
            self.queue.enqueue(
                RUN_TASK,
                payload,
                pipeline=pipe,
                job_id=task.task_id,
                meta={"trace_id": task.trace_id, "span_id": task.span_id,
                      "traceparent": task.traceparent, "goal_id": task.goal_id,
                      "executor": self.executor},
                job_timeout=self.job_timeout_s,
                result_ttl=24 * 3600,
                failure_ttl=7 * 24 * 3600,
                on_success=ON_SUCCESS,
                on_failure=ON_FAILURE,
                on_stopped=ON_STOPPED,
                description=f"goal {task.goal_id} attempt {task.attempt}",
            )  # fmt: skip
        pipe.execute()

    def depth(self) -> int:
        return len(self.queue)
