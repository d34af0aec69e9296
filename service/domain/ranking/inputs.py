"""What a score depends on: a goal's features, and the weights, beliefs and `now`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from service.domain.goal import Goal


@dataclass(frozen=True, slots=True)
class Weights:
    value: float = 0.5
    effort: float = 0.25
    risk: float = 0.15
    urgency: float = 0.05
    alignment: float = 0.05


@dataclass(frozen=True, slots=True)
class RankingInputs:
    """Everything besides the goals that a score depends on."""

    now: datetime
    weights: Weights = Weights()
    active_beliefs: frozenset[str] = frozenset()
    satisfied_goals: frozenset[str] = frozenset()


class Features(NamedTuple):
    """What ranking reads of a goal, with instants as epoch seconds (cheap to compare)."""

    goal_id: str
    value: float
    effort: float
    risk: float
    deadline: float | None
    created: float
    aligns_with: tuple[str, ...]
    contradicts: tuple[str, ...]
    depends_on: tuple[str, ...]


def features(goal: Goal) -> Features:
    deadline = goal.deadline  # created_at + horizon_max_min (FeatureTable.stored() agrees)
    return Features(
        goal.id, goal.value, goal.effort, goal.risk,
        None if deadline is None else deadline.timestamp(), goal.created_at.timestamp(),
        goal.aligns_with, goal.contradicts, goal.depends_on,
    )  # fmt: skip
