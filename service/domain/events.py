"""Change events on their way to the ranking cache, and which goals each one re-scores.

An event reference is what the outbox relay puts on the `goalstore-events` queue:
the ledger seq (the event's identity, so re-delivery is harmless), its type, and
the goal or belief it is about. `reach()` is the fan-out rule, pure: the worker
resolves it against SQLite (and the goal trees: an event on a goal re-scores its parent,
whose open children it may have changed, and its descendants, which inherit its deadline
and its blocks).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple


class EventRef(NamedTuple):
    seq: int
    event_type: str
    goal_id: str | None
    belief_id: str | None
    trace_id: str | None

    def as_job_arg(self) -> list[Any]:
        """Compact and JSON-able: a batch of 500 stays a few tens of kilobytes."""
        return [self.seq, self.event_type, self.goal_id, self.belief_id, self.trace_id]

    @classmethod
    def from_job_arg(cls, arg: list[Any]) -> EventRef:
        seq, event_type, goal_id, belief_id, trace_id = arg
        return cls(int(seq), str(event_type), goal_id, belief_id, trace_id)


# Events that change nothing a score depends on.
NO_RANKING_EFFECT = frozenset(
    {
        "goal_conflict_detected", "decision_outcome_recorded", "goal_blocked_by_belief",
        "task_reported", "task_reviewed", "goal_failure_recorded", "task_progress_reported",
        # commentary: no version bump, nothing the ranking reads
        "goal_note_added",
    }
)  # fmt: skip
# Goal events that only touch the goal itself. Any other goal event (goal_satisfied,
# and types this version does not know) also re-scores the goals that depend on it.
GOAL_SELF_ONLY = frozenset(
    {
        "goal_created",
        "goal_updated",
        "goal_adopted",
        "goal_abandoned",
        "goal_deleted",
        "goal_selected_for_execution",
        "goal_retried",
        "goal_blocked",  # a manual block holds the goal itself, not what depends on it
        "goal_unblocked",
        "goal_deadline_passed",  # re-scored by the refresh that records it, and again here
        # version bumps: the snapshot's version must follow, or selection sees a moved goal
        "goal_linked",
        "goal_criterion_reviewed",
        "goal_task_added",
        # derived, no version bump: the snapshot holds progress; a tree_block holds the
        # goal itself; a decomposition's children come with goal_created events of their own
        "goal_progressed",
        "goal_tree_blocked",
        "goal_decomposed",
    }
)
# Goal events that change nothing the goal passes down to its descendants (its deadline,
# its blocks: domain/ranking/trees.py): its subtree is not re-scored for them. (Progress
# climbs to the root on every task reviewed: re-scoring the whole tree each time would
# be waste.)
NOT_PASSED_DOWN = frozenset({"goal_progressed", "goal_tree_blocked", "goal_decomposed"})
# Goal events that may move a goal to another parent: the parent the cache holds for it
# is re-scored too (it may have lost an open child).
MAY_MOVE = frozenset({"goal_updated"})
BELIEF_EVENTS = frozenset({"belief_created", "belief_updated"})


@dataclass
class Reach:
    """Which goals a batch of events re-scores."""

    goals: set[str] = field(default_factory=set)
    dependents_of: set[str] = field(default_factory=set)  # ...and goals depending on these
    believers_of: set[str] = field(default_factory=set)  # ...and goals naming these beliefs
    # Goal trees: of which goals the descendants (every goal of `goals` but those only
    # NOT_PASSED_DOWN events reach, and whatever dependents_of and believers_of add) and
    # the former parent (as the cache holds it) are re-scored too. Every goal of `goals`
    # re-scores its parent.
    passed_down: set[str] = field(default_factory=set)
    moved: set[str] = field(default_factory=set)
    everything: bool = False  # the weights changed (or an event of an unknown kind)
    inputs_changed: bool = False  # active beliefs or weights: refresh their copy in Redis


def reach(events: Iterable[EventRef]) -> Reach:
    out = Reach()
    for event in events:
        kind = event.event_type
        if kind in NO_RANKING_EFFECT:
            continue
        if kind in BELIEF_EVENTS and event.belief_id is not None:
            out.believers_of.add(event.belief_id)
            out.inputs_changed = True
        elif event.goal_id is not None:
            out.goals.add(event.goal_id)
            if kind not in GOAL_SELF_ONLY:
                out.dependents_of.add(event.goal_id)
            if kind not in NOT_PASSED_DOWN:
                out.passed_down.add(event.goal_id)
            if kind in MAY_MOVE:
                out.moved.add(event.goal_id)
        else:  # decision_updated (the weights), or something this version does not know
            out.everything = True
            out.inputs_changed = True
    return out
