"""What /metrics reads from the store at scrape time: exact figures, never counted."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from service.domain.goal import GoalCategory, GoalState
from service.domain.tasks import TaskState
from service.domain.timefmt import parse_ts
from service.store import goals as goal_table
from service.store import outbox
from service.store import tasks as task_table
from service.store.db import Database


@dataclass(frozen=True)
class StoreFigures:
    goals: dict[tuple[str, str], int]  # (category, state) -> goals, every pair present
    tasks: dict[str, int]  # state -> tasks, every state present
    outbox_pending: int
    outbox_lag_s: float  # age of the oldest unapplied event; 0 when there is none

    @property
    def goals_by_state(self) -> dict[str, int]:
        by_state = dict.fromkeys((s.value for s in GoalState), 0)
        for (_, state), n in self.goals.items():
            by_state[state] = by_state.get(state, 0) + n
        return by_state


def store_figures(db: Database, now: datetime) -> StoreFigures:
    """One read transaction: goals per category and state, tasks per state, the outbox."""
    with db.read() as conn:
        goal_counts = goal_table.counts(conn)
        task_counts = task_table.counts(conn)
        backlog = outbox.backlog(conn)
    goals = {(c.value, s.value): 0 for c in GoalCategory for s in GoalState}
    for category, state, n in goal_counts:
        goals[(category, state)] = n
    tasks = dict.fromkeys((s.value for s in TaskState), 0) | task_counts
    oldest = backlog["oldest_unapplied_at"]
    lag = 0.0 if oldest is None else max(0.0, (now - parse_ts(oldest)).total_seconds())
    return StoreFigures(goals, tasks, backlog["unapplied"], lag)
