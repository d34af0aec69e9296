"""Goal commands: create, read, list, change, adopt, abandon, delete."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from service.commands.base import (
    MAX_PAGE,
    Change,
    Context,
    authorize,
    live_goal,
    record_event,
    save_change,
)
from service.commands.outcomes import selection_outcome
from service.commands.placement import check_placement, check_references
from service.commands.trees import (
    after_abandon,
    after_delete,
    after_move,
    attached,
    refuse_open_children,
    settle,
)
from service.commands.vetting import Vetting
from service.domain.errors import (
    FieldError,
    GoalAlreadyExists,
    GoalNotFound,
    InvalidInput,
    PreconditionRequired,
    VersionConflict,
)
from service.domain.goal import (
    Goal,
    GoalState,
    bump,
    from_record,
    mint_goal_id,
    to_record,
    transition,
)
from service.domain.inputs import GoalCreate, GoalUpdate
from service.domain.vetting import GoalBlocked
from service.metrics import ADOPT_LATENCY, GOALS_ADOPTED, RECORDER, count_block
from service.store import beliefs as belief_table
from service.store import goals as goal_table
from service.store import tasks as task_table
from service.store.db import Connection, Database, Read

# --- goal commands ------------------------------------------------------------------


def create_goal(db: Database, ctx: Context, spec: GoalCreate) -> Goal:
    """A taken id (a deleted goal's included) is GoalAlreadyExists once the fields are
    found to fit together, before the references are checked. Whether it is taken is the
    write's first read: on PostgreSQL it rides the begin's round trip rather than
    costing one more while the write lock is held.

    Creates that run at the same moment in one process share a transaction
    (Database.together): an id is never freed, so whether it is taken can be read with
    the group's begin (a second create of it in the group fails the unique key on ids, and
    the group runs again, each create alone)."""
    if spec.id is None:
        spec = spec.model_copy(update={"id": mint_goal_id()})
    taken = goal_table.id_taken(str(spec.id))  # declared, then asked for: the same read
    return db.together(lambda: _create(db, ctx, spec, taken), first=taken)


def _create(db: Database, ctx: Context, spec: GoalCreate, taken: Read) -> Goal:
    goal_id = str(spec.id)
    with db.write(first=taken) as conn:
        now = ctx.clock()
        goal = spec.build(owner=ctx.actor, now=now)
        if conn.first:
            raise GoalAlreadyExists(goal_id)
        check_references(conn, goal, names=("depends_on", "related"))
        if goal.parent_id is not None or goal.depends_on:
            field_name = "parent_id" if goal.parent_id is not None else "depends_on"
            check_placement(conn, ctx, goal, old_parent=None, field_name=field_name, new=True)
        record = to_record(goal)
        goal_table.insert(conn, record)
        record_event(conn, ctx, now, "goal_created", goal.id, {"set": record})
        if goal.parent_id is not None:
            attached(conn, ctx, now, goal.parent_id, [goal.id])
    return goal


def get_goal(db: Database, goal_id: str, *, include_deleted: bool = False) -> Goal:
    return live_goal(db.connection(), goal_id, include_deleted=include_deleted)


@dataclass(frozen=True)
class GoalPage:
    goals: list[Goal]
    count: int
    next_cursor: int | None


def list_goals(
    db: Database,
    *,
    state: str | None = None,
    category: str | None = None,
    include_deleted: bool = False,
    cursor: int = 0,
    limit: int = 50,
    assigned_to: str | None = None,
    parent_id: str | None = None,
) -> GoalPage:
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput([FieldError(("limit",), f"must be between 1 and {MAX_PAGE}")])
    if cursor < 0:
        raise InvalidInput([FieldError(("cursor",), "must not be negative")])
    with db.read() as conn:
        records, next_cursor = goal_table.page(
            conn,
            state=state,
            category=category,
            include_deleted=include_deleted,
            after=cursor,
            limit=limit,
            assigned_to=assigned_to,
            parent_id=parent_id,
        )
        total = goal_table.count(
            conn, state=state, category=category, include_deleted=include_deleted,
            assigned_to=assigned_to, parent_id=parent_id,
        )  # fmt: skip
    return GoalPage([from_record(r) for r in records], total, next_cursor)


def mutate(
    db: Database,
    ctx: Context,
    goal_id: str,
    expected_version: int | None,
    *,
    action: str,
    event_type: str,
    change: Callable[[Goal, datetime], Goal],
    already_done: Callable[[Goal], bool] = lambda goal: False,
    extra_checks: Callable[[Connection, Goal], None] | None = None,
    then: Callable[[Connection, Goal, datetime], None] | None = None,
    extra: dict[str, Any] | None = None,
) -> Change:
    """Load, authorize, check the version, change, write row + event + outbox: the shape of
    every mutation.

    An actor that may not change the goal (not its owner, not admin) is refused first
    (NotPermitted), writing nothing, whatever the version it sent. A repeated state
    change that is already done returns the goal unchanged (so retries are safe); a
    stale expected version records `goal_conflict_detected` and raises
    VersionConflict, changing nothing else.

    Mutations that run at the same moment in one process share a transaction
    (Database.together), as creates do.
    """

    def run() -> Change:
        conflict: VersionConflict | None = None
        with db.write() as conn:
            now = ctx.clock()
            goal = live_goal(conn, goal_id, include_deleted=True)
            authorize(ctx, goal, action)
            if already_done(goal):
                return Change(goal, changed=False)
            if goal.is_deleted:
                raise GoalNotFound(goal_id)
            if expected_version is not None and expected_version != goal.version:
                record_event(
                    conn, ctx, now, "goal_conflict_detected", goal_id,
                    {"action": action, "expected_version": expected_version,
                     "current_version": goal.version},
                )  # fmt: skip
                conflict = VersionConflict(goal_id, expected_version, goal.version)
            else:
                changed = change(goal, now)
                if changed is goal:
                    return Change(goal, changed=False)
                if extra_checks is not None:
                    extra_checks(conn, changed)
                save_change(conn, ctx, now, goal, changed, action, event_type, extra)
                if then is not None:  # what the change leads to, in the same transaction
                    then(conn, changed, now)
                return Change(changed, changed=True)
        # Raised outside the transaction, so the conflict event above is committed.
        raise conflict

    return db.together(run)


def move_goal(
    conn: Connection, ctx: Context, now: datetime, goal: Goal, action: str,
    event_type: str, extra: dict[str, Any] | None = None,
) -> Goal:  # fmt: skip
    """One lifecycle step (`transition`) written by save_change."""
    moved = transition(goal, action, now)
    save_change(conn, ctx, now, goal, moved, action, event_type, extra)
    return moved


def update_goal(
    db: Database,
    ctx: Context,
    goal_id: str,
    patch: GoalUpdate,
    expected_version: int | None,
    *,
    any_version: bool = False,
) -> Change:
    """Apply a partial change. It must name the version it is based on (a blind update
    loses someone else's change) unless the caller explicitly asks for any version."""
    version = expected_version if expected_version is not None else patch.expected_version
    if version is None and not any_version:
        raise PreconditionRequired(goal_id, "update")

    fields = patch.model_fields_set
    before: list[Goal] = []

    def change(goal: Goal, now: datetime) -> Goal:
        before[:] = [goal]  # this run's goal (a run again starts afresh: together())
        changed = patch.apply(goal, now)
        if changed is not goal and goal.tree_block is not None:
            changed = replace(changed, tree_block=None)  # the parent was changed: held no more
        return changed

    def check(conn: Connection, goal: Goal) -> None:
        named = tuple(n for n in ("depends_on", "related") if n in fields)
        if named:
            check_references(conn, goal, names=named)
        moved = goal.parent_id != before[0].parent_id
        if moved or "depends_on" in fields:
            check_placement(conn, ctx, goal, old_parent=before[0].parent_id,
                            field_name="parent_id" if moved else "depends_on")  # fmt: skip

    def then(conn: Connection, goal: Goal, now: datetime) -> None:
        after_move(conn, ctx, now, before[0], goal)
        if "completion_policy" in fields or before[0].tree_block is not None:
            # the policy may hold now, or the goal is no longer held by an abandoned child
            settle(conn, ctx, now, goal.id, {"policy": goal.completion_policy})
        if goal.value != before[0].value and goal.parent_id == before[0].parent_id:
            # its weight in its parent's progress (a moved goal's parents are settled)
            settle(conn, ctx, now, goal.parent_id, {"child_id": goal.id})

    return mutate(
        db, ctx, goal_id, version,
        action="update", event_type="goal_updated", change=change, extra_checks=check,
        then=then,
    )  # fmt: skip


def abandon_goal(
    db: Database, ctx: Context, goal_id: str, expected_version: int | None = None,
    *, cascade: bool = True,
) -> Change:  # fmt: skip
    """Move a goal to abandoned; repeating it changes nothing. Its open descendants are
    abandoned with it (an event each) or, without `cascade`, ChildrenOpen refuses while
    it has open children; its parent is held until the child is replaced. Abandoning a
    goal that was executed records an outcome for the goal_selected decision."""

    def check(conn: Connection, goal: Goal) -> None:
        if not cascade:
            refuse_open_children(conn, goal, "abandon")

    def then(conn: Connection, goal: Goal, now: datetime) -> None:
        # a goal a selection executed: that selection led nowhere (selection_outcome
        # judges only goals with selection attempts)
        selection_outcome(conn, ctx, now, goal, task_table.for_goal(conn, goal.id),
                          satisfied=False)  # fmt: skip
        after_abandon(conn, ctx, now, goal)

    return mutate(
        db, ctx, goal_id, expected_version,
        action="abandon", event_type="goal_abandoned",
        change=lambda goal, now: transition(goal, "abandon", now),
        already_done=lambda goal: goal.state == GoalState.ABANDONED and not goal.is_deleted,
        extra_checks=check, then=then,
    )  # fmt: skip


def adopt_goal(
    db: Database,
    ctx: Context,
    goal_id: str,
    expected_version: int | None = None,
    *,
    vetting: Vetting,
) -> Change:
    """Adopt a proposed goal if vetting allows it (DESIGN §3.4); adopting it again changes
    nothing. A block is GoalBlocked (nothing changes) and a `goal_blocked_by_belief`
    event; a checker that does not answer is CheckerUnavailable (nothing changes)."""
    started = time.perf_counter()
    with db.read() as conn:
        goal = live_goal(conn, goal_id)
        beliefs = belief_table.listing(conn)
    authorize(ctx, goal, "adopt")  # before the checker is consulted; mutate checks again
    if goal.state == GoalState.ADOPTED:
        return Change(goal, changed=False)
    # Other states: mutate checks the version first, then the transition refuses.
    consistency = vetting.consult(goal, beliefs)  # outside the transaction: may be HTTP
    warnings: list[str] = []

    def check(conn: Connection, adopted: Goal) -> None:
        verdict = vetting.verdict(conn, adopted, consistency, ctx.clock())
        if not verdict.allowed:
            raise GoalBlocked(goal_id, verdict)
        warnings[:] = verdict.warnings  # this run's (a run again starts afresh: together())

    try:
        change = mutate(
            db, ctx, goal_id, expected_version,
            action="adopt", event_type="goal_adopted",
            change=lambda goal, now: transition(goal, "adopt", now),
            already_done=lambda goal: goal.state == GoalState.ADOPTED and not goal.is_deleted,
            extra_checks=check,
        )  # fmt: skip
    except GoalBlocked as blocked:
        record_block(db, ctx, blocked, "adopt")
        raise
    if not change.changed:  # adopted meanwhile: no warnings of a run that was undone
        return change
    RECORDER.inc_and_observe(GOALS_ADOPTED, ADOPT_LATENCY, time.perf_counter() - started)
    return replace(change, warnings=tuple(warnings))


def record_block(db: Database, ctx: Context, blocked: GoalBlocked, action: str) -> None:
    """The ledger event and the metric of a refusal (its own transaction: the refused
    change itself was rolled back)."""
    verdict = blocked.verdict
    with db.write() as conn:
        record_event(
            conn, ctx, ctx.clock(), "goal_blocked_by_belief", blocked.goal_id,
            {"action": action, "belief_ids": verdict.belief_ids, "severity": verdict.severity,
             "reasons": [b.as_dict() for b in verdict.blocks]},
        )  # fmt: skip
    count_block(verdict.belief_ids)


def delete_goal(
    db: Database, ctx: Context, goal_id: str, expected_version: int | None = None,
    *, cascade: bool = True,
) -> Change:  # fmt: skip
    """Soft delete: the row and its history stay; reads and the ranking stop showing it.
    Its descendants are deleted with it or, without `cascade`, ChildrenOpen refuses while
    it has open children."""

    def check(conn: Connection, goal: Goal) -> None:
        if not cascade:
            refuse_open_children(conn, goal, "delete")

    return mutate(
        db, ctx, goal_id, expected_version,
        action="delete",
        event_type="goal_deleted",
        change=lambda goal, now: bump(replace(goal, deleted_at=now), now),
        already_done=lambda goal: goal.is_deleted,
        extra_checks=check,
        then=lambda conn, goal, now: after_delete(conn, ctx, now, goal),
    )  # fmt: skip
