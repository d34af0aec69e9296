"""Goal trees: a goal's parts, the limits, cycles, progress roll-up and completion.

A goal may name a `parent_id`: it is then one of the parent's children, and the parent's
work is its children's. The rules, each once:

- **Limits**: a tree is at most MAX_TREE_DEPTH levels deep (a root is level 1) and a goal
  has at most MAX_CHILDREN children (deleted ones not counted).
- **Waiting**: a goal waits on each goal it depends on, on each of its open children, and
  on what its ancestors depend on (it is blocked while they are). No goal may wait on
  itself, through any mix of these (`wait_cycle`).
- **Progress** (`rolled_progress`): a parent's is the value-weighted mean of its live
  children's (abandoned and deleted children left out; equal weights when every value
  is 0); a satisfied goal's is 1; a leaf's comes from its tasks (domain/tasks.py).
- **Completion** (`policy_holds`): when a child is satisfied, the parent's policy says
  whether that satisfies the parent too: `all` (default) when every live child is
  satisfied, `any` when one is, `manual` never (someone satisfies it through the gate).
  Under `all`, a parent held by an abandoned child (`tree_block`) is not completed by
  its children until the child is replaced or the parent changed.

Nothing here reads or writes: the commands pass the goals in (commands/trees.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from service.domain.goal import Goal, GoalState

MAX_TREE_DEPTH = 8  # levels, a root being level 1
MAX_CHILDREN = 100  # live children of one goal
POLICIES = ("all", "any", "manual")
DEFAULT_POLICY = "all"
CHILD_ABANDONED = "child_abandoned"  # the tree_block reason


def is_open(goal: Goal) -> bool:
    """A child its parent still waits on: not satisfied, not abandoned, not deleted."""
    return not goal.is_terminal and not goal.is_deleted


def counts_toward(goal: Goal) -> bool:
    """A child whose progress and satisfaction count for its parent: not abandoned, not
    deleted (an abandoned child is left out: it is to be replaced)."""
    return goal.state != GoalState.ABANDONED and not goal.is_deleted


def rolled_progress(children: Sequence[Goal]) -> float | None:
    """The value-weighted mean progress of the children that count (None: none does)."""
    counted = [c for c in children if counts_toward(c)]
    if not counted:
        return None
    total = sum(c.value for c in counted)
    if total <= 0:
        return _unit(sum(own_progress(c) for c in counted) / len(counted))
    return _unit(sum(c.value * own_progress(c) for c in counted) / total)


def own_progress(goal: Goal) -> float:
    """A goal's progress as its parent counts it: 1 once satisfied, else what it holds."""
    return 1.0 if goal.state == GoalState.SATISFIED else goal.progress


def _unit(x: float) -> float:
    """In [0, 1], rounded to 9 places: sums of products leave noise in the last bits
    (0.37499999999999994), which would show and would move progress for nothing."""
    return min(1.0, max(0.0, round(x, 9)))


def policy_holds(policy: str, children: Sequence[Goal]) -> bool:
    """Whether the children, as they are, satisfy a parent of this completion policy."""
    counted = [c for c in children if counts_toward(c)]
    satisfied = [c for c in counted if c.state == GoalState.SATISFIED]
    if policy == "all":
        return bool(counted) and len(satisfied) == len(counted)
    if policy == "any":
        return bool(satisfied)
    return False  # manual


# A goal's requirements, for cycles. A goal waits on each goal it depends on and on each
# of its open children; and since a goal is blocked while an ancestor is (domain/blocks.py),
# it also waits on whatever its ancestors depend on. States are (goal id, full): `full`
# False means only the ancestor's dependencies (and its own ancestors') are waited on,
# not its children — a child does not wait for its siblings.
State = tuple[str, bool]


@dataclass(frozen=True, slots=True)
class Waits:
    """What one goal waits on: its dependencies, its open children, its parent."""

    depends_on: tuple[str, ...] = ()
    open_children: tuple[str, ...] = ()
    parent_id: str | None = None
    closed: bool = False  # satisfied or abandoned: waits on nothing

    def successors(self, full: bool) -> list[State]:
        if self.closed:
            return []
        found: list[State] = [(d, True) for d in self.depends_on]
        if full:
            found.extend((c, True) for c in self.open_children)
        if self.parent_id is not None:
            found.append((self.parent_id, False))
        return found


def wait_cycle(start: str, waits: Callable[[str], Waits]) -> list[str] | None:
    """A cycle of waiting reachable from `start`, as the goal ids along it (the first
    repeated at the end), or None. Depth first, iteratively; `waits` is asked once per
    goal and state."""
    on_path: dict[State, int] = {}
    done: set[State] = set()
    path: list[State] = []
    stack: list[Iterator[State]] = []

    def enter(state: State) -> None:
        on_path[state] = len(path)
        path.append(state)
        stack.append(iter(waits(state[0]).successors(state[1])))

    for first in ((start, True), (start, False)):
        if first in done:
            continue
        enter(first)
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                stack.pop()
                state = path.pop()
                del on_path[state]
                done.add(state)
            elif nxt in on_path:
                return [s[0] for s in path[on_path[nxt] :]] + [nxt[0]]
            elif nxt not in done:
                enter(nxt)
    return None


@dataclass(frozen=True, slots=True)
class TreeNode:
    """One goal of a tree read, with its children (none past the depth asked for;
    `more` says how many were left out)."""

    goal: Goal
    children: tuple[TreeNode, ...] = ()
    more: int = 0

    def walk(self, level: int = 0) -> Iterable[tuple[int, TreeNode]]:
        yield level, self
        for child in self.children:
            yield from child.walk(level + 1)
