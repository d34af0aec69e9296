"""Tasks: reports, reviews, tasks recorded by hand, and dead jobs (the gate: gate.py).

A failed or rejected task is a failed attempt: the goal goes back to `adopted`
(another selection may start it) until `max_attempts` have failed; then it is
abandoned, with an `execution` GoalFailure as its last failure. Abandoning a goal
that was executed records an outcome of the `goal_selected` decision. Every change
of a task bumps its version and keeps the goal's `progress` (gate.refresh_progress).
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from service.commands.base import Context, authorize, live_goal, record_event
from service.commands.gate import record_failure, refresh_progress
from service.commands.goals import move_goal, mutate
from service.commands.outcomes import selection_outcome
from service.commands.ranking import ranking_inputs, tree_of
from service.commands.trees import after_abandon
from service.domain.errors import (
    ErrorKind,
    FieldError,
    GoalStoreError,
    IllegalTransition,
    InvalidInput,
)
from service.domain.goal import Goal, GoalState, bump, transition
from service.domain.inputs import checked_evidence
from service.domain.ranking import explain
from service.domain.tasks import (
    MANUAL,
    OPEN,
    SELECTION,
    Task,
    TaskNotFound,
    TaskState,
    TaskVersionConflict,
    checked_note,
    execution_failure,
    failed_attempts,
    report,
    review,
    reviewed,
)
from service.domain.timefmt import format_ts
from service.domain.vetting import GoalBlocked, Verdict
from service.metrics import RECORDER, TASKS_FINISHED
from service.store import tasks as task_table
from service.store.db import Connection, Database
from service.tracing import parse_traceparent

log = logging.getLogger(__name__)


@dataclass
class GoalManuallyBlocked(GoalStoreError):
    """A person blocked the goal (POST /v1/goals/{id}/block): no work starts on it."""

    kind = ErrorKind.CONFLICT
    code = "goal-manually-blocked"
    title = "Goal manually blocked"

    goal_id: str
    reason: str

    def fields(self) -> dict[str, Any]:
        return {"goal_id": self.goal_id, "reason": self.reason}

    def __str__(self) -> str:
        return f"goal {self.goal_id!r} is blocked ({self.reason}): unblock it first"


def list_tasks(db: Database, goal_id: str, *, include_deleted: bool = False) -> list[Task]:
    with db.read() as conn:
        live_goal(conn, goal_id, include_deleted=include_deleted)
        return task_table.for_goal(conn, goal_id)


def _task_of(conn: Connection, goal_id: str | None, task_id: str) -> Task:
    task = task_table.fetch(conn, task_id)
    if task is None or (goal_id is not None and task.goal_id != goal_id):
        raise TaskNotFound(task_id)
    return task


def _task_event(conn: Connection, ctx: Context, now: datetime, event_type: str,
                task: Task) -> None:  # fmt: skip
    record_event(
        conn, ctx, now, event_type, task.goal_id,
        {"task": {"task_id": task.task_id, "attempt": task.attempt, "state": task.state.value,
                  "version": task.version, "evidence": task.evidence, "reason": task.reason,
                  "task_trace_id": task.trace_id}},
    )  # fmt: skip


def _record_task(conn: Connection, ctx: Context, now: datetime, event_type: str,
                 task: Task) -> None:  # fmt: skip
    """The changed task, its event, and the goal's progress that follows from it."""
    task_table.save(conn, task)
    _task_event(conn, ctx, now, event_type, task)
    refresh_progress(conn, ctx, now, task.goal_id, task.task_id)


def report_task(
    db: Database, ctx: Context, task_id: str, state: TaskState, *, evidence: Any = None,
    reason: str | None = None, goal_id: str | None = None, max_attempts: int,
) -> Task:  # fmt: skip
    """The executor's report: running, succeeded (with evidence) or failed. The same
    report again changes nothing; a report for a superseded attempt (a retry has
    started since) is logged and ignored: the callback and the sweeper may both report."""
    evidence = checked_evidence(evidence)
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
            _after_failed_attempt(conn, ctx, now, updated, max_attempts)
    if updated.state in (TaskState.SUCCEEDED, TaskState.FAILED) and updated.origin == SELECTION:
        # the goal system's hand-offs only: the rollback alert judges selection by them
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
    reason: str | None = None, expected_version: int | None = None, max_attempts: int,
) -> Task:  # fmt: skip
    """The goal's owner (or an admin) verifies or rejects a succeeded task (a rejection is
    a failed attempt). The same decision again changes nothing; one based on a task
    version that is not the current one (`expected_version`) records
    `goal_conflict_detected` and raises TaskVersionConflict, changing nothing else."""
    with db.write() as conn:
        now = ctx.clock()
        authorize(ctx, live_goal(conn, goal_id, include_deleted=True), action)
        task = _task_of(conn, goal_id, task_id)
        stale = expected_version is not None and expected_version != task.version
        if stale and not reviewed(task, action):
            assert expected_version is not None
            record_event(
                conn, ctx, now, "goal_conflict_detected", goal_id,
                {"action": action, "task_id": task_id, "expected_version": expected_version,
                 "current_version": task.version},
            )  # fmt: skip
            conflict = TaskVersionConflict(goal_id, task_id, expected_version, task.version)
        else:
            updated = review(task, action, reason, now)
            if updated is task:
                return task
            _record_task(conn, ctx, now, "task_reviewed", updated)
            if updated.state == TaskState.REJECTED:
                _after_failed_attempt(conn, ctx, now, updated, max_attempts)
            return updated
    # Raised outside the transaction, so the conflict event above is committed.
    raise conflict


def create_task(
    db: Database, ctx: Context, goal_id: str, *, evidence: Any = None, note: str | None = None,
    expected_version: int | None = None,
) -> Task:  # fmt: skip
    """Record work done outside selection (origin `manual`, state `running`): on an
    adopted goal it starts the goal (-> executing, as a selection would), on an
    executing one it adds a live task; either way the goal's version moves on (the task
    names the version before) in one `goal_task_added` event naming the task. Reported,
    reviewed and counted by the gate like any task. Refused on proposed and finished
    goals (IllegalTransition) and on a manually blocked one (GoalManuallyBlocked).
    Starting an adopted goal by hand meets the ranking's blocks, as a selection would
    (GoalBlocked: an active belief it contradicts, a dependency not satisfied, a passed
    deadline); the belief checker's severity was judged when it was adopted."""
    evidence = checked_evidence(evidence)
    note = checked_note(note)
    span = ctx.trace.child()
    named: dict[str, Any] = {"task_id": f"t-{secrets.token_hex(8)}", "origin": MANUAL,
                             "state": TaskState.RUNNING.value, "evidence": evidence,
                             "note": note}  # fmt: skip
    made: list[Task] = []
    started_by_hand: list[str] = []  # the goal, when this task starts it

    def change(goal: Goal, now: datetime) -> Goal:
        started_by_hand.clear()  # a run again (service/store/together.py) starts afresh
        if goal.manual_block is not None and not goal.is_terminal:
            raise GoalManuallyBlocked(goal.id, str(goal.manual_block.get("reason", "")))
        if goal.state == GoalState.ADOPTED:
            started_by_hand.append(goal.id)
            return transition(goal, "start", now)
        if goal.state == GoalState.EXECUTING:
            return bump(goal, now)
        raise IllegalTransition(goal.id, goal.state.value, "add a task to")

    def number(conn: Connection, changed: Goal) -> None:  # before the event is written
        if started_by_hand:
            inputs = ranking_inputs(conn, changed.updated_at)
            blocked_by = explain(changed, inputs, tree_of(conn, changed, inputs)).blocked_by
            if blocked_by:
                raise GoalBlocked(goal_id, Verdict(blocked_by))
        named["attempt"] = 1 + len(task_table.for_goal(conn, goal_id))

    def insert(conn: Connection, changed: Goal, now: datetime) -> None:
        task_table.supersede_failed(conn, goal_id)  # the new attempt replaces failed ones
        task = Task(
            task_id=named["task_id"], goal_id=goal_id, goal_version=changed.version - 1,
            attempt=named["attempt"], state=TaskState.RUNNING, trace_id=span.trace_id,
            span_id=span.span_id, traceparent=span.traceparent, created_at=now,
            updated_at=now, evidence=evidence, origin=MANUAL,
        )  # fmt: skip
        task_table.insert(conn, task)
        refresh_progress(conn, ctx, now, goal_id, task.task_id)
        made[:] = [task]

    mutate(
        db, ctx, goal_id, expected_version, action="add_task", event_type="goal_task_added",
        change=change, extra_checks=number, then=insert, extra={"task": named},
    )  # fmt: skip
    return made[0]


def _after_failed_attempt(
    conn: Connection, ctx: Context, now: datetime, failed_task: Task, max_attempts: int
) -> None:
    goal_id = failed_task.goal_id
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
    failure = execution_failure(goal_id, failed_task, tasks, max_attempts, format_ts(now))
    record_failure(conn, ctx, now, goal_id, failure)
    after_abandon(conn, ctx, now, abandoned)  # its parent is held until it is replaced


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
        "version": task.version, "origin": task.origin,
        "evidence": task.evidence, "reason": task.reason, "trace_id": task.trace_id,
        "span_id": task.span_id, "traceparent": task.traceparent,
        "created_at": format_ts(task.created_at), "updated_at": format_ts(task.updated_at),
    }  # fmt: skip
