"""The store's side of a selection: re-vet and start goals in one transaction, or undo.

A started goal is `executing` at the version the ranking showed, with its task, the
`goal_selected_for_execution` ledger event and its outbox row; a goal that moved on,
went away or fails re-vetting is not started, and the others are (a savepoint each).
When the hand-off to the scheduler queue fails, undo_start puts the goal back.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import replace
from datetime import datetime
from typing import Any, NamedTuple

from service.commands.base import Context, stored_goal
from service.commands.gate import refresh_progress
from service.commands.goals import move_goal
from service.commands.ranking import ranking_inputs, tree_of
from service.commands.vetting import Vetting
from service.domain.beliefs import Belief
from service.domain.blocks import (
    ANCESTOR_BLOCKED,
    CHILD_ABANDONED,
    CONTRADICTS_BELIEF,
    DEPENDENCY_UNSATISFIED,
    MANUAL_BLOCK,
    OPEN_CHILDREN,
    Block,
)
from service.domain.errors import ErrorKind, GoalNotFound, GoalStoreError, IllegalTransition
from service.domain.goal import Goal, GoalState, from_record
from service.domain.ranking import RankingInputs, explain, manual_reason
from service.domain.ranking.formula import contradicted
from service.domain.tasks import Task, TaskPayload, TaskState
from service.domain.vetting import Consistency, GoalBlocked, Verdict
from service.metrics import RECORDER, SAFETY_VIOLATIONS
from service.store import beliefs as belief_table
from service.store import goals as goal_table
from service.store import ledger as ledger_table
from service.store import tasks as task_table
from service.store import tree_ranking as tree_table
from service.store.db import Connection, Database

log = logging.getLogger("goalstore.selection")


class Facts(NamedTuple):
    """What the starts in one transaction read, read once for all under the write lock
    (the beliefs with its begin, the rest in one more round trip). A start writes its own
    goal, its tasks and, through their progress, its ancestors: none of those is
    another start's in the batch (an ancestor of a goal being started has an open child,
    which its tree, read afresh, holds it on)."""

    beliefs: list[Belief]
    trees: bool  # whether any goal has a parent
    attempts: dict[str, int]  # tasks each goal has had (none: absent)
    goals: dict[str, dict[str, Any]]  # the goals' records (none: absent)


def start_verdict(
    conn: Connection, vetting: Vetting, goal: Goal, consistency: Consistency,
    now: datetime, facts: Facts | None = None,
) -> Verdict:  # fmt: skip
    """Adoption's rules plus what ranking blocks on (a manual block, dependencies not yet
    satisfied, what its tree holds it on: open children, an abandoned child, a blocked
    ancestor). `facts`: as the transaction has read them (None: read now)."""
    beliefs, trees = (None, None) if facts is None else (facts.beliefs, facts.trees)
    verdict = vetting.verdict(conn, goal, consistency, now, beliefs)
    if goal.manual_block is not None:
        held = goal.manual_block
        block = Block(MANUAL_BLOCK, f"blocked by {held.get('actor')}: {manual_reason(held)}")
        verdict = replace(verdict, blocks=(*verdict.blocks, block))
    # The ranking inputs are read only when they can matter: for its dependencies, or its
    # ancestors' (a goal's open children and abandoned child are its tree's facts alone).
    climbs = goal.depends_on or goal.parent_id
    inputs = ranking_inputs(conn, now) if climbs else RankingInputs(now=now)
    tree = tree_of(conn, goal, inputs, trees)
    if not goal.depends_on and tree is None and goal.tree_block is None:
        return verdict
    blocked_by = explain(goal, inputs, tree).blocked_by
    unmet = tuple(b.ref for b in blocked_by if b.reason == DEPENDENCY_UNSATISFIED)
    if unmet:
        block = Block(DEPENDENCY_UNSATISFIED, f"depends on unsatisfied goals: {', '.join(unmet)}")
        verdict = replace(verdict, blocks=(*verdict.blocks, block))
    in_tree = tuple(Block(b.reason, _TREE_HOLDS[b.reason].format(b.ref)) for b in blocked_by
                    if b.reason in _TREE_HOLDS)  # fmt: skip
    return replace(verdict, blocks=(*verdict.blocks, *in_tree)) if in_tree else verdict


# What its tree holds a goal on, as vetting says it (domain/ranking/trees.py).
_TREE_HOLDS = {
    OPEN_CHILDREN: "its work is its open children's (the first: {})",
    ANCESTOR_BLOCKED: "a goal it is part of is blocked: {}",
    CHILD_ABANDONED: "a child of it was abandoned and not replaced: {}",
}


class GoalMovedOn(GoalStoreError):
    """The goal's version is not the one the ranking showed: another selector won.
    Selection skips such a goal; it never reaches an edge."""

    kind = ErrorKind.CONFLICT
    code = "goal-moved"
    title = "Goal moved on"


class Started(NamedTuple):
    goal: Goal  # now executing
    task: Task
    seq: int  # of the goal_selected_for_execution ledger event


def start_goals(
    db: Database, ctx: Context, versions: list[tuple[str, int]], vetting: Vetting
) -> list[Started | GoalStoreError]:
    """Re-vet each goal and move it adopted -> executing at the version given, with its
    task, the ledger event and the outbox row: one transaction for all, a savepoint
    each. For each, in the order given, what started or why it did not
    (GoalBlocked, GoalNotFound, IllegalTransition, GoalMovedOn)."""
    with db.read() as conn:
        seen = goal_table.fetch_many(conn, [goal_id for goal_id, _ in versions])
        beliefs = belief_table.listing(conn)
    consulted: dict[str, Consistency] = {}
    for goal_id, version in versions:  # the checker may be HTTP: no transaction open
        record = seen.get(goal_id)
        if record is not None and record["deleted_at"] is None and record["version"] == version:
            consulted[goal_id] = vetting.consult(from_record(record), beliefs)
    outcomes: list[Started | GoalStoreError] = []
    # The beliefs as the write lock finds them: on PostgreSQL, with the begin. Only a
    # start's refusal is its own: any other error fails them all (the claims released).
    with db.batch(first=belief_table.EVERY, as_one=True) as conn:
        ids = [goal_id for goal_id, _ in versions]
        trees, attempts, records = db.reads([
            tree_table.IN_USE, task_table.attempts(conn.dialect, ids),
            goal_table.many(conn.dialect, ids),
        ])  # fmt: skip
        facts = Facts(belief_table.beliefs_of(conn.first), bool(trees),
                      task_table.attempts_of(attempts), goal_table.records_of(records))  # fmt: skip
        tried: set[str] = set()
        for goal_id, version in versions:
            consistency = consulted.get(goal_id)
            try:
                if consistency is None:
                    raise _not_startable(seen.get(goal_id), goal_id)
                if goal_id in tried:  # asked for twice: its row, read once, is stale
                    raise GoalMovedOn()
                tried.add(goal_id)
                with db.write() as conn:
                    outcomes.append(
                        _start(conn, ctx, goal_id, version, vetting, consistency, facts)
                    )
            except (GoalBlocked, GoalNotFound, IllegalTransition, GoalMovedOn) as refused:
                outcomes.append(refused)
    return outcomes


def _not_startable(record: dict[str, Any] | None, goal_id: str) -> GoalStoreError:
    if record is None or record["deleted_at"] is not None:
        return GoalNotFound(goal_id)
    return GoalMovedOn()


def _start(
    conn: Connection, ctx: Context, goal_id: str, version: int, vetting: Vetting,
    consistency: Consistency, facts: Facts,
) -> Started:  # fmt: skip
    now = ctx.clock()
    goal = stored_goal(facts.goals.get(goal_id), goal_id)
    if goal.version != version:
        raise GoalMovedOn()
    if goal.state != GoalState.ADOPTED:
        raise IllegalTransition(goal.id, goal.state.value, "start")
    verdict = start_verdict(conn, vetting, goal, consistency, now, facts)
    if not verdict.allowed:
        raise GoalBlocked(goal.id, verdict)
    _refuse_unsafe(goal, facts.beliefs)
    task_table.supersede_failed(conn, goal.id)
    attempt = 1 + facts.attempts.get(goal.id, 0)
    span = ctx.trace.child()
    task = Task(
        task_id=f"t-{secrets.token_hex(8)}", goal_id=goal.id, goal_version=goal.version,
        attempt=attempt, state=TaskState.QUEUED, trace_id=span.trace_id,
        span_id=span.span_id, traceparent=span.traceparent, created_at=now, updated_at=now,
    )  # fmt: skip
    started = move_goal(conn, ctx, now, goal, "start", "goal_selected_for_execution",
                        {"task": {"task_id": task.task_id, "attempt": attempt}})  # fmt: skip
    task_table.insert(conn, task)
    seq, _ = ledger_table.head(conn)  # the event move_goal just appended
    if goal.progress:  # verified tasks stay live beside the new one: the share moves
        started = replace(started, progress=refresh_progress(conn, ctx, now, goal.id,
                                                             task.task_id))  # fmt: skip
    return Started(started, task, seq)


def _refuse_unsafe(goal: Goal, beliefs: list[Belief]) -> None:
    """The safety net behind vetting: a goal about to be handed to the scheduler that
    contradicts an active belief (seed 000's safety violation) means vetting let it
    through, which must never happen. Counted (goal_safety_violations_total, alerted on
    above zero), logged, and the goal is refused like any blocked one."""
    if not goal.contradicts:
        return
    violated = contradicted(goal.contradicts, frozenset(b.id for b in beliefs if b.active))
    if violated:
        RECORDER.inc(SAFETY_VIOLATIONS)
        log.error("safety: vetting let goal %s through while it contradicts active beliefs "
                  "%s; refused", goal.id, ", ".join(violated))  # fmt: skip
        block = Block(CONTRADICTS_BELIEF, "contradicts an active belief", tuple(violated))
        raise GoalBlocked(goal.id, Verdict((block,)))


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
                         updated_at=now, version=task.version + 1)  # fmt: skip
        task_table.save(conn, failed)
        if goal.progress:  # the task no longer counts as live
            refresh_progress(conn, ctx, now, goal.id, task.task_id)


def task_payload(goal: Goal, task: Task) -> dict[str, Any]:
    """The scheduler job's one argument (the TaskPayload contract), as plain JSON."""
    return TaskPayload(
        task_id=task.task_id, goal_id=goal.id, goal_version=task.goal_version,
        attempt=task.attempt, text=goal.text, goal_type=goal.goal_type,
        success_metrics=dict(goal.success_metrics), metadata=dict(goal.metadata),
        trace_id=task.trace_id, traceparent=task.traceparent,
    ).model_dump(mode="json")  # fmt: skip
