"""Tasks: what a selected goal becomes for the scheduler, and the verification gate.

    queued -> running -> succeeded -> verified
       \\          \\           \\-> rejected
        \\-> failed  \\-> failed

A failed or rejected task is a failed attempt: the goal returns to `adopted` for
another selection while attempts remain, and the next task supersedes it. The
goal's live tasks are those not superseded; `progress` = verified live / live.
A goal may be satisfied only when it has live tasks and every one is verified.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from service.domain import limits
from service.domain.errors import ErrorKind, FieldError, GoalStoreError, InvalidInput


class TaskState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    VERIFIED = "verified"
    REJECTED = "rejected"


# What the executor (or the sweep that notices a dead job) may report, and from where.
_REPORTS: dict[TaskState, frozenset[TaskState]] = {
    TaskState.RUNNING: frozenset({TaskState.QUEUED}),
    TaskState.SUCCEEDED: frozenset({TaskState.QUEUED, TaskState.RUNNING}),
    TaskState.FAILED: frozenset({TaskState.QUEUED, TaskState.RUNNING}),
}
# What a reviewer decides about a succeeded task.
_REVIEWS: dict[str, TaskState] = {"verify": TaskState.VERIFIED, "reject": TaskState.REJECTED}

SELECTION = "selection"  # a task's origin: a selection handed it to the scheduler
MANUAL = "manual"  # ...or a person recorded work done outside selection
FAILED_ATTEMPT = frozenset({TaskState.FAILED, TaskState.REJECTED})
NOT_EMITTED = "not_emitted"  # reason of a task whose job never reached the queue: no attempt
OPEN = frozenset({TaskState.QUEUED, TaskState.RUNNING})


@dataclass(frozen=True, slots=True)
class Task:
    task_id: str
    goal_id: str
    goal_version: int
    attempt: int
    state: TaskState
    trace_id: str
    span_id: str
    traceparent: str
    created_at: datetime
    updated_at: datetime
    evidence: Any = None
    reason: str | None = None
    superseded: bool = False
    version: int = 1  # +1 on every change: a review names the version it is based on
    origin: str = "selection"  # SELECTION, or MANUAL: work a person recorded by hand


@dataclass
class IllegalTaskTransition(GoalStoreError):
    kind = ErrorKind.CONFLICT
    code = "illegal-task-transition"
    title = "Illegal task transition"

    task_id: str
    current_state: str
    action: str

    def fields(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "current_state": self.current_state, "action": self.action}

    def __str__(self) -> str:
        return f"cannot {self.action} task {self.task_id!r}: it is {self.current_state}"


@dataclass
class TaskNotFound(GoalStoreError):
    kind = ErrorKind.NOT_FOUND
    code = "task-not-found"
    title = "Task not found"

    task_id: str

    def fields(self) -> dict[str, Any]:
        # seed 002's address error: the id names nothing this goal (or the store) has
        return {"task_id": self.task_id, "error_type": "address",
                "suggestions": ["list the goal's tasks (GET /v1/goals/{goal_id}/tasks) and "
                                "use one of their task_id values"]}  # fmt: skip

    def __str__(self) -> str:
        return f"task {self.task_id!r} does not exist"


@dataclass
class TaskVersionConflict(GoalStoreError):
    """A review based on a version of the task that is no longer its current one."""

    kind = ErrorKind.CONFLICT
    code = "task-version-conflict"
    title = "Task version conflict"

    goal_id: str
    task_id: str
    expected_version: int
    current_version: int

    def fields(self) -> dict[str, Any]:
        return {"goal_id": self.goal_id, "task_id": self.task_id,
                "expected_version": self.expected_version,
                "current_version": self.current_version}  # fmt: skip

    def __str__(self) -> str:
        return (f"task {self.task_id!r} is at version {self.current_version}, "
                f"not the expected {self.expected_version}")  # fmt: skip


def report(task: Task, state: TaskState, evidence: Any, reason: str | None, now: datetime) -> Task:
    """The task after the executor's report. Repeating the same report changes nothing."""
    if task.state == state:
        return task
    sources = _REPORTS.get(state)
    if sources is None or task.state not in sources:
        raise IllegalTaskTransition(task.task_id, task.state.value, f"report {state.value}")
    kept = task.evidence if evidence is None else evidence
    return replace(task, state=state, evidence=kept, reason=reason, updated_at=now,
                   version=task.version + 1)  # fmt: skip


def review(task: Task, action: str, reason: str | None, now: datetime) -> Task:
    """verify or reject a succeeded task. Repeating the same decision changes nothing."""
    target = _REVIEWS[action]
    if task.state == target:
        return task
    if task.state != TaskState.SUCCEEDED:
        raise IllegalTaskTransition(task.task_id, task.state.value, action)
    return replace(task, state=target, reason=reason, updated_at=now, version=task.version + 1)


def reviewed(task: Task, action: str) -> bool:
    """Whether the task already has the state `action` (verify, reject) leads to."""
    return task.state == _REVIEWS[action]


@dataclass(frozen=True)
class GateCounts:
    live: int
    verified: int

    @property
    def open(self) -> bool:
        return self.live > 0 and self.verified == self.live

    def as_dict(self) -> dict[str, int]:
        return {
            "live": self.live,
            "verified": self.verified,
            "unverified": self.live - self.verified,
        }


def gate(tasks: list[Task]) -> GateCounts:
    live = [t for t in tasks if not t.superseded]
    return GateCounts(len(live), sum(t.state == TaskState.VERIFIED for t in live))


def progress(tasks: list[Task]) -> float:
    counts = gate(tasks)
    return counts.verified / counts.live if counts.live else 0.0


# --- GoalFailure (seed 002) -------------------------------------------------------------

# validation: a result that is not one of the goal's type; execution: the work failed
# for good (attempts exhausted); address: what was named does not resolve (a report or
# review for a task id that is not the goal's, or not any) -- answered, never stored:
# there is no goal of its own to keep it on.
FAILURE_TYPES = ("validation", "execution", "address")


@dataclass(frozen=True)
class GoalFailure:
    """Why a goal did not get done, as seed 002 defines it: which kind of error, what
    happened, what to do about it (`suggestions`) and what a person debugging needs."""

    error_type: str  # one of FAILURE_TYPES
    detail: str
    at: str  # ISO 8601
    suggestions: tuple[str, ...] = ()
    debug_info: dict[str, Any] = field(default_factory=dict)
    errors: tuple[dict[str, Any], ...] | None = None  # validation: each field path + message
    task_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "error_type": self.error_type, "detail": self.detail,
            "suggestions": list(self.suggestions), "debug_info": self.debug_info, "at": self.at,
        }  # fmt: skip
        if self.errors is not None:
            body["errors"] = list(self.errors)
        if self.task_id is not None:
            body["task_id"] = self.task_id
        return body


def execution_failure(
    goal_id: str, last: Task, tasks: list[Task], max_attempts: int, at: str
) -> GoalFailure:
    """The goal's work failed for good: `last` was its last failed attempt of `tasks`."""
    failed = [t for t in attempts(tasks) if t.state in FAILED_ATTEMPT]
    debug = {
        "failed_attempts": len(failed), "max_attempts": max_attempts,
        "last_reason": last.reason, "task_id": last.task_id,
        "attempts": [{"task_id": t.task_id, "attempt": t.attempt, "state": t.state.value,
                      "reason": t.reason, "origin": t.origin} for t in failed],
    }  # fmt: skip
    return GoalFailure(
        error_type="execution",
        detail=f"{len(failed)} attempts failed (at most {max_attempts}); the last, task "
        f"{last.task_id}: {last.reason or last.state.value}",
        at=at,
        suggestions=(
            f"read why each attempt failed: GET /v1/goals/{goal_id}/tasks (reason, evidence)",
            "fix what made the executor fail, then propose the goal again (it is abandoned)",
            "if the failures were transient, raise GOALSTORE_MAX_ATTEMPTS",
        ),
        debug_info=debug,
        task_id=last.task_id,
    )


def attempts(tasks: list[Task]) -> list[Task]:
    """The selection's attempts: tasks it really handed over (not those whose job never
    reached the queue, nor the tasks people recorded by hand). What the attempt limit
    and the `goal_selected` outcomes count."""
    return [t for t in tasks if t.origin == SELECTION and not (
        t.state == TaskState.FAILED and (t.reason or "").startswith(NOT_EMITTED))]  # fmt: skip


def failed_attempts(tasks: list[Task]) -> int:
    return sum(t.state in FAILED_ATTEMPT for t in attempts(tasks))


class TaskPayload(BaseModel):
    """The scheduler job's one argument: everything an executor needs, as JSON.

    A published contract (GET /v1/schemas/task-payload, docs/executors.md): fields
    are added, never renamed or removed, within a `payload_version`."""

    model_config = ConfigDict(extra="forbid", title="GoalStore task payload")

    payload_version: Literal[1] = Field(default=1, description="This contract's version.")
    task_id: str = Field(description="The task (and RQ job) id; report it back with this.")
    goal_id: str
    goal_version: int = Field(ge=1, description="The goal's version when it was started.")
    attempt: int = Field(ge=1, description="1 for the first attempt, then 2, 3, ...")
    text: str = Field(description="What the goal asks for.")
    goal_type: str = Field(description="The type its result is validated against.")
    success_metrics: dict[str, Any] = Field(description="Named targets of the goal.")
    metadata: dict[str, Any] = Field(description="The goal's free-form metadata.")
    trace_id: str = Field(description="The trace of the selection that started the task.")
    traceparent: str = Field(description="W3C traceparent: log and propagate it.")


def checked_note(note: str | None) -> str | None:
    """A manual task's note, trimmed, or InvalidInput past limits.MAX_TEXT_LENGTH."""
    if note is None:
        return None
    note = note.strip()
    if len(note) > limits.MAX_TEXT_LENGTH:
        raise InvalidInput([FieldError(("note",), f"at most {limits.MAX_TEXT_LENGTH} characters")])
    return note or None
