"""One goal scored and explained: every term and, when it is blocked, every reason.

The hot request paths (a goal's score, selection) explain one goal at a time, with
the formula the columns use (formula.py) applied to floats.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, NamedTuple

from service.domain.blocks import CONTRADICTS_BELIEF, DEADLINE_PASSED, DEPENDENCY_UNSATISFIED, Block
from service.domain.goal import Goal
from service.domain.ranking.formula import (
    NO_DEADLINE,
    TERM_NAMES,
    alignment_of,
    clamp,
    contradicted,
    passed,
    unmet,
    weigh,
)
from service.domain.ranking.inputs import Features, RankingInputs, TreeFacts, features, under


class Score(NamedTuple):
    """A goal's score with its term-by-term explanation (a NamedTuple, cheaper to build than
    a frozen dataclass: a rebuild makes one per goal)."""

    goal_id: str
    score: float
    raw: float
    terms: dict[str, float]
    urgency: float
    alignment: float
    blocked_by: tuple[Block, ...]

    @property
    def blocked(self) -> bool:
        return bool(self.blocked_by)

    def as_dict(self) -> dict[str, Any]:
        return {
            "goal_id": self.goal_id,
            "score": self.score,
            "raw": self.raw,
            "blocked": self.blocked,
            "blocked_by": [b.as_dict() for b in self.blocked_by],
            "urgency": self.urgency,
            "alignment": self.alignment,
            "terms": self.terms,
        }


def blocks(f: Features, inputs: RankingInputs) -> list[Block]:
    """Every reason the goal is blocked: what it is held by (a manual block with the
    person's reason, its tree's blocks), the active beliefs it contradicts, the goals it
    depends on that are not satisfied, its deadline (its tree's, when earlier) once
    passed."""
    active, satisfied = inputs.active_beliefs, inputs.satisfied_goals
    found = list(f.holds)
    found += [Block(CONTRADICTS_BELIEF, ref=b) for b in contradicted(f.contradicts, active)]
    found += [Block(DEPENDENCY_UNSATISFIED, ref=g) for g in unmet(f.depends_on, satisfied)]
    if f.deadline is not None and passed(f.deadline - inputs.now.timestamp()):
        found.append(deadline_passed(f.deadline))
    return found


def deadline_passed(deadline: float) -> Block:
    """The block a passed deadline (epoch seconds) puts on a goal: its ref is the deadline
    in ISO 8601 (so the cache, which holds the deadline, need not keep the ref too)."""
    return Block(DEADLINE_PASSED, ref=datetime.fromtimestamp(deadline, UTC).isoformat())


def explain(goal: Goal | Features, inputs: RankingInputs, tree: TreeFacts | None = None) -> Score:
    """One goal's score with every term and, when blocked, every reason; `tree`: what the
    goal's tree makes of it (the commands read it: commands/ranking.py tree_of())."""
    if isinstance(goal, Features):
        f = goal if tree is None else under(goal, tree)
    else:
        f = features(goal, tree)
    deadline = NO_DEADLINE if f.deadline is None else f.deadline
    ali = alignment_of(f.aligns_with, inputs.active_beliefs)
    blocked_by = tuple(blocks(f, inputs))
    urg, weighted, raw = weigh(
        inputs.weights, f.value, f.effort, f.risk, deadline - inputs.now.timestamp(), ali,
        1.0 if blocked_by else 0.0,
    )  # fmt: skip
    return Score(f.goal_id, clamp(raw), raw, dict(zip(TERM_NAMES, weighted, strict=True)), urg,
                 ali, blocked_by)  # fmt: skip
