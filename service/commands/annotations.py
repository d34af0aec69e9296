"""What people add to a goal besides its fields (seed 001): notes, linked work, reviews of
its acceptance criteria, manual blocks (seed 001's Blocked).

Every argument is validated by the domain's input models here, so REST, the CLI and
scenarios meet the same rules and the same InvalidInput.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from service.commands.base import MAX_PAGE, Change, Context, live_goal, record_event
from service.commands.goals import mutate
from service.domain.annotations import (
    NOTE_EVENT,
    BlockCreate,
    CriterionReview,
    LinkCreate,
    Note,
    NoteCreate,
    has_link,
    is_reviewed_as,
    validated,
    with_link,
    with_review,
)
from service.domain.errors import FieldError, IllegalTransition, InvalidInput
from service.domain.goal import Goal, bump
from service.domain.timefmt import format_ts
from service.store import notes as note_table
from service.store.db import Database

# --- notes ----------------------------------------------------------------------------


def add_note(db: Database, ctx: Context, goal_id: str, kind: str, text: str) -> Note:
    """Append a note (decision, blocker, info) to a goal in any state, finished ones too.

    A note is commentary, not a change: any caller with the write scope may add one (the
    owner rule does not apply; the ledger names who wrote it), and the goal and its
    version stay as they are. It is one `goal_note_added` ledger event (with its outbox
    row); a deleted goal takes none (GoalNotFound)."""
    spec = validated(NoteCreate, kind=kind, text=text)
    with db.write() as conn:
        live_goal(conn, goal_id)
        payload = {"kind": spec.kind.value, "text": spec.text}
        row = record_event(conn, ctx, ctx.clock(), NOTE_EVENT, goal_id, payload)
    return Note.of(row.seq, goal_id, row.ts, row.actor, row.trace_id, row.payload)


@dataclass(frozen=True)
class NotePage:
    notes: list[Note]
    next_cursor: int | None  # pass back as `cursor` for older notes


def list_notes(
    db: Database, goal_id: str, *, cursor: int | None = None, limit: int = 50
) -> NotePage:
    """A goal's notes, newest first, a page at a time: `cursor` is the seq of the last note
    of the previous page. A deleted goal's are not served (GoalNotFound)."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput([FieldError(("limit",), f"must be between 1 and {MAX_PAGE}")])
    if cursor is not None and cursor < 1:
        raise InvalidInput([FieldError(("cursor",), "must be a note's seq (1 or more)")])
    with db.read() as conn:
        live_goal(conn, goal_id)
        notes, next_cursor = note_table.page(conn, goal_id, before=cursor, limit=limit)
    return NotePage(notes, next_cursor)


# --- manual blocks ----------------------------------------------------------------------


def block_goal(
    db: Database, ctx: Context, goal_id: str, reason: str, expected_version: int | None = None
) -> Change:
    """Hold a goal that is not finished: it is never selected until unblocked, and the
    ranking says why. Blocking it again for the same reason changes nothing."""
    reason = validated(BlockCreate, reason=reason).reason

    def change(goal: Goal, now: datetime) -> Goal:
        if goal.is_terminal:
            raise IllegalTransition(goal.id, goal.state.value, "block")
        block = {"reason": reason, "actor": ctx.actor, "at": format_ts(now)}
        return bump(replace(goal, manual_block=block), now)

    return mutate(
        db, ctx, goal_id, expected_version, action="block", event_type="goal_blocked",
        change=change,
        already_done=lambda goal: (goal.manual_block or {}).get("reason") == reason
        and not goal.is_deleted,
    )  # fmt: skip


def unblock_goal(
    db: Database, ctx: Context, goal_id: str, expected_version: int | None = None
) -> Change:
    """Lift a manual block; unblocking a goal that is not blocked changes nothing. A
    finished goal keeps its block as history (IllegalTransition), like its other fields."""

    def change(goal: Goal, now: datetime) -> Goal:
        if goal.is_terminal:
            raise IllegalTransition(goal.id, goal.state.value, "unblock")
        return bump(replace(goal, manual_block=None), now)

    return mutate(
        db, ctx, goal_id, expected_version, action="unblock", event_type="goal_unblocked",
        change=change,
        already_done=lambda goal: goal.manual_block is None and not goal.is_deleted,
    )  # fmt: skip


# --- linked work and criteria -----------------------------------------------------------


def link_work(
    db: Database, ctx: Context, goal_id: str, kind: str, ref: str, url: str | None = None,
    expected_version: int | None = None,
) -> Change:  # fmt: skip
    """Link external work (a session, a pull request…) to an unfinished goal (its owner or
    an admin): event `goal_linked`. The same kind and ref again changes nothing; more
    than limits.MAX_LINKS is InvalidInput."""
    spec = validated(LinkCreate, kind=kind, ref=ref, url=url)
    return mutate(
        db, ctx, goal_id, expected_version, action="link", event_type="goal_linked",
        change=lambda goal, now: with_link(goal, spec, ctx.actor, now),
        already_done=lambda goal: has_link(goal, spec.kind, spec.ref) and not goal.is_deleted,
        extra={"kind": spec.kind, "ref": spec.ref},
    )  # fmt: skip


def review_criterion(
    db: Database, ctx: Context, goal_id: str, criterion_id: str, met: bool,
    evidence: Any = None, expected_version: int | None = None,
) -> Change:  # fmt: skip
    """Record a reviewer's decision on one acceptance criterion of an unfinished goal (its
    owner or an admin): event `goal_criterion_reviewed`. An unknown criterion is
    CriterionNotFound; the same decision with the same evidence again changes nothing."""
    review = validated(CriterionReview, met=met, evidence=evidence)
    return mutate(
        db, ctx, goal_id, expected_version, action="review",
        event_type="goal_criterion_reviewed",
        change=lambda goal, now: with_review(goal, criterion_id, review, ctx.actor, now),
        already_done=lambda goal: is_reviewed_as(goal, criterion_id, review)
        and not goal.is_deleted,
        extra={"criterion_id": criterion_id, "met": review.met},
    )  # fmt: skip
