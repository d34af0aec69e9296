"""Tasks after selection: reports, reviews, the verification gate, and dead jobs.

A failed or rejected task is a failed attempt: the goal goes back to `adopted`
(another selection may start it) until `max_attempts` have failed; then it is
abandoned. Satisfying or abandoning a goal that was executed records an outcome
of the `goal_selected` decision.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from service.commands.base import Context, authorize, live_goal, record_event
from service.commands.goals import move_goal
from service.commands.outcomes import selection_outcome
from service.domain.errors import (
    ErrorKind,
    FieldError,
    GoalStoreError,
    IllegalTransition,
    InvalidInput,
    VersionConflict,
)
from service.domain.goal import Goal, GoalState
from service.domain.goal_types import validate_result
from service.domain.tasks import (
    OPEN,
    GateCounts,
    Task,
    TaskNotFound,
    TaskState,
    failed_attempts,
    gate,
    report,
    review,
)
from service.domain.timefmt import format_ts
from service.metrics import RECORDER, TASKS_FINISHED
from service.store import tasks as task_table
from service.store.db import Connection, Database
from service.tracing import parse_traceparent

log = logging.getLogger(__name__)


@dataclass
class GateClosed(GoalStoreError):
    kind = ErrorKind.CONFLICT
    code = "gate-closed"
    title = "Verification gate closed"

    goal_id: str
    counts: GateCounts

    def fields(self) -> dict[str, Any]:
        return {"goal_id": self.goal_id, **self.counts.as_dict()}

    def __str__(self) -> str:
        c = self.counts
        if not c.live:
            return f"goal {self.goal_id!r} has no task to verify"
        return f"goal {self.goal_id!r}: {c.verified} of {c.live} live tasks verified"


@dataclass
class ResultInvalid(GoalStoreError):
    """The result does not validate against the goal's type (a GoalFailure)."""

    kind = ErrorKind.INVALID
    code = "invalid-result"
    title = "Invalid result (GoalFailure)"

    goal_id: str
    goal_type: str
    errors: list[FieldError]

    def fields(self) -> dict[str, Any]:
        return {"goal_id": self.goal_id, "goal_type": self.goal_type,
                "errors": [e.as_dict() for e in self.errors]}  # fmt: skip

    def __str__(self) -> str:
        return f"the result is not a valid {self.goal_type} result ({len(self.errors)} errors)"


def list_tasks(db: Database, goal_id: str) -> list[Task]:
    with db.read() as conn:
        live_goal(conn, goal_id)
        return task_table.for_goal(conn, goal_id)


def _task_of(conn: Connection, goal_id: str | None, task_id: str) -> Task:
    task = task_table.fetch(conn, task_id)
    if task is None or (goal_id is not None and task.goal_id != goal_id):
        raise TaskNotFound(task_id)
    return task


def _record_task(conn: Connection, ctx: Context, now: datetime, event_type: str,
                 task: Task) -> None:  # fmt: skip
    task_table.save(conn, task)
    record_event(
        conn, ctx, now, event_type, task.goal_id,
        {"task": {"task_id": task.task_id, "attempt": task.attempt, "state": task.state.value,
                  "evidence": task.evidence, "reason": task.reason,
                  "task_trace_id": task.trace_id}},
    )  # fmt: skip


def report_task(
    db: Database, ctx: Context, task_id: str, state: TaskState, *, evidence: Any = None,
    reason: str | None = None, goal_id: str | None = None, max_attempts: int,
) -> Task:  # fmt: skip
    """The executor's report: running, succeeded (with evidence) or failed. The same
    report again changes nothing; a report for a superseded attempt (a retry has
    started since) is logged and ignored: the callback and the sweeper may both report."""
    with db.write() as conn:
        now = ctx.clock()
        task = _task_of(conn, goal_id, task_id)
        if task.superseded:
            log.info("report %s for superseded task %s ignored", state.value, task_id)
            return task
        updated = report(task, state, evidence, reason, now)
        if updated is task:
            return task
        _record_task(conn, ctx, now, "task_reported", updated)
        if updated.state == TaskState.FAILED:
            _after_failed_attempt(conn, ctx, now, updated.goal_id, max_attempts)
    if updated.state in (TaskState.SUCCEEDED, TaskState.FAILED):
        RECORDER.inc(TASKS_FINISHED, state=updated.state.value)
    return updated


def report_progress(
    db: Database, ctx: Context, task_id: str, note: str, fraction: float | None
) -> Task:
    """A running task's progress (a note, and how far it is in [0, 1] if it knows): a
    `task_progress_reported` ledger event. The task's state does not change; a task that
    is no longer open (or was superseded) has its progress logged and ignored."""
    if fraction is not None and not 0.0 <= fraction <= 1.0:
        raise InvalidInput([FieldError(("fraction",), "must be between 0 and 1")])
    with db.write() as conn:
        task = _task_of(conn, None, task_id)
        if task.superseded or task.state not in OPEN:
            log.info("progress of task %s (%s) ignored", task_id, task.state.value)
            return task
        record_event(
            conn, ctx, ctx.clock(), "task_progress_reported", task.goal_id,
            {"task": {"task_id": task.task_id, "attempt": task.attempt},
             "note": note[:2_000], "fraction": fraction},
        )  # fmt: skip
    return task


def review_task(
    db: Database, ctx: Context, goal_id: str, task_id: str, action: str, *,
    reason: str | None = None, max_attempts: int,
) -> Task:  # fmt: skip
    """The goal's owner (or an admin) verifies or rejects a succeeded task (a rejection is
    a failed attempt)."""
    with db.write() as conn:
        now = ctx.clock()
        authorize(ctx, live_goal(conn, goal_id, include_deleted=True), action)
        task = _task_of(conn, goal_id, task_id)
        updated = review(task, action, reason, now)
        if updated is task:
            return task
        _record_task(conn, ctx, now, "task_reviewed", updated)
        if updated.state == TaskState.REJECTED:
            _after_failed_attempt(conn, ctx, now, goal_id, max_attempts)
    return updated


def _after_failed_attempt(
    conn: Connection, ctx: Context, now: datetime, goal_id: str, max_attempts: int
) -> None:
    goal = live_goal(conn, goal_id, include_deleted=True)
    if goal.state != GoalState.EXECUTING or goal.is_deleted:
        return
    tasks = task_table.for_goal(conn, goal_id)
    if any(t.state in OPEN for t in tasks):
        return  # another attempt is still under way
    failed = failed_attempts(tasks)
    if failed < max_attempts:
        move_goal(conn, ctx, now, goal, "retry", "goal_retried",
              {"failed_attempts": failed, "max_attempts": max_attempts})  # fmt: skip
        return
    abandoned = move_goal(conn, ctx, now, goal, "abandon", "goal_abandoned",
                      {"reason": "attempts_exhausted", "failed_attempts": failed})  # fmt: skip
    selection_outcome(conn, ctx, now, abandoned, tasks, satisfied=False)


def satisfy_goal(
    db: Database, ctx: Context, goal_id: str, result: Any, expected_version: int | None = None
) -> Goal:
    """The verification gate, for the goal's owner or an admin: every live task verified
    and a result valid for the goal's type, or nothing changes (GateClosed, or
    ResultInvalid recorded as a GoalFailure)."""
    failure: ResultInvalid | None = None
    with db.write() as conn:
        now = ctx.clock()
        goal = live_goal(conn, goal_id)
        authorize(ctx, goal, "satisfy")
        if goal.state == GoalState.SATISFIED:
            return goal
        if goal.state != GoalState.EXECUTING:
            raise IllegalTransition(goal_id, goal.state.value, "satisfy")
        if expected_version is not None and expected_version != goal.version:
            raise VersionConflict(goal_id, expected_version, goal.version)
        tasks = task_table.for_goal(conn, goal_id)
        counts = gate(tasks)
        if not counts.open:
            raise GateClosed(goal_id, counts)
        typed, errors = validate_result(goal, result)
        if errors:
            failure = ResultInvalid(goal_id, goal.goal_type, errors)
            record_event(
                conn, ctx, now, "goal_failure_recorded", goal_id,
                {"goal_type": goal.goal_type, "errors": [e.as_dict() for e in errors]},
            )  # fmt: skip
        else:
            assert typed is not None
            satisfied = move_goal(conn, ctx, now, goal, "satisfy", "goal_satisfied",
                              {"result": typed.model_dump(mode="json")})  # fmt: skip
            selection_outcome(conn, ctx, now, satisfied, tasks, satisfied=True)
            return satisfied
    # Raised after the commit, so the GoalFailure stays in the goal's history.
    assert failure is not None
    raise failure


@dataclass(frozen=True)
class JobOutcome:
    """What the queue knows of a task's job that its callbacks did not record."""

    state: TaskState  # SUCCEEDED (the job finished) or FAILED
    reason: str | None = None
    evidence: Any = None


class JobProbe(Protocol):
    def outcome(self, task_id: str) -> JobOutcome | None:
        """The job's outcome if it ended (finished, failed, stopped, vanished, its worker
        dead), else None (still queued or running)."""
        ...


def sweep_tasks(
    db: Database, ctx: Context, probe: JobProbe, *, stale_after: timedelta, max_attempts: int
) -> list[Task]:
    """Open tasks untouched for `stale_after` whose job ended without its callback's
    report reaching the store are reported now: failed (the job failed, was stopped or
    vanished, its worker died), so their goals are retried, or succeeded with the job's
    result (a callback that could not write). Each report is written in its task's own
    trace, as the callback would have; one task's error does not stop the others.
    Returns the tasks reported."""
    now = ctx.clock()
    with db.read() as conn:
        stale = task_table.open_tasks(conn, format_ts(now - stale_after))
    reported = []
    for task in stale:
        found = probe.outcome(task.task_id)
        if found is None:
            continue
        in_its_trace = replace(ctx, trace=parse_traceparent(task.traceparent) or ctx.trace)
        try:
            reported.append(report_task(
                db, in_its_trace, task.task_id, found.state, evidence=found.evidence,
                reason=found.reason, max_attempts=max_attempts,
            ))  # fmt: skip
        except GoalStoreError as exc:
            log.warning("sweep: task %s not reported (%s)", task.task_id, exc)
    return [t for t in reported if t.state in (TaskState.FAILED, TaskState.SUCCEEDED)]


def task_as_dict(task: Task) -> dict[str, Any]:
    return {
        "task_id": task.task_id, "goal_id": task.goal_id, "goal_version": task.goal_version,
        "attempt": task.attempt, "state": task.state.value, "superseded": task.superseded,
        "evidence": task.evidence, "reason": task.reason, "trace_id": task.trace_id,
        "span_id": task.span_id, "traceparent": task.traceparent,
        "created_at": format_ts(task.created_at), "updated_at": format_ts(task.updated_at),
    }  # fmt: skip
