"""The score formula, written once, for one goal (floats) and for many (NumPy columns).

    final = wv*value + we*(1-effort) + wr*(1-risk) + wu*urgency + wa*alignment + penalty

Every function here gives the same numbers for a float as for each element of an array:
the one-goal explanation (explanation.py) and the columns (columns.py) both call
`weigh()`, so the two cannot drift apart. Only `where` tells them apart. The sparse
rules at the end (alignment, contradictions, dependencies) take one goal at a time:
the columns apply them only to the goals that have beliefs or dependencies.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar, overload

import numpy as np
import numpy.typing as npt

from service.domain.ranking.inputs import Weights

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]
N = TypeVar("N", float, Floats)  # one goal's quantity, or a column of them

URGENCY_WINDOW_S = 24 * 60 * 60
BLOCK_PENALTY = -1.0
NO_DEADLINE = float("inf")  # a goal without one: never near, never passed, ordered last
TERM_NAMES = ("value", "effort", "risk", "urgency", "alignment", "penalty")


@overload
def where(condition: bool, yes: float, no: float) -> float: ...
@overload
def where(condition: Bools, yes: float | Floats, no: float | Floats) -> Floats: ...
def where(condition: bool | Bools, yes: float | Floats, no: float | Floats) -> float | Floats:
    """`yes` where the condition holds, else `no`: for one goal without NumPy's
    per-call cost, for columns np.where."""
    if type(condition) is bool:
        return yes if condition else no
    return np.where(condition, yes, no)


def urgency(remaining: N) -> N:
    """From the seconds left before the deadline (+inf without one): 0 more than 24 h
    before it, rising linearly to 1 at it, -1 once it has passed."""
    return where(
        remaining <= 0.0, -1.0,
        where(remaining > URGENCY_WINDOW_S, 0.0, 1.0 - remaining / URGENCY_WINDOW_S),
    )  # fmt: skip


@overload
def passed(remaining: float) -> bool: ...
@overload
def passed(remaining: Floats) -> Bools: ...
def passed(remaining: float | Floats) -> bool | Bools:
    """Whether the deadline has passed (it blocks the goal), from the seconds left."""
    return remaining <= 0.0


def terms(
    w: Weights, value: N, effort: N, risk: N, urg: N, ali: N, blocked: N
) -> tuple[N, N, N, N, N, N]:
    """The weighted terms, in TERM_NAMES' order. `blocked` is 1.0 or 0.0; adding 0.0
    turns the penalty's -0.0 into 0.0."""
    return (
        w.value * value,
        w.effort * (1.0 - effort),
        w.risk * (1.0 - risk),
        w.urgency * urg,
        w.alignment * ali,
        BLOCK_PENALTY * blocked + 0.0,
    )


def total(weighted: tuple[N, N, N, N, N, N]) -> N:
    """The unclamped sum, added left to right as NumPy adds columns (sum() of floats may
    compensate the rounding: Python 3.12's does)."""
    value, effort, risk, urg, ali, penalty = weighted
    return 0.0 + value + effort + risk + urg + ali + penalty


def clamp(raw: N) -> N:
    """The reported score: the sum clamped to [0, 1]."""
    return where(raw < 0.0, 0.0, where(raw > 1.0, 1.0, raw))


def weigh(
    w: Weights, value: N, effort: N, risk: N, remaining: N, ali: N, blocked: N
) -> tuple[N, tuple[N, N, N, N, N, N], N]:
    """Urgency, the terms and their sum, from the features, the seconds left before the
    deadline, the alignment and whether the goal is blocked (1.0 or 0.0)."""
    urg = urgency(remaining)
    weighted = terms(w, value, effort, risk, urg, ali, blocked)
    return urg, weighted, total(weighted)


def alignment_of(aligns_with: tuple[str, ...], active_beliefs: frozenset[str]) -> float:
    """The share of the beliefs a goal aligns with that are active (0 without any)."""
    if not aligns_with:
        return 0.0
    return sum(map(active_beliefs.__contains__, aligns_with)) / len(aligns_with)


def contradicted(contradicts: Iterable[str], active_beliefs: frozenset[str]) -> list[str]:
    """The active beliefs a goal contradicts: each blocks it."""
    return [belief for belief in contradicts if belief in active_beliefs]


def unmet(depends_on: Iterable[str], satisfied_goals: frozenset[str]) -> list[str]:
    """The goals it depends on that are not satisfied: each blocks it."""
    return [goal_id for goal_id in depends_on if goal_id not in satisfied_goals]
