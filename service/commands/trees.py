"""Goal trees: decomposing a goal (where it may be placed: placement.py), and what a change to a
goal's children leads to — progress rolled up, a parent completed by its policy, the
block an abandoned child leaves, and cascades down (rules: domain/trees.py).

Everything here runs inside the caller's write transaction: a change and everything it
leads to up and down the tree commit together, each with its own ledger event.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from service.commands.base import (
    Context,
    authorize,
    live_goal,
    record_derived,
    record_event,
    record_events,
    save_change,
)
from service.commands.outcomes import selection_outcome
from service.commands.placement import check_references, check_room, refuse_cycle
from service.domain.errors import (
    ErrorKind,
    FieldError,
    GoalAlreadyExists,
    GoalStoreError,
    IllegalTransition,
    InvalidGoal,
    VersionConflict,
)
from service.domain.goal import Goal, GoalState, bump, from_record, to_record, transition
from service.domain.inputs import GoalCreate, Subgoals
from service.domain.tasks import progress as task_progress
from service.domain.timefmt import format_ts
from service.domain.trees import (
    CHILD_ABANDONED,
    counts_toward,
    is_open,
    policy_holds,
    rolled_progress,
)
from service.store import goals as goal_table
from service.store import tasks as task_table
from service.store import trees as tree_table
from service.store.db import Connection, Database


@dataclass
class ChildrenOpen(GoalStoreError):
    """Abandoning or deleting a goal without `cascade` while some children are open."""

    kind = ErrorKind.CONFLICT
    code = "children-open"
    title = "Children still open"

    goal_id: str
    action: str
    open_children: list[str] = field(default_factory=list)

    def fields(self) -> dict[str, Any]:
        return {"goal_id": self.goal_id, "action": self.action,
                "open_children": list(self.open_children)}  # fmt: skip

    def __str__(self) -> str:
        shown = ", ".join(self.open_children[:10])
        way = "with cascade=true, or " if self.action in ("abandon", "delete") else ""
        return (f"goal {self.goal_id!r} has {len(self.open_children)} open children ({shown}):"
                f" {self.action} it {way}close them first")  # fmt: skip


@dataclass(frozen=True)
class Decomposition:
    parent: Goal
    children: list[Goal]


# --- decomposing -------------------------------------------------------------------------


def decompose_goal(
    db: Database, ctx: Context, goal_id: str, spec: Subgoals, expected_version: int | None = None
) -> Decomposition:
    """The goal's new children, all created or none: each a `goal_created` event, the
    parent a `goal_decomposed` event naming them. A child may depend on the children
    listed before it. For the parent's owner or an admin; a stale expected version is a
    conflict event, as for every mutation."""
    conflict: VersionConflict | None = None
    with db.write() as conn:
        now = ctx.clock()
        parent = live_goal(conn, goal_id)
        authorize(ctx, parent, "decompose")
        if expected_version is not None and expected_version != parent.version:
            record_event(conn, ctx, now, "goal_conflict_detected", goal_id,
                         {"action": "decompose", "expected_version": expected_version,
                          "current_version": parent.version})  # fmt: skip
            conflict = VersionConflict(goal_id, expected_version, parent.version)
        else:
            if parent.is_terminal:
                raise IllegalTransition(goal_id, parent.state.value, "decompose")
            check_room(conn, parent, 1, len(spec.children), "children")
            children = [_child(ctx, now, parent, i, s) for i, s in enumerate(spec.children)]
            ids = [c.id for c in children]
            taken = [i for i in ids if ids.count(i) > 1] or list(goal_table.fetch_many(conn, ids))
            if taken:
                raise GoalAlreadyExists(taken[0])
            records = [to_record(c) for c in children]
            written = 0
            for i, child in enumerate(children):  # a child may depend on one listed before
                if child.depends_on or child.related:
                    goal_table.insert(conn, *records[written:i])  # those it may name
                    written = i
                    check_references(conn, child, names=("depends_on", "related"))
                if child.depends_on:
                    refuse_cycle(conn, child, parent.id, "children")
            goal_table.insert(conn, *records[written:])
            created: list[tuple[str, str | None, dict[str, Any]]] = [
                ("goal_created", r["id"], {"set": r}) for r in records
            ]
            record_events(conn, ctx, now, created)
            attached(conn, ctx, now, parent.id, ids)
            return Decomposition(live_goal(conn, goal_id), children)
    raise conflict


def _child(ctx: Context, now: datetime, parent: Goal, index: int, spec: GoalCreate) -> Goal:
    if spec.parent_id not in (None, parent.id):
        where, wanted = ("children", index, "parent_id"), f"must be {parent.id} or absent"
        raise InvalidGoal([FieldError(where, wanted)])
    child: Goal = spec.model_copy(update={"parent_id": parent.id}).build(ctx.actor, now)
    return child


def attached(
    conn: Connection, ctx: Context, now: datetime, parent_id: str, child_ids: list[str],
    moved_from: str | None = None,
) -> None:  # fmt: skip
    """Children just placed under `parent_id`: its `goal_decomposed` event (which lifts
    the block an abandoned child left: it has been replaced), then its progress."""
    parent = live_goal(conn, parent_id)
    changes = {"tree_block": None} if parent.tree_block is not None else {}
    extra: dict[str, Any] = {"children": child_ids}
    if moved_from is not None:
        extra["moved_from"] = moved_from
    if changes:
        record_derived(conn, ctx, now, parent_id, "goal_decomposed", changes, extra)
    else:
        record_event(conn, ctx, now, "goal_decomposed", parent_id, extra)
    settle(conn, ctx, now, parent_id, {"child_id": child_ids[-1]})


# --- what a change leads to, up the tree ------------------------------------------------------


def settle(
    conn: Connection, ctx: Context, now: datetime, goal_id: str | None, cause: dict[str, Any]
) -> float:
    """After a change to a goal's tasks or children: its progress (its children's, or
    else its tasks'), its completion when its policy holds, then the same for its parent,
    up to the first goal that does not move. Returns the first goal's progress.

    Two reads whatever the depth (the goal's line of ancestors, and their children);
    the writes go with the ledger's."""
    if goal_id is None:
        return 0.0
    line = [from_record(r) for r in tree_table.chain(conn, goal_id)]
    kids_of = tree_table.children(conn, [g.id for g in line])
    moved_child: Goal | None = None  # the level below as it now is
    first: float | None = None
    for goal in line:
        kids = [from_record(r) for r in kids_of.get(goal.id, [])]
        if moved_child is not None:
            kids = [moved_child if k.id == moved_child.id else k for k in kids]
        goal, moved = _settle_one(conn, ctx, now, goal, kids, cause)
        first = goal.progress if first is None else first
        if not moved:
            break
        moved_child, cause = goal, {"child_id": goal.id}
    return 0.0 if first is None else first


def _settle_one(
    conn: Connection, ctx: Context, now: datetime, goal: Goal, kids: list[Goal],
    cause: dict[str, Any],
) -> tuple[Goal, bool]:  # fmt: skip
    """One goal's progress and completion, written; the goal as it now is, and whether
    anything of it moved."""
    rolled = rolled_progress(kids) if kids else None
    if goal.state == GoalState.SATISFIED:
        now_progress = 1.0
    elif rolled is not None:
        now_progress = rolled
    else:
        now_progress = task_progress(task_table.for_goal(conn, goal.id))
    moved = now_progress != goal.progress
    if moved:
        extra = {"from": goal.progress, **cause}
        record_derived(conn, ctx, now, goal.id, "goal_progressed",
                       {"progress": now_progress}, extra)  # fmt: skip
        goal = replace(goal, progress=now_progress)
    if _completes(goal, kids):
        return _complete(conn, ctx, now, goal, kids), True
    return goal, moved


def _completes(goal: Goal, kids: list[Goal]) -> bool:
    """Whether its children now satisfy the goal: it is open and its policy holds. Under
    `all`, a goal held by an abandoned child waits for it to be replaced (or for the
    goal to be changed); under `any`, one satisfied child is enough whatever the others
    became."""
    held = goal.tree_block is not None and goal.completion_policy == "all"
    return bool(kids) and is_open(goal) and not held and policy_holds(goal.completion_policy, kids)


def _complete(conn: Connection, ctx: Context, now: datetime, goal: Goal, kids: list[Goal]) -> Goal:
    """The parent satisfied by its children; under `any`, its other open children are
    abandoned (their work is no longer needed)."""
    done = replace(transition(goal, "complete", now), progress=1.0, tree_block=None)
    by = [k.id for k in kids if k.state == GoalState.SATISFIED]
    save_change(conn, ctx, now, goal, done, "complete", "goal_satisfied",
                {"by_children": by, "policy": goal.completion_policy})  # fmt: skip
    selection_outcome(conn, ctx, now, done, task_table.for_goal(conn, goal.id), satisfied=True)
    for kid in kids:
        if is_open(kid):
            abandon_subtree(conn, ctx, now, kid, cascade_from=goal.id)
    return done


# --- abandoning and deleting, down the tree -----------------------------------------------


def counted_children(conn: Connection, goal_id: str) -> list[Goal]:
    """The children whose progress and satisfaction count for the goal."""
    kids = tree_table.children(conn, [goal_id]).get(goal_id, [])
    return [kid for kid in map(from_record, kids) if counts_toward(kid)]


def open_children(conn: Connection, goal_id: str) -> list[str]:
    kids = tree_table.children(conn, [goal_id]).get(goal_id, [])
    return [k["id"] for k in kids if is_open(from_record(k))]


def refuse_open_children(conn: Connection, goal: Goal, action: str) -> None:
    """ChildrenOpen when the goal has open children (abandon or delete without cascade)."""
    kids = open_children(conn, goal.id)
    if kids:
        raise ChildrenOpen(goal.id, action, kids)


def abandon_subtree(conn: Connection, ctx: Context, now: datetime, goal: Goal,
                    cascade_from: str) -> None:  # fmt: skip
    """Abandon an open goal and its open descendants (cascade), an event each."""
    _cascade(conn, ctx, now, [goal], cascade_from, "abandon", "goal_abandoned", _abandon)
    more = [from_record(r) for _, r in tree_table.subtree(conn, [goal.id], only_open=True)]
    _cascade(conn, ctx, now, more, cascade_from, "abandon", "goal_abandoned", _abandon)


def _abandon(goal: Goal, now: datetime) -> Goal:
    return transition(goal, "abandon", now)


def _delete(goal: Goal, now: datetime) -> Goal:
    return bump(replace(goal, deleted_at=now), now)


def _cascade(
    conn: Connection, ctx: Context, now: datetime, goals: list[Goal], cascade_from: str,
    action: str, event_type: str, change: Callable[[Goal, datetime], Goal],
) -> None:  # fmt: skip
    for goal in goals:
        changed = change(goal, now)
        save_change(conn, ctx, now, goal, changed, action, event_type,
                    {"cascade_from": cascade_from})  # fmt: skip
        if action == "abandon":
            selection_outcome(conn, ctx, now, changed, task_table.for_goal(conn, goal.id),
                              satisfied=False)  # fmt: skip


def after_abandon(conn: Connection, ctx: Context, now: datetime, goal: Goal) -> None:
    """A goal just abandoned: its open descendants with it, and its parent held until the
    child is replaced (`tree_block`), its progress rolled up without it."""
    more = [from_record(r) for _, r in tree_table.subtree(conn, [goal.id], only_open=True)]
    _cascade(conn, ctx, now, more, goal.id, "abandon", "goal_abandoned", _abandon)
    if goal.parent_id is None:
        return
    parent = live_goal(conn, goal.parent_id, include_deleted=True)
    if is_open(parent):
        block = {"reason": CHILD_ABANDONED, "ref": goal.id, "at": format_ts(now)}
        record_derived(conn, ctx, now, parent.id, "goal_tree_blocked", {"tree_block": block},
                       {"child_id": goal.id})  # fmt: skip
    settle(conn, ctx, now, goal.parent_id, {"child_id": goal.id})


def after_delete(conn: Connection, ctx: Context, now: datetime, goal: Goal) -> None:
    """A goal just deleted: its live descendants with it; its parent's progress without it."""
    more = [from_record(r) for _, r in tree_table.subtree(conn, [goal.id])]
    _cascade(conn, ctx, now, more, goal.id, "delete", "goal_deleted", _delete)
    settle(conn, ctx, now, goal.parent_id, {"child_id": goal.id})


def after_move(conn: Connection, ctx: Context, now: datetime, before: Goal, after: Goal) -> None:
    """A goal given another parent (or none): both parents' progress and completion."""
    if before.parent_id == after.parent_id:
        return
    settle(conn, ctx, now, before.parent_id, {"child_id": after.id})
    if after.parent_id is not None:
        attached(conn, ctx, now, after.parent_id, [after.id], moved_from=before.parent_id)
