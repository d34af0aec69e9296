"""Goal trees as served: a decomposition's parent and children, and a tree read."""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, Field

from service.api.schemas.goals import GoalPublic
from service.api.schemas.ranking import BlockPublic
from service.commands.tree_view import GoalTree
from service.domain.trees import TreeNode


class DecompositionPublic(BaseModel):
    """POST /v1/goals/{id}/subgoals: the goal decomposed and its new children."""

    parent: GoalPublic
    children: list[GoalPublic] = Field(description="The new children, in the order sent.")


class GoalTreeNodePublic(GoalPublic):
    """A goal of a tree read: its fields, its score now, and its children."""

    score: float | None = Field(
        description="Its ranking score now; null unless the goal is adopted (only adopted "
        "goals are ranked)."
    )
    blocked: bool = Field(description="The ranking holds it (blocked_by says why).")
    blocked_by: list[BlockPublic] = Field(
        description="Every reason it is blocked: open_children, ancestor_blocked (naming "
        "the ancestor), child_abandoned, manual_block, ..."
    )
    children: list[GoalTreeNodePublic] = Field(
        description="Its live children, oldest first; empty past the depth asked for."
    )
    more_children: int = Field(
        ge=0, description="Children left out: the node is at the last level shown."
    )

    @classmethod
    def of_tree(cls, tree: GoalTree, node: TreeNode | None = None) -> Self:
        node = node or tree.root
        score = tree.score_of(node.goal.id)
        blocks = (
            [BlockPublic(reason=b.reason, ref=b.ref) for b in score.blocked_by] if score else []
        )
        return cls(
            **GoalPublic.of(node.goal).model_dump(),
            score=score.score if score else None,
            blocked=bool(blocks),
            blocked_by=blocks,
            children=[GoalTreeNodePublic.of_tree(tree, child) for child in node.children],
            more_children=node.more,
        )


class GoalTreePublic(GoalTreeNodePublic):
    """A tree read: its root node. A class of its own so the answer's JSON Schema is an
    object at the top (MCP asks that of a tool's output), the nodes below in $defs."""
