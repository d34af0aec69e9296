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

from service.domain.goal import Goal, GoalState

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]

URGENCY_WINDOW_S = 24 * 60 * 60
BLOCK_PENALTY = -1.0
NO_DEADLINE = float("inf")  # a goal without one, in deadline columns
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
    deadline = goal.deadline  # created_at + horizon_max_min (FeatureTable.stored() agrees)
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

    ids: Sequence[str]
    value: Floats
    effort: Floats
    risk: Floats
    deadline: Floats  # +inf: no deadline
    created: Floats
    aligns_with: Sequence[tuple[str, ...]]
    contradicts: Sequence[tuple[str, ...]]
    depends_on: Sequence[tuple[str, ...]]

    @classmethod
    def of(cls, goals: Iterable[Features]) -> FeatureTable:
        rows = goals if isinstance(goals, list | tuple) else list(goals)
        n = len(rows)

        def column(values: Iterable[float]) -> Floats:
            # fromiter fills the array from an iterator: no 100k-element tuple to build
            # (and for the garbage collector to walk), ~4x faster than zip(*rows).
            return np.fromiter(values, np.float64, n)

        deadlines = (NO_DEADLINE if d is None else d for d in map(attrgetter("deadline"), rows))
        return cls(
            [f.goal_id for f in rows], column(map(attrgetter("value"), rows)),
            column(map(attrgetter("effort"), rows)), column(map(attrgetter("risk"), rows)),
            column(deadlines), column(map(attrgetter("created"), rows)),
            [f.aligns_with for f in rows], [f.contradicts for f in rows],
            [f.depends_on for f in rows],
        )  # fmt: skip

    @classmethod
    def stored(
        cls, ids: Sequence[str], value: Sequence[float], effort: Sequence[float],
        risk: Sequence[float], created_us: npt.NDArray[np.int64],
        horizon_max_min: Sequence[int | None],
        aligns_with: Sequence[tuple[str, ...]], contradicts: Sequence[tuple[str, ...]],
        depends_on: Sequence[tuple[str, ...]],
    ) -> FeatureTable:  # fmt: skip
        """From stored columns, creation instants in epoch microseconds: what features()
        makes of each goal (the deadline is created + horizon_max_min, as deadline_after()
        says), for a whole table at array speed."""
        created = created_us
        horizon = np.array([0 if h is None else h for h in horizon_max_min], dtype=np.int64)
        # Integer microseconds, then one division: exactly datetime.timestamp()'s float.
        deadline = np.where(
            np.array([h is None for h in horizon_max_min], dtype=bool),
            NO_DEADLINE, (created + horizon * 60_000_000) / 1e6,
        )  # fmt: skip
        return cls(
            ids, np.array(value, dtype=np.float64), np.array(effort, dtype=np.float64),
            np.array(risk, dtype=np.float64), deadline, created / 1e6, aligns_with, contradicts,
            depends_on,
        )  # fmt: skip

    def __len__(self) -> int:
        return len(self.ids)

    def features(self, i: int) -> Features:
        """One goal's features, back from the columns."""
        deadline = float(self.deadline[i])
        return Features(
            self.ids[i], float(self.value[i]), float(self.effort[i]), float(self.risk[i]),
            None if deadline == NO_DEADLINE else deadline, float(self.created[i]),
            self.aligns_with[i], self.contradicts[i], self.depends_on[i],
        )  # fmt: skip


@dataclass(frozen=True, eq=False)
class Scores:
    """Every goal of a FeatureTable scored: one array per quantity, in the table's order."""

    urgency: Floats
    alignment: Floats
    blocked: Bools
    terms: tuple[Floats, ...]
    raw: Floats

    @property
    def score(self) -> Floats:
        """The reported score: raw clamped to [0, 1], as clamp() does for one goal."""
        return np.clip(self.raw, 0.0, 1.0)


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
    for i, aligns in enumerate(table.aligns_with):
        if aligns:
            alignment[i] = alignment_of(aligns, active)
    for i, contradicts in enumerate(table.contradicts):
        if contradicts and not active.isdisjoint(contradicts):
            blocked[i] = True
    for i, depends_on in enumerate(table.depends_on):
        if depends_on and not satisfied.issuperset(depends_on):
            blocked[i] = True
    terms = _terms(
        w, table.value, table.effort, table.risk, urgency, alignment, blocked.astype(np.float64)
    )
    raw = np.zeros(len(table))
    for term in terms:  # left to right, as sum() adds one goal's terms in explain()
        raw = raw + term
    return Scores(urgency, alignment, blocked, terms, raw)


T = TypeVar("T")


class _OnDemand(Sequence[T]):
    """A sequence whose items are made when asked for, from positions in columns."""

    _positions: Sequence[int]

    def _item(self, i: int) -> T:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self._positions)

    @overload
    def __getitem__(self, index: int) -> T: ...
    @overload
    def __getitem__(self, index: slice) -> list[T]: ...
    def __getitem__(self, index: int | slice) -> T | list[T]:
        if isinstance(index, slice):
            return [self._item(i) for i in self._positions[index]]
        return self._item(self._positions[index])

    def __iter__(self) -> Iterator[T]:
        return map(self._item, self._positions)


class Ranked(NamedTuple):
    goal_id: str
    score: float
    raw: float
    blocked: bool


class Ranking(_OnDemand[Ranked]):
    """Goals best first in the documented total order; Ranked items are made on demand."""

    def __init__(self, table: FeatureTable, scores: Scores) -> None:
        self._ids, self._raw, self._blocked = table.ids, scores.raw, scores.blocked
        # clamp() is monotonic, so "blocked last, then score, then raw" is one float:
        # blocked goals sit above _BLOCKED_OFFSET - raw.
        first = np.where(scores.blocked, _BLOCKED_OFFSET - scores.raw, -scores.raw)
        order = np.lexsort((table.created, table.deadline, first))
        self._positions = _ties_by_id(
            order.tolist(), (first, table.deadline, table.created), table.ids
        )
        self.unblocked = int(len(self._positions) - np.count_nonzero(scores.blocked))

    def top(self, limit: int, include_blocked: bool = False) -> list[Ranked]:
        return self[: limit if include_blocked else min(limit, self.unblocked)]

    def _item(self, i: int) -> Ranked:
        raw = float(self._raw[i])
        return Ranked(self._ids[i], clamp(raw), raw, bool(self._blocked[i]))


def _ties_by_id(order: list[int], keys: tuple[Floats, ...], ids: Sequence[str]) -> list[int]:
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
        order[start : stop + 1] = sorted(order[start : stop + 1], key=ids.__getitem__)
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


@dataclass(frozen=True, eq=False)
class FactTable:
    """Facts of many goals as columns, in a FeatureTable's order."""

    version: Sequence[int]
    state: Sequence[str]
    category: Sequence[str]
    deleted: Sequence[bool]

    @classmethod
    def of(cls, rows: Sequence[Facts]) -> FactTable:
        return cls(
            [f.version for f in rows], [f.state for f in rows], [f.category for f in rows],
            [f.deleted for f in rows],
        )  # fmt: skip


class Snapshots(_OnDemand[Snapshot]):
    """Snapshots of many goals, as columns (what the cache writes from), and one
    Snapshot at a time on demand. The adopted live goals are scored; the others are
    placed "none"."""

    def __init__(
        self, table: FeatureTable, facts: FactTable, inputs: RankingInputs, seq: int
    ) -> None:
        self.table, self.facts, self.seq = table, facts, seq
        self.computed_at = inputs.now.timestamp()
        self.scores = score_table(table, inputs)
        adopted = GoalState.ADOPTED.value
        self.rankable = [
            state == adopted and not deleted
            for state, deleted in zip(facts.state, facts.deleted, strict=True)
        ]
        self.placement = [
            ("blocked" if blocked else "ranked") if rankable else "none"
            for rankable, blocked in zip(self.rankable, self.scores.blocked.tolist(), strict=True)
        ]
        self.blocked_by = {
            i: tuple(blocks(table.features(i), inputs))
            for i, placement in enumerate(self.placement)
            if placement == "blocked"
        }
        self._positions = range(len(table))

    def _item(self, i: int) -> Snapshot:
        t, fa, sc = self.table, self.facts, self.scores
        score = None
        if self.rankable[i]:
            raw = float(sc.raw[i])
            terms = dict(zip(TERM_NAMES, (float(term[i]) for term in sc.terms), strict=True))
            score = Score(t.ids[i], clamp(raw), raw, terms, float(sc.urgency[i]),
                          float(sc.alignment[i]), self.blocked_by.get(i, ()))  # fmt: skip
        deadline = float(t.deadline[i])
        return Snapshot(
            t.ids[i], fa.version[i], fa.state[i], fa.category[i], self.placement[i],
            fa.deleted[i], score, None if deadline == NO_DEADLINE else deadline,
            float(t.created[i]), self.seq, self.computed_at,
        )  # fmt: skip


def snapshots(
    goals: Sequence[tuple[Features, Facts]], inputs: RankingInputs, seq: int
) -> Snapshots:
    """Snapshots of goals given one by one (FeatureTable.stored() and FactTable build the
    columns straight from storage)."""
    return Snapshots(
        FeatureTable.of([g[0] for g in goals]), FactTable.of([g[1] for g in goals]), inputs, seq
    )


def snapshot(goal: Goal, inputs: RankingInputs, seq: int) -> Snapshots:
    """One goal's snapshot, as a batch of one (what the cache writes)."""
    return snapshots([(features(goal), facts(goal))], inputs, seq)
