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

Many goals are scored as columns (NumPy arrays, one per feature) by the same
`_terms` that explains one goal: at 100k goals a Python loop spends ~3 us a goal,
the arrays a fraction of that. Only the sparse parts (beliefs, dependencies) loop,
and only over the goals that have them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any, NamedTuple, TypeVar, overload

import numpy as np
import numpy.typing as npt

from service.domain.goal import Goal, GoalState, deadline_after

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]

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
    return features_of(
        goal.id, goal.value, goal.effort, goal.risk, goal.created_at, goal.horizon_max_min,
        goal.aligns_with, goal.contradicts, goal.depends_on,
    )  # fmt: skip


def features_of(
    goal_id: str, value: float, effort: float, risk: float, created_at: datetime,
    horizon_max_min: int | None, aligns_with: tuple[str, ...], contradicts: tuple[str, ...],
    depends_on: tuple[str, ...],
) -> Features:  # fmt: skip
    """Features from a goal's stored fields, without building the whole Goal."""
    deadline = deadline_after(created_at, horizon_max_min)
    return Features(
        goal_id, value, effort, risk, None if deadline is None else deadline.timestamp(),
        created_at.timestamp(), aligns_with, contradicts, depends_on,
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


N = TypeVar("N", float, Floats)


def _terms(
    w: Weights, value: N, effort: N, risk: N, urg: N, ali: N, blocked: N
) -> tuple[N, N, N, N, N, N]:
    """The formula, term by term, in one place: for one goal (floats) or many (arrays).
    `blocked` is 1.0 or 0.0; adding 0.0 turns the penalty's -0.0 into 0.0."""
    return (
        w.value * value,
        w.effort * (1.0 - effort),
        w.risk * (1.0 - risk),
        w.urgency * urg,
        w.alignment * ali,
        BLOCK_PENALTY * blocked + 0.0,
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


class Score(NamedTuple):
    """A goal's score with its term-by-term explanation (a NamedTuple: a 100k-goal rebuild
    makes one per goal, and a frozen dataclass costs five times as much to build)."""

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
    terms = _terms(inputs.weights, f.value, f.effort, f.risk, urg, ali, float(bool(blocked_by)))
    raw = sum(terms)
    return Score(f.goal_id, clamp(raw), raw, dict(zip(TERM_NAMES, terms, strict=True)), urg, ali,
                 blocked_by)  # fmt: skip


@dataclass(frozen=True, eq=False)
class FeatureTable:
    """Goals' features as columns: what the prioritizer scores many goals from."""

    rows: Sequence[Features]
    value: Floats
    effort: Floats
    risk: Floats
    deadline: Floats  # +inf: no deadline
    created: Floats

    @classmethod
    def of(cls, goals: Iterable[Features]) -> FeatureTable:
        rows = goals if isinstance(goals, list | tuple) else list(goals)
        n = len(rows)

        def column(values: Iterable[float]) -> Floats:
            # fromiter fills the array from an iterator: no 100k-element tuple to build
            # (and for the garbage collector to walk), ~4x faster than zip(*rows).
            return np.fromiter(values, np.float64, n)

        deadlines = (_NO_DEADLINE if d is None else d for d in map(attrgetter("deadline"), rows))
        return cls(
            rows, column(map(attrgetter("value"), rows)), column(map(attrgetter("effort"), rows)),
            column(map(attrgetter("risk"), rows)), column(deadlines),
            column(map(attrgetter("created"), rows)),
        )  # fmt: skip

    def __len__(self) -> int:
        return len(self.rows)


@dataclass(frozen=True, eq=False)
class Scores:
    """Every goal of a FeatureTable scored: one array per quantity, in the table's order."""

    urgency: Floats
    alignment: Floats
    blocked: Bools
    terms: tuple[Floats, ...]
    raw: Floats


def score_table(table: FeatureTable, inputs: RankingInputs) -> Scores:
    now, w = inputs.now.timestamp(), inputs.weights
    active, satisfied = inputs.active_beliefs, inputs.satisfied_goals
    remaining = table.deadline - now
    urgency = np.where(
        remaining <= 0.0, -1.0,
        np.where(remaining > URGENCY_WINDOW_S, 0.0, 1.0 - remaining / URGENCY_WINDOW_S),
    )  # fmt: skip
    alignment = np.zeros(len(table))
    blocked = remaining <= 0.0  # the deadline has passed (none: +inf, never)
    # The sparse parts, and only over goals that have them; the rules are urgency_at,
    # alignment_of and blocks() (tests/unit/test_ranking.py keeps them in step).
    for i, f in enumerate(table.rows):
        if f.aligns_with:
            alignment[i] = alignment_of(f.aligns_with, active)
        if (f.contradicts and not active.isdisjoint(f.contradicts)) or (
            f.depends_on and not satisfied.issuperset(f.depends_on)
        ):
            blocked[i] = True
    terms = _terms(
        w, table.value, table.effort, table.risk, urgency, alignment, blocked.astype(np.float64)
    )
    raw = np.zeros(len(table))
    for term in terms:  # left to right, as sum() adds one goal's terms in explain()
        raw = raw + term
    return Scores(urgency, alignment, blocked, terms, raw)


class Ranked(NamedTuple):
    goal_id: str
    score: float
    raw: float
    blocked: bool


class Ranking(Sequence[Ranked]):
    """Goals best first in the documented total order; Ranked items are made on demand."""

    def __init__(self, table: FeatureTable, scores: Scores) -> None:
        self._rows, self._raw, self._blocked = table.rows, scores.raw, scores.blocked
        # clamp() is monotonic, so "blocked last, then score, then raw" is one float:
        # blocked goals sit above _BLOCKED_OFFSET - raw.
        first = np.where(scores.blocked, _BLOCKED_OFFSET - scores.raw, -scores.raw)
        order = np.lexsort((table.created, table.deadline, first))
        self._order: list[int] = _ties_by_id(
            order.tolist(), (first, table.deadline, table.created), table.rows
        )
        self.unblocked = int(len(self._order) - np.count_nonzero(scores.blocked))

    def __len__(self) -> int:
        return len(self._order)

    @overload
    def __getitem__(self, index: int) -> Ranked: ...
    @overload
    def __getitem__(self, index: slice) -> list[Ranked]: ...
    def __getitem__(self, index: int | slice) -> Ranked | list[Ranked]:
        if isinstance(index, slice):
            return [self._item(i) for i in self._order[index]]
        return self._item(self._order[index])

    def __iter__(self) -> Iterator[Ranked]:
        return map(self._item, self._order)

    def top(self, limit: int, include_blocked: bool = False) -> list[Ranked]:
        return self[: limit if include_blocked else min(limit, self.unblocked)]

    def _item(self, i: int) -> Ranked:
        raw = float(self._raw[i])
        return Ranked(self._rows[i].goal_id, clamp(raw), raw, bool(self._blocked[i]))


def _ties_by_id(order: list[int], keys: tuple[Floats, ...], rows: Sequence[Features]) -> list[int]:
    """Order runs equal on every float key by goal id, the last tie-breaker."""
    if len(order) < 2:
        return order
    idx = np.array(order)
    same = np.ones(len(order) - 1, dtype=bool)
    for key in keys:
        ordered = key[idx]
        same &= ordered[1:] == ordered[:-1]
    for start in np.flatnonzero(same & ~np.concatenate(([False], same[:-1]))).tolist():
        stop = start + 1
        while stop < len(same) and same[stop]:
            stop += 1
        order[start : stop + 1] = sorted(order[start : stop + 1], key=lambda i: rows[i].goal_id)
    return order


def rank(goals: Iterable[Features] | FeatureTable, inputs: RankingInputs) -> Ranking:
    """Every goal scored, best first, in the documented total order."""
    table = goals if isinstance(goals, FeatureTable) else FeatureTable.of(goals)
    return Ranking(table, score_table(table, inputs))


class Snapshot(NamedTuple):
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


class Facts(NamedTuple):
    """What a snapshot says of a goal besides its features."""

    version: int
    state: str
    category: str
    deleted: bool


def facts(goal: Goal) -> Facts:
    return Facts(goal.version, goal.state.value, goal.category.value, goal.is_deleted)


def snapshots(
    goals: Sequence[tuple[Features, Facts]], inputs: RankingInputs, seq: int
) -> list[Snapshot]:
    """Snapshots of many goals, the adopted live ones scored together as columns."""
    rankable = [
        i for i, (_, fa) in enumerate(goals) if fa.state == GoalState.ADOPTED and not fa.deleted
    ]
    table = FeatureTable.of([goals[i][0] for i in rankable])
    scores = score_table(table, inputs)
    urgency, alignment, raw = (
        scores.urgency.tolist(),
        scores.alignment.tolist(),
        scores.raw.tolist(),
    )
    blocked = scores.blocked.tolist()
    terms = list(zip(*(t.tolist() for t in scores.terms), strict=True)) if rankable else []
    scored: dict[int, Score] = {}
    for j, i in enumerate(rankable):
        f = goals[i][0]
        blocked_by = tuple(blocks(f, inputs)) if blocked[j] else ()
        named = dict(zip(TERM_NAMES, terms[j], strict=True))
        scored[i] = Score(f.goal_id, clamp(raw[j]), raw[j], named, urgency[j], alignment[j],
                          blocked_by)  # fmt: skip
    now = inputs.now.timestamp()
    out = []
    for i, (f, fa) in enumerate(goals):
        score = scored.get(i)
        placement = "none" if score is None else ("blocked" if score.blocked else "ranked")
        out.append(
            Snapshot(f.goal_id, fa.version, fa.state, fa.category, placement, fa.deleted, score,
                     f.deadline, f.created, seq, now)
        )  # fmt: skip
    return out


def snapshot(goal: Goal, inputs: RankingInputs, seq: int) -> Snapshot:
    return snapshots([(features(goal), facts(goal))], inputs, seq)[0]
