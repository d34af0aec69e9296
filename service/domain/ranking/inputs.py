"""What a score depends on: a goal's features, and the weights, beliefs and `now`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from service.domain.blocks import CHILD_ABANDONED, MANUAL_BLOCK, Block
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
    # Blocks the goal carries whatever the beliefs and weights say: its own (held_by()) and
    # its tree's (TreeFacts). Sparse: few goals carry any.
    holds: tuple[Block, ...] = ()


class TreeFacts(NamedTuple):
    """What a goal's tree makes of it (trees.py): the earliest of its ancestors' deadlines
    (None: none has one), and the blocks its tree puts on it."""

    deadline: float | None
    holds: tuple[Block, ...]


def features(goal: Goal, tree: TreeFacts | None = None) -> Features:
    """What ranking reads of a goal; `tree`: what its tree makes of it (None: nothing, as
    for a goal in no tree)."""
    deadline = goal.deadline  # created_at + horizon_max_min (FeatureTable.stored() agrees)
    found = Features(
        goal.id, goal.value, goal.effort, goal.risk,
        None if deadline is None else deadline.timestamp(), goal.created_at.timestamp(),
        goal.aligns_with, goal.contradicts, goal.depends_on,
        held_by(goal.manual_block, goal.tree_block),
    )  # fmt: skip
    return found if tree is None else under(found, tree)


def under(f: Features, tree: TreeFacts) -> Features:
    """A goal's features as its tree makes them: the earliest of its deadline and its
    ancestors', its tree's blocks after its own (FeatureTable.under() does the same to
    columns)."""
    return f._replace(deadline=earliest(f.deadline, tree.deadline), holds=f.holds + tree.holds)


def earliest(a: float | None, b: float | None) -> float | None:
    """The earlier of two deadlines, None being none."""
    if a is None:
        return b
    return a if b is None else min(a, b)


def held_by(
    manual_block: Mapping[str, Any] | None, tree_block: Mapping[str, Any] | None
) -> tuple[Block, ...]:
    """The blocks a goal's own record puts on it: a person's manual block (with the reason,
    manual_reason()), and the block an abandoned child left (its `tree_block`, naming the
    child) until the goal is given another child or changed."""
    found: tuple[Block, ...] = ()
    reason = manual_reason(manual_block)
    if reason is not None:
        found += (Block(MANUAL_BLOCK, ref=reason),)
    if tree_block is not None:
        kind = str(tree_block.get("reason") or CHILD_ABANDONED)
        found += (Block(kind, ref=str(tree_block.get("ref") or "-")),)
    return found


def manual_reason(manual_block: Mapping[str, Any] | None) -> str | None:
    """The reason of a goal's manual block ({reason, actor, at}), as ranking names it:
    None when the goal is not held by hand."""
    if manual_block is None:
        return None
    return str(manual_block.get("reason") or "") or "(no reason given)"
