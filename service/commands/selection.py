"""Selection (DESIGN §7, §9): the best goal, claimed, re-vetted, started, handed over.

One path for every way in (POST /v1/goals/select, the TaskScheduler adapter, the
selector that tops the scheduler queue up):

1. read the ranking (Redis while current, else SQLite) and walk it from the top;
2. claim the goal version in Redis (other selectors skip it);
3. in one SQLite transaction: re-vet it (beliefs, checker, deadline, dependencies),
   move it adopted -> executing at that version, write its task, the ledger event
   and the outbox row;
4. emit one RQ job on the scheduler queue (job id = task id).

Any step failing releases the claim and leaves nothing half-done: a goal that fails
vetting is skipped (and the block recorded); if the emit fails, the start is undone
in a second transaction (goal back to adopted, the task marked not emitted).
"""

from __future__ import annotations

import logging
import secrets
import sqlite3
import time
import zlib
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from service.cache.claims import Claims
from service.cache.ranking import RankingCache
from service.commands.base import Context, utcnow
from service.commands.goals import move_goal, record_block
from service.commands.ranking import ranked_candidates, ranking_inputs
from service.commands.vetting import Vetting
from service.domain.errors import GoalNotFound, GoalStoreError, IllegalTransition
from service.domain.goal import Goal, GoalState, from_record
from service.domain.ranking import explain
from service.domain.tasks import NOT_EMITTED, Task, TaskState
from service.domain.vetting import Block, Consistency, GoalBlocked, Verdict
from service.metrics import GOAL_SELECTED, GOAL_SELECTED_SHADOW, RECORDER, SELECT_LATENCY
from service.store import beliefs as belief_table
from service.store import goals as goal_table
from service.store import tasks as task_table
from service.store.db import Database

log = logging.getLogger("goalstore.selection")


class Emitter(Protocol):
    def emit(self, task: Task, payload: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class Flags:
    """DESIGN §9. Shadow (the default): ranked, logged, counted, not emitted. Live:
    GOAL_SYSTEM on and GOAL_SHADOW off. Off: both off, nothing is selected."""

    system: bool = False
    shadow: bool = True
    canary_percent: int = 100

    def in_canary(self, trace_id: str) -> bool:
        """Whether this selection (by its trace id, so retries agree) is in the canary."""
        return zlib.crc32(trace_id.encode()) % 100 < self.canary_percent


@dataclass(frozen=True)
class Selection:
    """What a select did: `emitted` (goal + task), `shadow` (goal only), `off` (flag),
    `not_in_canary`, or `empty` (nothing selectable)."""

    mode: str
    goal: Goal | None = None
    task: Task | None = None
    skipped: tuple[tuple[str, str], ...] = ()


@dataclass
class SchedulerUnavailable(GoalStoreError):
    detail: str

    def __str__(self) -> str:
        return f"the task could not be handed to the scheduler queue: {self.detail}"


@dataclass(frozen=True)
class Selector:
    """Everything a selection needs besides the caller's context."""

    db: Database
    cache: RankingCache | None
    claims: Claims | None
    emitter: Emitter | None
    vetting: Vetting
    flags: Flags
    max_lag: timedelta
    candidates: int = 16

    def select(self, ctx: Context) -> Selection:
        return select_goal(self, ctx)


def select_goal(sel: Selector, ctx: Context) -> Selection:
    """Shadow (GOAL_SHADOW on, whatever GOAL_SYSTEM says: the out-of-the-box state)
    picks and counts without emitting; off (both flags off) does nothing; live
    (GOAL_SYSTEM on, GOAL_SHADOW off) emits, for the canary's share of traces."""
    started = time.perf_counter()
    if not sel.flags.shadow:
        if not sel.flags.system:
            return Selection("off")
        if not sel.flags.in_canary(ctx.trace.trace_id):
            return Selection("not_in_canary")
    skipped: list[tuple[str, str]] = []
    tried: set[tuple[str, int]] = set()
    limit = sel.candidates
    while True:
        candidates, more = ranked_candidates(sel.db, sel.cache, max_lag=sel.max_lag, limit=limit)
        for candidate in candidates:
            if candidate in tried:
                continue
            tried.add(candidate)
            outcome = _try(sel, ctx, *candidate, skipped)
            if outcome is not None:
                if outcome.mode == "emitted":
                    RECORDER.inc_and_observe(
                        GOAL_SELECTED, SELECT_LATENCY, time.perf_counter() - started
                    )
                return replace(outcome, skipped=tuple(skipped))
        if not more or limit >= 1024:
            return Selection("empty", skipped=tuple(skipped))
        limit *= 4  # everything seen was claimed, blocked or moved on: look further down


def _try(
    sel: Selector, ctx: Context, goal_id: str, version: int, skipped: list[tuple[str, str]]
) -> Selection | None:
    if sel.flags.shadow:
        return _shadow(sel, goal_id, version, skipped)
    claims = sel.claims
    token = claims.claim(goal_id, version) if claims is not None else "-"
    if token is None:
        skipped.append((goal_id, "claimed"))
        return None

    def release() -> None:
        if claims is not None:
            claims.release(goal_id, version, token)

    try:
        started, task = start_goal(sel.db, ctx, goal_id, version, sel.vetting)
    except GoalBlocked as blocked:
        release()
        record_block(sel.db, ctx, blocked, "select")
        skipped.append((goal_id, "blocked"))
        return None
    except (GoalNotFound, IllegalTransition, _Moved):
        release()  # deleted, or moved on since the ranking was read
        skipped.append((goal_id, "changed"))
        return None
    except BaseException:
        release()
        raise
    try:
        if sel.emitter is None:
            raise SchedulerUnavailable("no Redis is configured for the scheduler queue")
        sel.emitter.emit(task, task_payload(started, task))
    except BaseException as exc:
        undo_start(sel.db, ctx, task, f"{NOT_EMITTED}: {exc}")
        release()
        if isinstance(exc, SchedulerUnavailable):
            raise
        raise SchedulerUnavailable(str(exc)) from exc
    return Selection("emitted", started, task)


def _shadow(
    sel: Selector, goal_id: str, version: int, skipped: list[tuple[str, str]]
) -> Selection | None:
    """What selection would pick: vetted like the real thing, nothing claimed or written."""
    with sel.db.read() as conn:
        record = goal_table.fetch(conn, goal_id)
        beliefs = belief_table.listing(conn)
    if record is None or record["deleted_at"] or record["version"] != version:
        skipped.append((goal_id, "changed"))
        return None
    goal = from_record(record)
    if goal.state != GoalState.ADOPTED:
        skipped.append((goal_id, "changed"))
        return None
    consistency = sel.vetting.consult(goal, beliefs)
    with sel.db.read() as conn:
        verdict = _verdict(conn, sel.vetting, goal, consistency, utcnow())
    if not verdict.allowed:
        skipped.append((goal_id, "blocked"))
        return None
    RECORDER.inc(GOAL_SELECTED_SHADOW)
    log.info("shadow selection: would hand goal %s (version %s) to the scheduler",
             goal.id, goal.version)  # fmt: skip
    return Selection("shadow", goal)


def _verdict(
    conn: sqlite3.Connection, vetting: Vetting, goal: Goal, consistency: Consistency,
    now: datetime,
) -> Verdict:  # fmt: skip
    """Adoption's rules plus what ranking blocks on (dependencies not yet satisfied)."""
    verdict = vetting.verdict(conn, goal, consistency, now)
    if not goal.depends_on:  # the ranking inputs are read only when they can matter
        return verdict
    unmet = tuple(
        b.ref for b in explain(goal, ranking_inputs(conn, now)).blocked_by
        if b.reason == "dependency_unsatisfied"
    )  # fmt: skip
    if unmet:
        block = Block("dependency_unsatisfied", f"depends on unsatisfied goals: {', '.join(unmet)}")
        verdict = replace(verdict, blocks=(*verdict.blocks, block))
    return verdict


class _Moved(GoalStoreError):
    """The goal's version is not the one the ranking showed: another selector won."""


def start_goal(
    db: Database, ctx: Context, goal_id: str, version: int, vetting: Vetting
) -> tuple[Goal, Task]:
    """Re-vet the goal and move it adopted -> executing at `version`, with its task, the
    ledger event and the outbox row: one transaction."""
    with db.read() as conn:
        seen = goal_table.fetch(conn, goal_id)
        beliefs = belief_table.listing(conn)
    if seen is None or seen["deleted_at"] is not None:
        raise GoalNotFound(goal_id)
    if seen["version"] != version:
        raise _Moved()
    consistency = vetting.consult(from_record(seen), beliefs)  # may be HTTP: no transaction
    with db.write() as conn:
        now = ctx.clock()
        record = goal_table.fetch(conn, goal_id)
        if record is None or record["deleted_at"] is not None:
            raise GoalNotFound(goal_id)
        goal = from_record(record)
        if goal.version != version:
            raise _Moved()
        if goal.state != GoalState.ADOPTED:
            raise IllegalTransition(goal.id, goal.state.value, "start")
        verdict = _verdict(conn, vetting, goal, consistency, now)
        if not verdict.allowed:
            raise GoalBlocked(goal.id, verdict)
        task_table.supersede_failed(conn, goal.id)
        attempt = 1 + len(task_table.for_goal(conn, goal.id))
        span = ctx.trace.child()
        task = Task(
            task_id=f"t-{secrets.token_hex(8)}", goal_id=goal.id, goal_version=goal.version,
            attempt=attempt, state=TaskState.QUEUED, trace_id=span.trace_id,
            span_id=span.span_id, traceparent=span.traceparent, created_at=now, updated_at=now,
        )  # fmt: skip
        started = move_goal(conn, ctx, now, goal, "start", "goal_selected_for_execution",
                            {"task": {"task_id": task.task_id, "attempt": attempt}})  # fmt: skip
        task_table.insert(conn, task)
    return started, task


def undo_start(db: Database, ctx: Context, task: Task, reason: str) -> None:
    """The emit failed: the goal goes back to adopted and the task is marked not emitted
    (superseded: it never ran, so it is not an attempt)."""
    with db.write() as conn:
        now = ctx.clock()
        record = goal_table.fetch(conn, task.goal_id)
        if record is None:
            return
        goal = from_record(record)
        if goal.state == GoalState.EXECUTING:
            move_goal(conn, ctx, now, goal, "retry", "goal_retried",
                      {"task": {"task_id": task.task_id, "reason": reason}})  # fmt: skip
        failed = replace(task, state=TaskState.FAILED, reason=reason, superseded=True,
                         updated_at=now)  # fmt: skip
        task_table.save(conn, failed)


def task_payload(goal: Goal, task: Task) -> dict[str, Any]:
    """The scheduler job's one argument: JSON, everything an executor needs."""
    return {
        "task_id": task.task_id,
        "goal_id": goal.id,
        "goal_version": task.goal_version,
        "attempt": task.attempt,
        "text": goal.text,
        "goal_type": goal.goal_type,
        "success_metrics": goal.success_metrics,
        "metadata": goal.metadata,
        "trace_id": task.trace_id,
        "traceparent": task.traceparent,
    }
