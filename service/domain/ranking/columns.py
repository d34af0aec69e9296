"""Many goals scored as columns: one NumPy array per feature, the formula applied to all.

At 100k goals a Python loop over goals costs many times what the arrays do; only the
sparse rules (beliefs, dependencies, held goals, goal trees) loop, and only over the goals
that have them.
Items (a Ranked, a Snapshot) are made from the columns when asked for.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from operator import attrgetter
from typing import TypeVar, overload

import numpy as np
import numpy.typing as npt

from service.domain.blocks import Block
from service.domain.ranking.formula import (
    NO_DEADLINE,
    Bools,
    Floats,
    alignment_of,
    clamp,
    contradicted,
    passed,
    unmet,
    weigh,
)
from service.domain.ranking.inputs import Features, RankingInputs, TreeFacts


@dataclass(frozen=True, eq=False)
class FeatureTable:
    """Goals' features as columns: what the prioritizer scores many goals from."""

    ids: Sequence[str]
    value: Floats
    effort: Floats
    risk: Floats
    deadline: Floats  # NO_DEADLINE (+inf): none
    created: Floats
    aligns_with: Sequence[tuple[str, ...]]
    contradicts: Sequence[tuple[str, ...]]
    depends_on: Sequence[tuple[str, ...]]
    # The goals held whatever the inputs say, by position: the blocks each carries (a
    # person's manual block, its tree's). Sparse (few goals are held), so it costs the
    # columns nothing when none is.
    holds: Mapping[int, tuple[Block, ...]] = field(default_factory=dict)

    @classmethod
    def of(cls, goals: Iterable[Features]) -> FeatureTable:
        rows = goals if isinstance(goals, list | tuple) else list(goals)
        n = len(rows)

        def column(values: Iterable[float]) -> Floats:
            # fromiter fills the array from an iterator: no 100k-element tuple to build
            # (and for the garbage collector to walk), as zip(*rows) would.
            return np.fromiter(values, np.float64, n)

        deadlines = (NO_DEADLINE if d is None else d for d in map(attrgetter("deadline"), rows))
        return cls(
            [f.goal_id for f in rows], column(map(attrgetter("value"), rows)),
            column(map(attrgetter("effort"), rows)), column(map(attrgetter("risk"), rows)),
            column(deadlines), column(map(attrgetter("created"), rows)),
            [f.aligns_with for f in rows], [f.contradicts for f in rows],
            [f.depends_on for f in rows],
            {i: h for i, h in enumerate(map(attrgetter("holds"), rows)) if h},
        )  # fmt: skip

    @classmethod
    def stored(
        cls, ids: Sequence[str], value: Sequence[float], effort: Sequence[float],
        risk: Sequence[float], created_us: npt.NDArray[np.int64],
        horizon_max_min: Sequence[int | None],
        aligns_with: Sequence[tuple[str, ...]], contradicts: Sequence[tuple[str, ...]],
        depends_on: Sequence[tuple[str, ...]],
        holds: Mapping[int, tuple[Block, ...]] | None = None,
    ) -> FeatureTable:  # fmt: skip
        """From stored columns, creation instants in epoch microseconds: what features()
        makes of each goal (the deadline is created + horizon_max_min, as deadline_after()
        says), for a whole table at array speed. `holds`: the blocks of each goal its own
        record holds (held_by()), by position."""
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
            depends_on, holds or {},
        )  # fmt: skip

    def under(self, trees: Mapping[int, TreeFacts]) -> FeatureTable:
        """The table as the goals' trees make it (by position; inputs.under() for one
        goal): each deadline the earliest of the goal's and its ancestors', the tree's
        blocks after the goal's own. Without any (no goal in a tree), the table itself."""
        if not trees:
            return self
        deadline, holds = self.deadline.copy(), dict(self.holds)
        for i, tree in trees.items():
            if tree.deadline is not None and tree.deadline < deadline[i]:
                deadline[i] = tree.deadline
            if tree.holds:
                holds[i] = holds.get(i, ()) + tree.holds
        return replace(self, deadline=deadline, holds=holds)

    def __len__(self) -> int:
        return len(self.ids)

    def features(self, i: int) -> Features:
        """One goal's features, back from the columns."""
        deadline = float(self.deadline[i])
        return Features(
            self.ids[i], float(self.value[i]), float(self.effort[i]), float(self.risk[i]),
            None if deadline == NO_DEADLINE else deadline, float(self.created[i]),
            self.aligns_with[i], self.contradicts[i], self.depends_on[i],
            self.holds.get(i, ()),
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
        """The reported score: raw clamped to [0, 1]."""
        return clamp(self.raw)


def score_table(table: FeatureTable, inputs: RankingInputs) -> Scores:
    """Every goal of the table scored by weigh(), as explain() scores one."""
    active, satisfied = inputs.active_beliefs, inputs.satisfied_goals
    remaining = table.deadline - inputs.now.timestamp()
    alignment = np.zeros(len(table))
    blocked = passed(remaining)
    # The sparse rules, and only over the goals that have beliefs, dependencies or holds.
    for i in table.holds:
        blocked[i] = True
    for i, aligns in enumerate(table.aligns_with):
        if aligns:
            alignment[i] = alignment_of(aligns, active)
    for i, contradicts in enumerate(table.contradicts):
        if contradicts and contradicted(contradicts, active):
            blocked[i] = True
    for i, depends_on in enumerate(table.depends_on):
        if depends_on and unmet(depends_on, satisfied):
            blocked[i] = True
    urgency, terms, raw = weigh(
        inputs.weights, table.value, table.effort, table.risk, remaining, alignment,
        blocked.astype(np.float64),
    )  # fmt: skip
    return Scores(urgency, alignment, blocked, terms, raw)


T = TypeVar("T")


class OnDemand(Sequence[T]):
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
