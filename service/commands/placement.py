"""Where a goal may be placed in a tree: the parents it names exist, are open and are
its actor's to change; the limits of depth and children hold; and no goal would wait on
itself (domain/trees.py wait_cycle), with the cycle's path in the refusal.
"""

from __future__ import annotations

from service.commands.base import Context, authorize, live_goal
from service.domain.errors import FieldError, IllegalTransition, InvalidGoal
from service.domain.goal import Goal, from_record
from service.domain.trees import MAX_CHILDREN, MAX_TREE_DEPTH, Waits, is_open, wait_cycle
from service.store import goals as goal_table
from service.store import tree_ranking
from service.store import trees as tree_table
from service.store.db import Connection


def check_placement(
    conn: Connection, ctx: Context, goal: Goal, *, old_parent: str | None, field_name: str,
    new: bool = False,
) -> None:  # fmt: skip
    """A goal whose parent or dependencies just changed (or a `new` one), before it is
    written and after check_references(): the actor may change the parents it joins and
    leaves (NotPermitted), its parent exists and is open, no goal would wait on itself
    (InvalidGoal naming `field_name` and the cycle's path), and the tree stays within
    MAX_TREE_DEPTH levels and the parent within MAX_CHILDREN children."""
    moved = goal.parent_id != old_parent
    if moved and old_parent is not None:
        authorize(ctx, live_goal(conn, old_parent, include_deleted=True), "decompose")
    parent: Goal | None = None
    if moved and goal.parent_id is not None:
        record = goal_table.fetch(conn, goal.parent_id)
        if record is None or record["deleted_at"] is not None:
            unknown = f"unknown goal id: {goal.parent_id}"
            raise InvalidGoal([FieldError((field_name,), unknown)])
        parent = from_record(record)
        authorize(ctx, parent, "decompose")  # a child changes its parent: its owner's call
    # A new goal without dependencies: nothing waits on it but its parent, no cycle. A
    # store without trees: waiting is depends_on alone, which check_references() has
    # checked in one query (the walk here costs a query or two a goal reached).
    flat = goal.parent_id is None and old_parent is None and not tree_ranking.in_use(conn)
    if (not new or goal.depends_on) and not flat:
        refuse_cycle(conn, goal, old_parent, field_name)
    if parent is not None:
        height = 1 if new else tree_table.height(conn, goal.id)
        check_room(conn, parent, height, 1, field_name)


def check_room(conn: Connection, parent: Goal, height: int, adding: int, field_name: str) -> None:
    """`adding` subtrees `height` levels high may go under `parent`: it is open, and the
    limits of depth and children hold."""
    if parent.is_terminal:
        raise IllegalTransition(parent.id, parent.state.value, "add a child to")
    levels = len(tree_table.ancestors(conn, parent.id)) + 1 + height
    if levels > MAX_TREE_DEPTH:
        raise InvalidGoal([FieldError((field_name,), f"would make the tree {levels} levels"
                                      f" deep; at most {MAX_TREE_DEPTH}")])  # fmt: skip
    if tree_table.child_count(conn, parent.id) + adding > MAX_CHILDREN:
        too_many = f"goal {parent.id} would have more than {MAX_CHILDREN} children"
        raise InvalidGoal([FieldError((field_name,), too_many)])


def refuse_cycle(conn: Connection, goal: Goal, old_parent: str | None, field_name: str) -> None:
    cycle = _cycle_through(conn, goal, old_parent=old_parent)
    if cycle is not None:
        path = " -> ".join(cycle)
        raise InvalidGoal([FieldError((field_name,), f"would make a cycle: {path}")])


def _cycle_through(conn: Connection, goal: Goal, *, old_parent: str | None) -> list[str] | None:
    """A cycle of waiting (domain/trees.py) that `goal`, as it is about to be written,
    would close, or None. Every new cycle runs through the goal: its dependencies, its
    parent and its parent's wait on it are the only edges that change."""
    seen: dict[str, Waits] = {}

    def waits(goal_id: str) -> Waits:
        if goal_id not in seen:
            seen[goal_id] = _waits(conn, goal, old_parent, goal_id)
        return seen[goal_id]

    return wait_cycle(goal.id, waits)


def _waits(conn: Connection, goal: Goal, old_parent: str | None, goal_id: str) -> Waits:
    """What `goal_id` waits on once `goal` is written (its parent moved from `old_parent`)."""
    if goal_id == goal.id:
        node: Goal | None = goal
    else:
        record = goal_table.fetch(conn, goal_id)
        node = None if record is None else from_record(record)
    if node is None or not is_open(node):
        return Waits(closed=True)
    kids = [k["id"] for k in tree_table.children(conn, [goal_id]).get(goal_id, [])
            if is_open(from_record(k))]  # fmt: skip
    if goal_id == old_parent and goal_id != goal.parent_id:
        kids = [k for k in kids if k != goal.id]
    if goal_id == goal.parent_id and goal.id not in kids:
        kids.append(goal.id)
    return Waits(node.depends_on, tuple(kids), node.parent_id)


def check_references(conn: Connection, goal: Goal, *, names: tuple[str, ...]) -> None:
    """The goals `depends_on` and `related` name must exist; dependencies may not cycle."""
    for name in names:
        ids = list(getattr(goal, name))
        unknown = goal_table.missing(conn, ids) if ids else []
        if unknown:
            raise InvalidGoal([FieldError((name,), f"unknown goal ids: {', '.join(unknown)}")])
    cycle = "depends_on" in names and goal.depends_on
    if cycle and goal_table.depends_transitively(conn, list(goal.depends_on), goal.id):
        raise InvalidGoal([FieldError(("depends_on",), "would make a dependency cycle")])
