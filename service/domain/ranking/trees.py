"""Goal trees in the ranking: what a goal inherits from its ancestors, and what its
children hold it on (issue 18).

- Its **deadline** is the earliest of its own and every ancestor's: a part is due when
  the whole is. Urgency, a passed deadline and the order all follow it.
- It is blocked, `ancestor_blocked`, while its parent is blocked for a reason the tree
  passes down: a manual block, a contradicted active belief, an unsatisfied dependency,
  or `ancestor_blocked` itself (so it reaches every level). Not open children, nor an
  abandoned child (the other children keep working), nor a passed deadline (passed down
  as the deadline instead). The
  block names the nearest blocked ancestor: that is the parent, whose own explanation
  names the next one up, down to the goal whose own block it is.
- It is blocked, `open_children`, while it has an open child (neither satisfied nor
  abandoned nor deleted), naming the first: its work is its children's. Its children are
  not held by that, nor by an abandoned sibling's `child_abandoned` (held_by()).

Sparse, like the other holds: only goals in a tree get TreeFacts, and the store reads
the lineage only of goals that have a parent (store/tree_ranking.py), so flat goals cost
nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from service.domain.blocks import ANCESTOR_BLOCKED, OPEN_CHILDREN, Block
from service.domain.ranking.formula import contradicted, unmet
from service.domain.ranking.inputs import RankingInputs, TreeFacts, earliest

MAX_CLIMB = 64  # levels climbed at most: trees are 8 deep; a corrupt loop stops here


class Lineage(NamedTuple):
    """What a goal in a tree passes down to its children: its parent (to climb on), its
    own deadline, and what may block it for a reason the tree passes down."""

    goal_id: str
    parent_id: str | None
    deadline: float | None  # epoch seconds
    manual_block: str | None  # the reason of a manual block (manual_reason())
    contradicts: tuple[str, ...]
    depends_on: tuple[str, ...]


def tree_facts(
    lineage: Mapping[str, Lineage], open_child: Mapping[str, str], inputs: RankingInputs
) -> dict[str, TreeFacts]:
    """The TreeFacts of each goal `lineage` or `open_child` names whose tree changes
    something of it; a goal absent from the result is ranked as if in no tree.

    `lineage`: the goals in a tree the caller scores and all their ancestors; `open_child`:
    the first open child of each goal the caller scores that has one."""
    passed: dict[str, tuple[float | None, bool]] = {}

    def passed_down(goal_id: str) -> tuple[float | None, bool]:
        """What a goal passes its children: the earliest deadline of it and its ancestors,
        and whether it is blocked for a reason the tree passes down. Climbs to the first
        goal already known (or the root), then fills in on the way down."""
        chain: list[Lineage] = []
        at: str | None = goal_id
        while at is not None and at not in passed and at in lineage and len(chain) < MAX_CLIMB:
            chain.append(lineage[at])
            at = lineage[at].parent_id
        above = (None, False) if at is None else passed.get(at, (None, False))
        for node in reversed(chain):
            above = (earliest(node.deadline, above[0]), above[1] or blocks_children(node, inputs))
            passed[node.goal_id] = above
        return passed.get(goal_id, above)

    found: dict[str, TreeFacts] = {}
    for goal_id in {*lineage, *open_child}:
        node = lineage.get(goal_id)
        parent = None if node is None else node.parent_id
        deadline, holds = None, []
        if parent is not None and parent in lineage:
            deadline, blocked = passed_down(parent)
            if blocked:
                holds.append(Block(ANCESTOR_BLOCKED, ref=parent))
        if goal_id in open_child:
            holds.append(Block(OPEN_CHILDREN, ref=open_child[goal_id]))
        if deadline is not None or holds:
            found[goal_id] = TreeFacts(deadline, tuple(holds))
    return found


def blocks_children(node: Lineage, inputs: RankingInputs) -> bool:
    """Whether a goal's own record blocks it for a reason the tree passes down (the
    ancestors' part, ANCESTOR_BLOCKED, is passed_down()'s)."""
    return (
        node.manual_block is not None
        or bool(contradicted(node.contradicts, inputs.active_beliefs))
        or bool(unmet(node.depends_on, inputs.satisfied_goals))
    )
