"""A goal's tree as read: the goal, its descendants down to a depth, each with its score.

One read transaction and a fixed number of queries whatever the tree's size: the root,
its subtree (one recursive query), then the ranking of every goal shown (the queries of
one ranking read). The score is the one the ranking gives now, so a node's `blocked`
says what selection would say of it (an ancestor blocked, open children, ...).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from service.commands.base import live_goal, utcnow
from service.commands.ranking import state_in
from service.domain.errors import FieldError, InvalidInput
from service.domain.goal import Goal, from_record
from service.domain.ranking import Score
from service.domain.trees import MAX_TREE_DEPTH, TreeNode
from service.store import trees as tree_table
from service.store.db import Database


@dataclass(frozen=True)
class GoalTree:
    """The tree read, and the ranking's score of each of its adopted live goals (the
    others are not ranked: no score)."""

    root: TreeNode
    scores: dict[str, Score]

    def score_of(self, goal_id: str) -> Score | None:
        return self.scores.get(goal_id)


def check_depth(depth: int) -> int:
    """`depth` if it is a tree depth one may ask for (1: the goal alone, up to
    MAX_TREE_DEPTH levels), else InvalidInput naming `depth`."""
    if not 1 <= depth <= MAX_TREE_DEPTH:
        raise InvalidInput([FieldError(("depth",), f"must be between 1 and {MAX_TREE_DEPTH}")])
    return depth


def goal_tree(
    db: Database, goal_id: str, depth: int = MAX_TREE_DEPTH, now: datetime | None = None
) -> GoalTree:
    """The live goal `goal_id` (GoalNotFound if unknown or deleted) and its live
    descendants, `depth` levels in all (the goal being level 1); a node at the last
    level shown counts the children left out in `more`."""
    check_depth(depth)
    with db.read() as conn:
        root = live_goal(conn, goal_id)
        # One level more than shown: it is only counted, as the `more` of its parents.
        below = tree_table.subtree(conn, [root.id], max_depth=depth)
        shown = [record for level, record in below if level < depth]
        hidden: defaultdict[str, int] = defaultdict(int)
        for level, record in below:
            if level == depth:
                hidden[record["parent_id"]] += 1
        ids = [root.id, *(record["id"] for record in shown)]
        snapshots = state_in(conn, ids, now or utcnow()).snapshots()
    scores = {s.goal_id: s.score for s in snapshots if s.score is not None}
    return GoalTree(_assemble(root, shown, hidden), scores)


def _assemble(root: Goal, records: list[dict[str, Any]], hidden: dict[str, int]) -> TreeNode:
    """The nodes built bottom up: `records` come parents first, children in creation
    order, so the reversed walk finds every child's node made before its parent's."""
    kids: defaultdict[str, list[TreeNode]] = defaultdict(list)
    for record in reversed(records):
        node = TreeNode(
            from_record(record), tuple(reversed(kids.pop(record["id"], []))),
            hidden.get(record["id"], 0),
        )  # fmt: skip
        kids[record["parent_id"]].append(node)
    return TreeNode(root, tuple(reversed(kids.pop(root.id, []))), hidden.get(root.id, 0))
