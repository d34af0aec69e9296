"""What a score depends on: a goal's features, and the weights, beliefs and `now`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

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
    manual_block: str | None = None  # the person's reason a goal is held (None: it is not)


def features(goal: Goal) -> Features:
    deadline = goal.deadline  # created_at + horizon_max_min (FeatureTable.stored() agrees)
    return Features(
        goal.id, goal.value, goal.effort, goal.risk,
        None if deadline is None else deadline.timestamp(), goal.created_at.timestamp(),
        goal.aligns_with, goal.contradicts, goal.depends_on, manual_reason(goal.manual_block),
    )  # fmt: skip


def manual_reason(manual_block: Mapping[str, Any] | None) -> str | None:
    """The reason of a goal's manual block ({reason, actor, at}), as ranking names it:
    None when the goal is not held by hand."""
    if manual_block is None:
        return None
    return str(manual_block.get("reason") or "") or "(no reason given)"
