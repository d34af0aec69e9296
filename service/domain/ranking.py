"""The prioritizer: a pure function of goals, active beliefs, weights and `now`.

    final = wv*value + we*(1-effort) + wr*(1-risk) + wu*urgency + wa*alignment + penalty

`urgency` follows the seed's horizon scoring (0 more than 24 h before the deadline,
rising linearly to 1 at it, -1 once it has passed, 0 without one); `alignment` is
the share of `aligns_with` beliefs that are active. A goal is **blocked** (penalty
-1, never selected) when it contradicts an active belief, when a goal it depends
on is not satisfied, or when its deadline has passed. The reported score is
clamped to [0, 1].

Order (total, so ranking is deterministic): unblocked before blocked; then higher
score; then higher unclamped sum; then earlier deadline (none last); then earlier
creation; then goal id.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from service.domain.goal import Goal, GoalState

URGENCY_WINDOW_S = 24 * 60 * 60
BLOCK_PENALTY = -1.0
_NO_DEADLINE = float("inf")
_BLOCKED_OFFSET = 100.0  # far above any unblocked raw sum (weights are at most 1 each)


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
    deadline = goal.deadline  # one definition of the deadline: Goal.deadline
    return Features(
        goal.id, goal.value, goal.effort, goal.risk,
        None if deadline is None else deadline.timestamp(), goal.created_at.timestamp(),
        goal.aligns_with, goal.contradicts, goal.depends_on,
    )  # fmt: skip


def urgency_at(deadline: float | None, now: float) -> float:
    if deadline is None:
        return 0.0
    remaining = deadline - now
    if remaining <= 0:
        return -1.0
    if remaining > URGENCY_WINDOW_S:
        return 0.0
    return 1.0 - remaining / URGENCY_WINDOW_S


def alignment_of(aligns_with: tuple[str, ...], active_beliefs: frozenset[str]) -> float:
    if not aligns_with:
        return 0.0
    return sum(map(active_beliefs.__contains__, aligns_with)) / len(aligns_with)


def _is_blocked(f: Features, inputs: RankingInputs, now: float) -> bool:
    """`bool(blocks(...))` without building the explanation: the hot loop of a 100k-goal
    rebuild cannot afford to format reasons it throws away (measured: ~45% slower).
    tests/unit/test_ranking.py::test_rank_and_explain_agree keeps the two in step."""
    return (
        (f.deadline is not None and f.deadline <= now)
        or (bool(f.contradicts) and not inputs.active_beliefs.isdisjoint(f.contradicts))
        or (bool(f.depends_on) and not inputs.satisfied_goals.issuperset(f.depends_on))
    )


def _terms(f: Features, w: Weights, urg: float, ali: float, blocked: bool) -> tuple[float, ...]:
    """The formula, term by term, in one place."""
    return (
        w.value * f.value,
        w.effort * (1.0 - f.effort),
        w.risk * (1.0 - f.risk),
        w.urgency * urg,
        w.alignment * ali,
        BLOCK_PENALTY if blocked else 0.0,
    )


TERM_NAMES = ("value", "effort", "risk", "urgency", "alignment", "penalty")


def clamp(raw: float) -> float:
    return 0.0 if raw < 0.0 else 1.0 if raw > 1.0 else raw


@dataclass(frozen=True, slots=True)
class Block:
    """Why a goal is blocked: the kind, and which belief, goal or deadline."""

    reason: str  # "contradicts_belief" | "dependency_unsatisfied" | "deadline_passed"
    ref: str

    def as_dict(self) -> dict[str, str]:
        return {"reason": self.reason, "ref": self.ref}


def blocks(f: Features, inputs: RankingInputs) -> list[Block]:
    found = [Block("contradicts_belief", b) for b in f.contradicts if b in inputs.active_beliefs]
    found += [
        Block("dependency_unsatisfied", dep)
        for dep in f.depends_on
        if dep not in inputs.satisfied_goals
    ]
    if f.deadline is not None and f.deadline <= inputs.now.timestamp():
        found.append(Block("deadline_passed", datetime.fromtimestamp(f.deadline, UTC).isoformat()))
    return found


@dataclass(frozen=True, slots=True)
class Score:
    """A goal's score with its term-by-term explanation."""

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


def explain(goal: Goal | Features, inputs: RankingInputs) -> Score:
    """One goal's score with every term and, when blocked, every reason."""
    f = goal if isinstance(goal, Features) else features(goal)
    now = inputs.now.timestamp()
    urg = urgency_at(f.deadline, now)
    ali = alignment_of(f.aligns_with, inputs.active_beliefs)
    blocked_by = tuple(blocks(f, inputs))
    terms = _terms(f, inputs.weights, urg, ali, bool(blocked_by))
    raw = sum(terms)
    return Score(f.goal_id, clamp(raw), raw, dict(zip(TERM_NAMES, terms, strict=True)), urg, ali,
                 blocked_by)  # fmt: skip


class Ranked(NamedTuple):
    goal_id: str
    score: float
    raw: float
    blocked: bool


def rank(goals: Iterable[Features], inputs: RankingInputs) -> list[Ranked]:
    """Every goal scored, best first, in the documented total order."""
    now, w = inputs.now.timestamp(), inputs.weights
    active = inputs.active_beliefs
    keyed: list[tuple[float, float, float, str, float, bool]] = []
    append = keyed.append
    for f in goals:
        # The helpers are called only when the goal has what they look at: most goals
        # have no deadline, beliefs or dependencies, and a call costs more than the test.
        has_deadline = f.deadline is not None
        blocked = (
            _is_blocked(f, inputs, now) if has_deadline or f.contradicts or f.depends_on else False
        )
        raw: float = sum(
            _terms(
                f, w,
                urgency_at(f.deadline, now) if has_deadline else 0.0,
                alignment_of(f.aligns_with, active) if f.aligns_with else 0.0,
                blocked,
            )
        )  # fmt: skip
        # clamp() is monotonic, so "blocked last, then score, then raw" is one float:
        # blocked goals sit above _BLOCKED_OFFSET - raw. A distinct float first lets
        # the sort compare floats instead of whole tuples; the rest only breaks ties.
        append(
            (
                (_BLOCKED_OFFSET - raw) if blocked else -raw,
                _NO_DEADLINE if f.deadline is None else f.deadline,
                f.created, f.goal_id, raw, blocked,
            )
        )  # fmt: skip
    keyed.sort()
    return [Ranked(k[3], clamp(k[4]), k[4], k[5]) for k in keyed]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the hot cache holds of one goal: where it ranks, why, and as of when.

    `seq` is the ledger head the inputs were read at and `computed_at` the `now`
    used: together they say which of two snapshots of a goal is the newer.
    """

    goal_id: str
    version: int
    state: str
    category: str
    placement: str  # "ranked" | "blocked" | "none" (not adopted, or deleted)
    deleted: bool
    score: Score | None
    deadline: float | None
    created: float
    seq: int
    computed_at: float


def snapshot(goal: Goal, inputs: RankingInputs, seq: int) -> Snapshot:
    f = features(goal)
    rankable = goal.state == GoalState.ADOPTED and not goal.is_deleted
    scored = explain(f, inputs) if rankable else None
    placement = "none" if scored is None else ("blocked" if scored.blocked else "ranked")
    return Snapshot(
        goal.id, goal.version, goal.state.value, goal.category.value, placement,
        goal.is_deleted, scored, f.deadline, f.created, seq, inputs.now.timestamp(),
    )  # fmt: skip
