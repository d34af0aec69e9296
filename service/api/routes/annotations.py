"""/v1/goals/{id}: notes, manual blocks, linked work, reviews of acceptance criteria."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status

from service.api.deps import GS, IfMatch, Reader, Writer, expected_version
from service.api.middleware import StrictJsonRoute
from service.api.routes.responses import (
    OWNER_ERRORS,
    PROBLEM,
    READ_ERRORS,
    goal_with_etag,
)
from service.api.schemas import GoalPublic, NotePublic, NotesPublic
from service.commands import MAX_PAGE
from service.domain.annotations import BlockCreate, CriterionReview, LinkCreate, NoteCreate

router = APIRouter(
    prefix="/v1/goals", tags=["notes, blocks, links and criteria"], route_class=StrictJsonRoute
)

# A note is not the owner's only: any writer may add one (its 403 is the scope's), and it
# changes no version, so it meets no conflict.
_NOTE_ERRORS: dict[int | str, dict[str, Any]] = {
    **READ_ERRORS, 400: PROBLEM, 413: PROBLEM, 422: PROBLEM, 429: PROBLEM,
}  # fmt: skip
_REVIEW_ERRORS: dict[int | str, dict[str, Any]] = {
    **OWNER_ERRORS,
    404: {**PROBLEM, "description": "No such goal (`goal-not-found`), or no criterion of that id "
          "on it (`criterion-not-found`, naming both)."},
}  # fmt: skip


@router.post("/{goal_id}/notes", status_code=status.HTTP_201_CREATED, responses=_NOTE_ERRORS)
def add_note(goal_id: str, body: NoteCreate, ctx: Writer, gs: GS) -> NotePublic:
    """Append a note (decision, blocker, info) to a goal in any state, finished ones too.
    Any caller with the write scope may: a note is commentary, and its ledger event
    (`goal_note_added`) names who wrote it, in which trace. The goal's version stays."""
    return NotePublic.of(gs.add_note(ctx, goal_id, body.kind.value, body.text))


@router.get("/{goal_id}/notes", responses=READ_ERRORS)
def list_notes(
    goal_id: str,
    _: Reader,
    gs: GS,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: Annotated[
        str | None, Query(pattern=r"^[1-9]\d{0,17}$", description="A page's next_cursor.")
    ] = None,
) -> NotesPublic:
    """The goal's notes, newest first, a page at a time."""
    page = gs.list_notes(goal_id, cursor=None if cursor is None else int(cursor), limit=limit)
    return NotesPublic(
        data=[NotePublic.of(note) for note in page.notes],
        next_cursor=None if page.next_cursor is None else str(page.next_cursor),
    )


@router.post("/{goal_id}/block", responses=OWNER_ERRORS)
def block_goal(
    goal_id: str, body: BlockCreate, version: IfMatch, ctx: Writer, gs: GS, response: Response
) -> GoalPublic:
    """Hold an unfinished goal (its owner or an admin): it is never selected until
    unblocked, and the ranking says why (`manual_block`). Event `goal_blocked`; blocking
    it again for the same reason changes nothing."""
    expected = expected_version(version, body.expected_version)
    return goal_with_etag(response, gs.block_goal(ctx, goal_id, body.reason, expected).goal)


@router.post("/{goal_id}/links", responses=OWNER_ERRORS)
def link_work(
    goal_id: str, body: LinkCreate, version: IfMatch, ctx: Writer, gs: GS, response: Response
) -> GoalPublic:
    """Link external work (a session, a pull request, an issue) to an unfinished goal (its
    owner or an admin): it joins the goal's `links`, event `goal_linked`. The same kind
    and ref again changes nothing; a goal holds at most 64 links (then 422)."""
    expected = expected_version(version, body.expected_version)
    change = gs.link_work(ctx, goal_id, body.kind, body.ref, body.url, expected)
    return goal_with_etag(response, change.goal)


@router.post("/{goal_id}/criteria/{criterion_id}/review", responses=_REVIEW_ERRORS)
def review_criterion(
    goal_id: str,
    criterion_id: str,
    body: CriterionReview,
    version: IfMatch,
    ctx: Writer,
    gs: GS,
    response: Response,
) -> GoalPublic:
    """Mark one acceptance criterion of an unfinished goal met or not, with evidence (the
    goal's owner or an admin): event `goal_criterion_reviewed`. Satisfying the goal needs
    every criterion met. The same decision with the same evidence again changes nothing."""
    expected = expected_version(version, body.expected_version)
    change = gs.review_criterion(
        ctx, goal_id, criterion_id, body.met, body.evidence, expected
    )  # fmt: skip
    return goal_with_etag(response, change.goal)
