"""What people add to a goal besides its fields: manual blocks (seed 001's Blocked)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from service.commands.base import Change, Context
from service.commands.goals import mutate
from service.domain.errors import IllegalTransition
from service.domain.goal import Goal, bump
from service.domain.timefmt import format_ts
from service.store.db import Database


def block_goal(
    db: Database, ctx: Context, goal_id: str, reason: str, expected_version: int | None = None
) -> Change:
    """Hold a goal that is not finished: it is never selected until unblocked, and the
    ranking says why. Blocking it again for the same reason changes nothing."""

    def change(goal: Goal, now: datetime) -> Goal:
        if goal.is_terminal:
            raise IllegalTransition(goal.id, goal.state.value, "block")
        block = {"reason": reason, "actor": ctx.actor, "at": format_ts(now)}
        return bump(replace(goal, manual_block=block), now)

    return mutate(
        db, ctx, goal_id, expected_version, action="block", event_type="goal_blocked",
        change=change,
        already_done=lambda goal: (goal.manual_block or {}).get("reason") == reason
        and not goal.is_deleted,
    )  # fmt: skip


def unblock_goal(
    db: Database, ctx: Context, goal_id: str, expected_version: int | None = None
) -> Change:
    """Lift a manual block; unblocking a goal that is not blocked changes nothing."""
    return mutate(
        db, ctx, goal_id, expected_version, action="unblock", event_type="goal_unblocked",
        change=lambda goal, now: bump(replace(goal, manual_block=None), now),
        already_done=lambda goal: goal.manual_block is None and not goal.is_deleted,
    )  # fmt: skip
