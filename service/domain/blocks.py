"""Why a goal is blocked: one `Block` type, for ranking and for vetting alike.

Ranking blocks a goal (penalty -1, never selected) when someone blocked it by hand, when
it contradicts an active belief, depends on a goal not yet satisfied, or its deadline has
passed; and, in a goal tree, while it has open children (its work is theirs), while a
child it had is abandoned (until replaced), or while an ancestor is blocked for one of the
first three reasons (domain/ranking/trees.py). Vetting refuses to adopt or select it for
those reasons (a manual block and the tree's refuse selection only) and for the belief
checker's severity. A block says which rule (`reason`)
and what it is about, in one of the two shapes served since the start:

- ranking names the one belief, goal or deadline behind it, or the person's reason for a
  manual block (`ref`): score explanations and snapshots show `{"reason", "ref"}`;
- vetting, which answers a person, says it in a sentence (`detail`) with the beliefs
  involved: 409 problems and `goal_blocked_by_belief` events show
  `{"reason", "detail", "belief_ids"}`.
"""

from __future__ import annotations

from dataclasses import dataclass

SEVERITY = "severity"  # the belief checker's severity reached the threshold
CONTRADICTS_BELIEF = "contradicts_belief"
DEPENDENCY_UNSATISFIED = "dependency_unsatisfied"
DEADLINE_PASSED = "deadline_passed"
MANUAL_BLOCK = "manual_block"  # POST /v1/goals/{id}/block: a person holds the goal
# Goal trees (issue 18): each names a goal id (`ref`).
OPEN_CHILDREN = "open_children"  # the first of its open children
ANCESTOR_BLOCKED = "ancestor_blocked"  # the nearest ancestor blocked for an inherited reason
CHILD_ABANDONED = "child_abandoned"  # the abandoned child (the goal's tree_block)


@dataclass(frozen=True, slots=True)
class Block:
    """A reason a goal is blocked: the rule, and the belief, goal or deadline involved."""

    reason: str  # one of the names above
    detail: str = ""  # vetting's sentence
    belief_ids: tuple[str, ...] = ()  # vetting: the beliefs involved
    ref: str = ""  # ranking: the belief id, goal id, deadline (ISO 8601) or manual reason

    def as_dict(self) -> dict[str, object]:
        """The block as served: ranking's shape when it names a `ref`, vetting's otherwise."""
        if self.ref:
            return {"reason": self.reason, "ref": self.ref}
        return {"reason": self.reason, "detail": self.detail, "belief_ids": list(self.belief_ids)}
