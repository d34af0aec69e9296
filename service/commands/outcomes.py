"""What a selection led to, recorded for the goal_selected decision (seed 000)."""

from __future__ import annotations

from datetime import datetime

from service.commands.base import Context
from service.commands.decisions import add_outcome
from service.domain.decisions import GOAL_SELECTED
from service.domain.goal import Goal
from service.domain.tasks import Task, TaskState, attempts
from service.store.db import Connection


def selection_outcome(
    conn: Connection, ctx: Context, now: datetime, goal: Goal, tasks: list[Task],
    *, satisfied: bool,
) -> None:  # fmt: skip
    """goal_satisfaction (1 satisfied, 0 abandoned) and task_completion_rate (verified
    attempts / attempts), inside the caller's transaction."""
    made = attempts(tasks)
    if not made:  # only tasks recorded by hand: no selection to judge
        return
    verified = sum(t.state == TaskState.VERIFIED for t in made)
    metrics = {
        "goal_satisfaction": 1.0 if satisfied else 0.0,
        "task_completion_rate": verified / len(made) if made else 0.0,
    }
    add_outcome(conn, ctx, now, GOAL_SELECTED, goal.id, metrics)
