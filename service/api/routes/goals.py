"""/v1/goals: create, read, list, change, adopt, abandon, delete, history."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query, Response, status

from service.api.deps import (
    ANY_VERSION,
    GS,
    IfMatch,
    Reader,
    Writer,
    etag,
    expected_version,
)
from service.api.middleware import StrictJsonRoute
from service.api.routes.responses import (
    CASCADE_CONFLICT,
    OWNER_ERRORS,
    PROBLEM,
    READ_ERRORS,
    WRITE_ERRORS,
    expected_of,
    goal_with_etag,
)
from service.api.schemas import (
    GoalHistoryPublic,
    GoalPublic,
    GoalsPublic,
    LedgerEventPublic,
    PrioritizedPublic,
    RankedGoalPublic,
    ScorePublic,
    VersionPrecondition,
)
from service.commands import MAX_PAGE
from service.domain import limits
from service.domain.goal import GoalCategory, GoalState
from service.domain.inputs import EXAMPLE_GOAL, GoalCreate, GoalUpdate
from service.usecases import GoalStore, StateCommand

router = APIRouter(prefix="/v1/goals", tags=["goals"], route_class=StrictJsonRoute)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={**WRITE_ERRORS, 400: PROBLEM},
)
def create_goal(
    spec: Annotated[GoalCreate, Body(openapi_examples={"seed": {"value": EXAMPLE_GOAL}})],
    ctx: Writer,
    gs: GS,
    response: Response,
) -> GoalPublic:
    """Propose a goal. It starts `proposed`, at version 1, owned by the caller. With a
    `parent_id`, the parent must be the caller's (or the key admin: 403 otherwise)."""
    goal = gs.create_goal(ctx, spec)
    response.headers["Location"] = f"/v1/goals/{goal.id}"
    return goal_with_etag(response, goal)


@router.get("", responses=READ_ERRORS)
def list_goals(
    _: Reader,
    gs: GS,
    state: GoalState | None = None,
    category: GoalCategory | None = None,
    include_deleted: bool = False,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(pattern=r"^\d{1,18}$")] = None,
    assigned_to: Annotated[
        str | None,
        Query(max_length=limits.MAX_ID_LENGTH, description="Only goals assigned to this actor."),
    ] = None,
    parent_id: Annotated[
        str | None,
        Query(max_length=limits.MAX_ID_LENGTH, description="Only the children of this goal."),
    ] = None,
) -> GoalsPublic:
    """List goals in creation order, filtered by state, category, assignee and parent, a
    page at a time."""
    page = gs.list_goals(
        state=state,
        category=category,
        include_deleted=include_deleted,
        cursor=int(cursor or 0),
        limit=limit,
        assigned_to=assigned_to,
        parent_id=parent_id,
    )
    return GoalsPublic(
        data=[GoalPublic.of(goal) for goal in page.goals],
        count=page.count,
        next_cursor=None if page.next_cursor is None else str(page.next_cursor),
    )


# Declared before /{goal_id}, which would otherwise match "prioritized".
@router.get("/prioritized", response_model=PrioritizedPublic, responses=READ_ERRORS)
def prioritized(
    _: Reader,
    gs: GS,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
    category: GoalCategory | None = None,
    include_blocked: bool = False,
) -> Response:
    """Adopted goals, best first (blocked ones last, and only with include_blocked).

    Read from the Redis ranking (`source: redis`); ranked from the store instead
    (`source: sqlite` or `postgresql`, with the reason) when Redis is unset, down, restarted empty,
    or more than GOALSTORE_CACHE_MAX_LAG_S behind the outbox.
    """
    view = gs.ranked_view(
        limit=limit,
        category=category,
        include_blocked=include_blocked,
    )
    page = PrioritizedPublic(
        data=[
            RankedGoalPublic(
                rank=n, goal_id=r.goal.id, score=r.ranked.score, blocked=r.ranked.blocked,
                goal=GoalPublic.of(r.goal),
            )
            for n, r in enumerate(view.items, start=1)
        ],
        source=view.source,
        fallback_reason=view.reason,
    )  # fmt: skip
    # Serialized here, in the endpoint's worker thread: a model returned to FastAPI from
    # a sync endpoint is validated again in a second thread-pool hop, on this hot read.
    # The model was just built and validated, so nothing is lost.
    return Response(page.model_dump_json(), media_type="application/json")


@router.get("/{goal_id}", responses=READ_ERRORS)
def get_goal(
    goal_id: str, _: Reader, gs: GS, response: Response, include_deleted: bool = False
) -> GoalPublic:
    """One goal, with its version as the ETag."""
    return goal_with_etag(response, gs.get_goal(goal_id, include_deleted=include_deleted))


@router.patch("/{goal_id}", responses={**OWNER_ERRORS, 428: PROBLEM})
def update_goal(
    goal_id: str, patch: GoalUpdate, version: IfMatch, ctx: Writer, gs: GS, response: Response
) -> GoalPublic:
    """Change some fields (the goal's owner or an admin). Send the version you read
    (If-Match or expected_version)."""
    expected = expected_version(version, patch.expected_version)
    change = gs.update_goal(ctx, goal_id, patch, expected, any_version=version == ANY_VERSION)
    return goal_with_etag(response, change.goal)


def _state_route(action: str, command: StateCommand, summary: str) -> None:
    def route(
        goal_id: str,
        version: IfMatch,
        ctx: Writer,
        gs: GS,
        response: Response,
        body: VersionPrecondition | None = None,
    ) -> GoalPublic:
        return goal_with_etag(response, command(gs, ctx, goal_id, expected_of(version, body)).goal)

    router.add_api_route(
        f"/{{goal_id}}/{action}",
        route,
        methods=["POST"],
        name=f"{action}_goal",
        description=summary,
        responses=OWNER_ERRORS,
    )


@router.post("/{goal_id}/adopt", responses={**OWNER_ERRORS, 503: PROBLEM})
def adopt_goal(
    goal_id: str,
    version: IfMatch,
    ctx: Writer,
    gs: GS,
    response: Response,
    body: VersionPrecondition | None = None,
) -> GoalPublic:
    """Adopt a proposed goal (the goal's owner or an admin) once vetting allows it: 409
    `goal-blocked` naming every reason and belief (consistency severity at or above the
    threshold, an active `contradicts` belief, a passed deadline); 503 if the external
    checker does not answer. Unknown `aligns_with` ids come back as `warnings`. Adopting
    it again changes nothing."""
    change = gs.adopt_goal(ctx, goal_id, expected_of(version, body))
    response.headers["ETag"] = etag(change.goal.version)
    return GoalPublic.of(change.goal, change.warnings)


_state_route(
    "unblock",
    GoalStore.unblock_goal,
    "Lift a manual block (the goal's owner or an admin): event `goal_unblocked`. "
    "Unblocking a goal that is not blocked changes nothing.",
)
Cascade = Annotated[
    bool,
    Query(description="Also close the goal's open children, and theirs (an event each); "
          "false: refused with 409 `children-open` while it has any."),
]  # fmt: skip
CASCADE_ERRORS = {**OWNER_ERRORS, 409: CASCADE_CONFLICT}


@router.post("/{goal_id}/abandon", name="abandon_goal", responses=CASCADE_ERRORS)
def abandon_goal(
    goal_id: str,
    version: IfMatch,
    ctx: Writer,
    gs: GS,
    response: Response,
    body: VersionPrecondition | None = None,
    cascade: Cascade = True,
) -> GoalPublic:
    """Abandon a goal that is not finished (the goal's owner or an admin), with its open
    descendants unless `cascade=false`. Abandoning it again changes nothing."""
    change = gs.abandon_goal(ctx, goal_id, expected_of(version, body), cascade=cascade)
    return goal_with_etag(response, change.goal)


@router.delete("/{goal_id}", status_code=status.HTTP_204_NO_CONTENT, responses=CASCADE_ERRORS)
def delete_goal(
    goal_id: str, version: IfMatch, ctx: Writer, gs: GS, cascade: Cascade = True
) -> Response:
    """Soft-delete a goal (its owner or an admin), with its live descendants unless
    `cascade=false`: it leaves lists and the ranking; its history stays."""
    gs.delete_goal(ctx, goal_id, expected_version(version, None), cascade=cascade)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{goal_id}/score", responses=READ_ERRORS)
def goal_score(goal_id: str, _: Reader, gs: GS) -> ScorePublic:
    """The goal's score now, term by term; for a blocked goal, every reason."""
    goal, score = gs.goal_score(goal_id)
    return ScorePublic.of(goal, score)


@router.get("/{goal_id}/history", responses=READ_ERRORS)
def goal_history(
    goal_id: str,
    _: Reader,
    gs: GS,
    after: Annotated[int, Query(ge=0, le=2**62, description="Only events after this seq.")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> GoalHistoryPublic:
    """The goal's ledger events, oldest first: who did what, when, in which trace."""
    rows = gs.goal_history(goal_id, after=after, limit=limit)
    return GoalHistoryPublic(goal_id=goal_id, data=[LedgerEventPublic.of(r) for r in rows])
