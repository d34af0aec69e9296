"""The documented total order, and the ranking of many goals in it.

Unblocked before blocked; then higher score; then higher unclamped sum; then earlier
deadline (none last); then earlier creation; then goal id. `order_keys()` writes it
once: sort keys of one goal (`order_key()`, what the cache sorts its reads by) or
columns (`Ranking`, which sorts many goals by them, then breaks what ties remain by id).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple, overload

import numpy as np

from service.domain.ranking.columns import FeatureTable, OnDemand, Scores, score_table
from service.domain.ranking.formula import NO_DEADLINE, Bools, Floats, clamp
from service.domain.ranking.inputs import Features, RankingInputs

OrderKey = tuple[bool, float, float, float, float, str]


@overload
def order_keys(
    blocked: bool, score: float, raw: float, deadline: float, created: float
) -> tuple[bool, float, float, float, float]: ...
@overload
def order_keys(
    blocked: Bools, score: Floats, raw: Floats, deadline: Floats, created: Floats
) -> tuple[Bools, Floats, Floats, Floats, Floats]: ...
def order_keys(
    blocked: bool | Bools, score: float | Floats, raw: float | Floats, deadline: float | Floats,
    created: float | Floats,
) -> tuple[bool | Bools | float | Floats, ...]:  # fmt: skip
    """The order's keys, most significant first, each ascending (the goal id, last,
    breaks what ties remain): of one goal, or columns. A deadline of NO_DEADLINE is none."""
    return blocked, -score, -raw, deadline, created


def order_key(
    blocked: bool, score: float, raw: float, deadline: float | None, created: float, goal_id: str
) -> OrderKey:
    """One goal's place in the documented total order, as a sort key."""
    return (
        *order_keys(blocked, score, raw, NO_DEADLINE if deadline is None else deadline, created),
        goal_id,
    )


class Ranked(NamedTuple):
    goal_id: str
    score: float
    raw: float
    blocked: bool


class Ranking(OnDemand[Ranked]):
    """Goals best first in the documented total order; Ranked items are made on demand."""

    def __init__(self, table: FeatureTable, scores: Scores) -> None:
        self._ids, self._raw, self._blocked = table.ids, scores.raw, scores.blocked
        keys = order_keys(scores.blocked, scores.score, scores.raw, table.deadline, table.created)
        order = np.lexsort(keys[::-1])  # lexsort sorts by its last key first
        self._positions = _ties_by_id(order.tolist(), keys, table.ids)
        self.unblocked = int(len(self._positions) - np.count_nonzero(scores.blocked))

    def top(self, limit: int, include_blocked: bool = False) -> list[Ranked]:
        return self[: limit if include_blocked else min(limit, self.unblocked)]

    def blocked(self, limit: int) -> list[Ranked]:
        """The best `limit` blocked goals (they come after every unblocked one)."""
        return self[self.unblocked : self.unblocked + limit]

    def _item(self, i: int) -> Ranked:
        raw = float(self._raw[i])
        return Ranked(self._ids[i], clamp(raw), raw, bool(self._blocked[i]))


def _ties_by_id(
    order: list[int], keys: tuple[Bools | Floats, ...], ids: Sequence[str]
) -> list[int]:
    """Order runs equal on every other key by goal id, the last tie-breaker."""
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
