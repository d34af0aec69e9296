"""The verification gate (satisfy), and what the service derives on a goal from its tasks.

A goal is satisfied only through the gate: live tasks, every one verified, every
acceptance criterion met, and a result valid for its goal type; the typed result is
then a field of the goal. `progress` (verified live / live tasks) and `last_failure`
(the last GoalFailure) are derived fields: written with their own ledger event
(`goal_progressed`, `goal_failure_recorded`, each a `set` replay folds) and no version
bump, so a task review does not make the owner's If-Match stale.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from service.commands.base import Context, record_derived
from service.commands.goals import mutate
from service.commands.outcomes import selection_outcome
from service.commands.trees import counted_children, refuse_open_children, settle
from service.domain.errors import ErrorKind, FieldError, GoalStoreError
from service.domain.goal import Goal, GoalState, transition
from service.domain.goal_types import result_failure, validate_result
from service.domain.tasks import GateCounts, GoalFailure, gate
from service.domain.timefmt import format_ts
from service.store import tasks as task_table
from service.store.db import Connection, Database


@dataclass
class GateClosed(GoalStoreError):
    kind = ErrorKind.CONFLICT
    code = "gate-closed"
    title = "Verification gate closed"

    goal_id: str
    counts: GateCounts
    unmet_criteria: list[str] = field(default_factory=list)
    tree_block: dict[str, Any] | None = None  # an abandoned child holds the goal

    def fields(self) -> dict[str, Any]:
        return {"goal_id": self.goal_id, **self.counts.as_dict(),
                "unmet_criteria": list(self.unmet_criteria),
                "tree_block": self.tree_block}  # fmt: skip

    def __str__(self) -> str:
        c = self.counts
        tasks = f"{c.verified} of {c.live} live tasks verified" if c.live else "no task to verify"
        if self.tree_block is not None:
            tasks = f"held: its child {self.tree_block.get('ref')} was abandoned, not replaced"
        criteria = (f"; acceptance criteria not met: {', '.join(self.unmet_criteria)}"
                    if self.unmet_criteria else "")  # fmt: skip
        return f"goal {self.goal_id!r}: {tasks}{criteria}"


@dataclass
class ResultInvalid(GoalStoreError):
    """The result does not validate against the goal's type: a GoalFailure of error_type
    `validation`, whose suggestions and debug_info the problem carries too."""

    kind = ErrorKind.INVALID
    code = "invalid-result"
    title = "Invalid result (GoalFailure)"

    goal_id: str
    goal_type: str
    errors: list[FieldError]
    failure: GoalFailure | None = None

    def fields(self) -> dict[str, Any]:
        failure = self.failure or result_failure(self.goal_type, self.errors, at="")
        return {"goal_id": self.goal_id, "goal_type": self.goal_type,
                "errors": [e.as_dict() for e in self.errors],
                "error_type": failure.error_type, "suggestions": list(failure.suggestions),
                "debug_info": failure.debug_info}  # fmt: skip

    def __str__(self) -> str:
        return f"the result is not a valid {self.goal_type} result ({len(self.errors)} errors)"


# --- derived fields ---------------------------------------------------------------------


def refresh_progress(
    conn: Connection, ctx: Context, now: datetime, goal_id: str, task_id: str
) -> float:
    """The goal's `progress` after `task_id` changed, rolled up its tree (trees.settle):
    a `goal_progressed` event for each goal whose value moves."""
    return settle(conn, ctx, now, goal_id, {"task_id": task_id})


def record_failure(
    conn: Connection, ctx: Context, now: datetime, goal_id: str, failure: GoalFailure
) -> None:
    """The goal's `last_failure`, with a `goal_failure_recorded` event."""
    record_derived(conn, ctx, now, goal_id, "goal_failure_recorded",
                   {"last_failure": failure.as_dict()},
                   {"error_type": failure.error_type})  # fmt: skip


# --- the gate ---------------------------------------------------------------------------


def satisfy_goal(
    db: Database, ctx: Context, goal_id: str, result: Any, expected_version: int | None = None
) -> Goal:
    """The verification gate, for the goal's owner or an admin: every live task verified,
    every acceptance criterion met and a result valid for the goal's type, or nothing
    changes (GateClosed; ResultInvalid, recorded as the goal's last GoalFailure). The
    goal keeps the typed result. A stale expected version is a conflict event, as for
    every mutation; satisfying a satisfied goal again changes nothing."""
    invalid: list[ResultInvalid] = []
    parent: list[bool] = []  # whether children count for it: they are its work, not tasks
    held: list[dict[str, Any] | None] = []  # the block an abandoned child left, if it holds

    def change(goal: Goal, now: datetime) -> Goal:
        invalid.clear()  # a run again (service/store/together.py) starts afresh
        parent[:] = [bool(counted_children(db.connection(), goal.id))]
        held[:] = [goal.tree_block if goal.completion_policy != "any" else None]
        action = "complete" if parent[-1] else "satisfy"
        satisfied = replace(transition(goal, action, now), progress=1.0, tree_block=None)
        typed, errors = validate_result(goal, result)
        if typed is None:
            failure = result_failure(goal.goal_type, errors, format_ts(now))
            invalid.append(ResultInvalid(goal_id, goal.goal_type, errors, failure))
            return satisfied
        return replace(satisfied, result=typed.model_dump(mode="json"))

    def check(conn: Connection, satisfied: Goal) -> None:
        counts = gate(task_table.for_goal(conn, goal_id))
        unmet = satisfied.unmet_criteria()
        if parent[-1]:
            refuse_open_children(conn, satisfied, "satisfy")
        if not (counts.open or parent[-1]) or unmet or held[-1] is not None:
            raise GateClosed(goal_id, counts, unmet, held[-1])
        if invalid:  # after the gate: its 409 says more than a result's 422
            raise invalid[0]

    def outcome(conn: Connection, satisfied: Goal, now: datetime) -> None:
        tasks = task_table.for_goal(conn, goal_id)
        selection_outcome(conn, ctx, now, satisfied, tasks, satisfied=True)
        settle(conn, ctx, now, satisfied.parent_id, {"child_id": goal_id})

    try:
        done = mutate(
            db, ctx, goal_id, expected_version, action="satisfy", event_type="goal_satisfied",
            change=change, extra_checks=check, then=outcome,
            already_done=lambda goal: goal.state == GoalState.SATISFIED and not goal.is_deleted,
        )  # fmt: skip
    except ResultInvalid as refused:
        # The refused change was rolled back; the GoalFailure is kept in its own transaction.
        assert refused.failure is not None
        with db.write() as conn:
            record_failure(conn, ctx, ctx.clock(), goal_id, refused.failure)
        raise
    return done.goal
