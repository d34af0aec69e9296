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
)
from service.commands.outcomes import selection_outcome
from service.commands.vetting import Vetting
from service.domain.errors import (
    FieldError,
    GoalAlreadyExists,
    GoalNotFound,
    InvalidGoal,
    InvalidInput,
    PreconditionRequired,
    VersionConflict,
)
from service.domain.goal import (
    Goal,
    GoalState,
    bump,
    from_record,
    record_changes,
    target_state,
    to_record,
    transition,
)
from service.domain.inputs import GoalCreate, GoalUpdate
from service.domain.vetting import GoalBlocked
from service.metrics import ADOPT_LATENCY, GOALS_ADOPTED, RECORDER, count_block
from service.store import beliefs as belief_table
from service.store import goals as goal_table
from service.store import tasks as task_table
from service.store.db import Connection, Database


def _check_references(conn: Connection, goal: Goal, *, names: tuple[str, ...]) -> None:
    """The goals `depends_on` and `related` name must exist; dependencies may not cycle."""
    for name in names:
        ids = list(getattr(goal, name))
        unknown = goal_table.missing(conn, ids) if ids else []
        if unknown:
            raise InvalidGoal([FieldError((name,), f"unknown goal ids: {', '.join(unknown)}")])
    cycle = "depends_on" in names and goal.depends_on
    if cycle and goal_table.depends_transitively(conn, list(goal.depends_on), goal.id):
        raise InvalidGoal([FieldError(("depends_on",), "would make a dependency cycle")])


# --- goal commands ------------------------------------------------------------------


def create_goal(db: Database, ctx: Context, spec: GoalCreate) -> Goal:
    with db.write() as conn:
        now = ctx.clock()
        goal = spec.build(owner=ctx.actor, now=now)
        if goal_table.fetch(conn, goal.id) is not None:
            raise GoalAlreadyExists(goal.id)
        _check_references(conn, goal, names=("depends_on", "related"))
        record = to_record(goal)
        goal_table.insert(conn, record)
        record_event(conn, ctx, now, "goal_created", goal.id, {"set": record})
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
        )
        total = goal_table.count(
            conn, state=state, category=category, include_deleted=include_deleted,
            assigned_to=assigned_to,
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
    """
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


def save_change(
    conn: Connection, ctx: Context, now: datetime, goal: Goal, changed: Goal,
    action: str, event_type: str, extra: dict[str, Any] | None = None,
) -> None:  # fmt: skip
    """Write a goal's change inside the caller's transaction: the row (at the version it
    had), the ledger event with the changed fields, and the outbox row."""
    changes = record_changes(to_record(goal), to_record(changed))
    goal_table.update(conn, goal.id, changes, goal.version)
    payload = {"action": action, "from_version": goal.version, "set": changes, **(extra or {})}
    record_event(conn, ctx, now, event_type, goal.id, payload)


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

    def check(conn: Connection, goal: Goal) -> None:
        named = tuple(n for n in ("depends_on", "related") if n in patch.model_fields_set)
        if named:
            _check_references(conn, goal, names=named)

    return mutate(
        db, ctx, goal_id, version,
        action="update", event_type="goal_updated", change=patch.apply, extra_checks=check,
    )  # fmt: skip


def _lifecycle(
    action: str,
    event_type: str,
    then: Callable[[Connection, Goal, datetime], None] | None = None,
) -> Callable[..., Change]:
    target = target_state(action)

    def command(
        db: Database, ctx: Context, goal_id: str, expected_version: int | None = None
    ) -> Change:
        return mutate(
            db, ctx, goal_id, expected_version,
            action=action,
            event_type=event_type,
            change=lambda goal, now: transition(goal, action, now),
            already_done=lambda goal: goal.state == target and not goal.is_deleted,
            then=then,
        )  # fmt: skip

    command.__name__ = f"{action}_goal"
    command.__doc__ = f"Move a goal to {target.value}; repeating it changes nothing."
    return command


def _abandoned(ctx: Context) -> Callable[[Connection, Goal, datetime], None]:
    def outcome(conn: Connection, goal: Goal, now: datetime) -> None:
        # a goal a selection executed: that selection led nowhere (selection_outcome
        # judges only goals with selection attempts)
        selection_outcome(conn, ctx, now, goal, task_table.for_goal(conn, goal.id),
                          satisfied=False)  # fmt: skip

    return outcome


def abandon_goal(
    db: Database, ctx: Context, goal_id: str, expected_version: int | None = None
) -> Change:
    """Move a goal to abandoned; repeating it changes nothing. Abandoning a goal that was
    executed records an outcome for the goal_selected decision."""
    command = _lifecycle("abandon", "goal_abandoned", then=_abandoned(ctx))
    return command(db, ctx, goal_id, expected_version)


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
        warnings.extend(verdict.warnings)

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
    if change.changed:
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
    db: Database, ctx: Context, goal_id: str, expected_version: int | None = None
) -> Change:
    """Soft delete: the row and its history stay; reads and the ranking stop showing it."""
    return mutate(
        db, ctx, goal_id, expected_version,
        action="delete",
        event_type="goal_deleted",
        change=lambda goal, now: bump(replace(goal, deleted_at=now), now),
        already_done=lambda goal: goal.is_deleted,
    )  # fmt: skip
