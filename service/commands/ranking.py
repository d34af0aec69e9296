"""Ranking read from SQLite: the truth the Redis cache mirrors, and its fallback."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime

from service.commands.base import utcnow
from service.commands.goals import get_goal
from service.domain.decisions import GOAL_SELECTED
from service.domain.goal import Goal, GoalState, from_record
from service.domain.ranking import Ranked, RankingInputs, Score, explain, features, rank
from service.store import beliefs as belief_table
from service.store import decisions as decision_table
from service.store import goals as goal_table
from service.store.db import Database


def ranking_inputs(conn: sqlite3.Connection, now: datetime) -> RankingInputs:
    decision = decision_table.fetch(conn, GOAL_SELECTED)
    assert decision is not None, "migration 0002 registers goal_selected"
    return RankingInputs(
        now=now,
        weights=decision.weights(),
        active_beliefs=belief_table.active_ids(conn),
        satisfied_goals=goal_table.satisfied_ids(conn),
    )


def goal_score(db: Database, goal_id: str, now: datetime | None = None) -> tuple[Goal, Score]:
    """Any live goal's score with its explanation, as if it were ranked now."""
    with db.read() as conn:
        goal = get_goal(db, goal_id)
        return goal, explain(goal, ranking_inputs(conn, now or utcnow()))


@dataclass(frozen=True)
class RankedGoal:
    goal: Goal
    ranked: Ranked


def prioritized(
    db: Database,
    *,
    now: datetime | None = None,
    limit: int = 20,
    category: str | None = None,
    include_blocked: bool = False,
) -> list[RankedGoal]:
    """Adopted live goals, best first, computed from SQLite."""
    with db.read() as conn:
        inputs = ranking_inputs(conn, now or utcnow())
        goals = {
            record["id"]: from_record(record)
            for record in goal_table.live_in_state(conn, GoalState.ADOPTED.value, category)
        }
    ranked = rank((features(goal) for goal in goals.values()), inputs)
    if not include_blocked:
        ranked = [r for r in ranked if not r.blocked]
    return [RankedGoal(goals[r.goal_id], r) for r in ranked[:limit]]
