"""What the hot cache holds of each goal: where it ranks, why, and as of when.

Snapshots of many goals are columns (what the cache writes from) with each goal's
Snapshot made on demand; the adopted live goals are scored, the others placed "none".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from service.domain.blocks import Block
from service.domain.goal import Goal, GoalState
from service.domain.ranking.columns import FeatureTable, OnDemand, score_table
from service.domain.ranking.explanation import Score, blocks
from service.domain.ranking.formula import NO_DEADLINE, TERM_NAMES, clamp, urgency
from service.domain.ranking.inputs import Features, RankingInputs, TreeFacts, features


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
    deadline: float | None  # the goal's tree's, when earlier than its own
    created: float
    seq: int
    computed_at: float
    assigned_to: str | None = None
    related: tuple[str, ...] = ()
    parent_id: str | None = None
    progress: float = 0.0


class Facts(NamedTuple):
    """What a snapshot says of a goal besides its features (assigned_to, related, parent_id
    and progress only inform whoever reads the hash: they rank nothing)."""

    version: int
    state: str
    category: str
    deleted: bool
    assigned_to: str | None = None
    related: tuple[str, ...] = ()
    parent_id: str | None = None
    progress: float = 0.0


def facts(goal: Goal) -> Facts:
    return Facts(goal.version, goal.state.value, goal.category.value, goal.is_deleted,
                 goal.assigned_to, goal.related, goal.parent_id, goal.progress)  # fmt: skip


@dataclass(frozen=True, eq=False)
class FactTable:
    """Facts of many goals as columns, in a FeatureTable's order."""

    version: Sequence[int]
    state: Sequence[str]
    category: Sequence[str]
    deleted: Sequence[bool]
    assigned_to: Sequence[str | None]
    related: Sequence[tuple[str, ...]]
    parent_id: Sequence[str | None]
    progress: Sequence[float]

    @classmethod
    def of(cls, rows: Sequence[Facts]) -> FactTable:
        return cls(
            [f.version for f in rows], [f.state for f in rows], [f.category for f in rows],
            [f.deleted for f in rows], [f.assigned_to for f in rows], [f.related for f in rows],
            [f.parent_id for f in rows], [f.progress for f in rows],
        )  # fmt: skip


class Snapshots(OnDemand[Snapshot]):
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
        self.blocked_by: dict[int, tuple[Block, ...]] = {
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
            float(t.created[i]), self.seq, self.computed_at, fa.assigned_to[i], fa.related[i],
            fa.parent_id[i], float(fa.progress[i]),
        )  # fmt: skip


def held_urgency(deadline: float | None, computed_at: float) -> float:
    """The urgency a snapshot was scored with, from the deadline and the `now` it holds
    (score_table() computes it the same way, to the bit): the cache derives it rather
    than keep it."""
    return urgency((NO_DEADLINE if deadline is None else deadline) - computed_at)


def snapshots(
    goals: Sequence[tuple[Features, Facts]], inputs: RankingInputs, seq: int
) -> Snapshots:
    """Snapshots of goals given one by one (FeatureTable.stored() and FactTable build the
    columns straight from storage)."""
    return Snapshots(
        FeatureTable.of([g[0] for g in goals]), FactTable.of([g[1] for g in goals]), inputs, seq
    )


def snapshot(
    goal: Goal, inputs: RankingInputs, seq: int, tree: TreeFacts | None = None
) -> Snapshots:
    """One goal's snapshot, as a batch of one (what the cache writes); `tree`: what its
    tree makes of it."""
    return snapshots([(features(goal, tree), facts(goal))], inputs, seq)
