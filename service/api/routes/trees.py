"""/v1/goals/{id}/subgoals and /v1/goals/{id}/tree: goal trees (docs/api.md#goal-trees)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from service.api.deps import GS, IfMatch, Reader, Writer, etag, expected_version
from service.api.middleware import StrictJsonRoute
from service.api.routes.responses import OWNER_ERRORS, PROBLEM, READ_ERRORS
from service.api.schemas import GoalPublic
from service.api.schemas.trees import DecompositionPublic, GoalTreePublic
from service.domain.inputs import Subgoals
from service.domain.trees import MAX_CHILDREN, MAX_TREE_DEPTH

router = APIRouter(prefix="/v1/goals", tags=["goal trees"], route_class=StrictJsonRoute)

DECOMPOSE_REFUSED = {
    **PROBLEM,
    "description": f"`invalid-goal` naming the field: more than {MAX_CHILDREN} children "
    f"(MAX_CHILDREN), a tree deeper than {MAX_TREE_DEPTH} levels (MAX_TREE_DEPTH), a "
    "cycle (`would make a cycle: a -> b -> a`), a child naming another parent_id; or "
    "`invalid-request` (a child off the schema).",
}
DECOMPOSE_CONFLICT = {
    **PROBLEM,
    "description": "The goal is finished (`illegal-transition`), a child's id is taken "
    "(`goal-exists`), or If-Match names another version (`version-conflict`). Nothing "
    "is written.",
}


@router.post(
    "/{goal_id}/subgoals",
    status_code=status.HTTP_201_CREATED,
    responses={**OWNER_ERRORS, 409: DECOMPOSE_CONFLICT, 422: DECOMPOSE_REFUSED},
)
def decompose_goal(
    goal_id: str, spec: Subgoals, version: IfMatch, ctx: Writer, gs: GS, response: Response
) -> DecompositionPublic:
    """Decompose a goal into children, all created in one transaction or none (its owner
    or an admin): each child a `goal_created` event naming its parent, the goal a
    `goal_decomposed` event naming them. A child may omit `parent_id`. At most
    100 children a goal (MAX_CHILDREN), 8 levels a tree (MAX_TREE_DEPTH). If-Match is optional;
    the goal's version does not change (its progress may)."""
    done = gs.decompose_goal(ctx, goal_id, spec, expected_version(version, None))
    response.headers["ETag"] = etag(done.parent.version)
    response.headers["Location"] = f"/v1/goals/{goal_id}/tree"
    return DecompositionPublic(
        parent=GoalPublic.of(done.parent), children=[GoalPublic.of(c) for c in done.children]
    )


@router.get(
    "/{goal_id}/tree", response_model=GoalTreePublic, responses={**READ_ERRORS, 422: PROBLEM}
)
def goal_tree(
    goal_id: str,
    _: Reader,
    gs: GS,
    depth: Annotated[
        int,
        Query(ge=1, le=MAX_TREE_DEPTH, description="Levels shown, the goal being level 1."),
    ] = MAX_TREE_DEPTH,
) -> Response:
    """The goal and its live descendants, nested, each with its progress, state and its
    ranking score now (`blocked` and why); a node at the last level shown counts the
    children left out in `more_children`."""
    tree = GoalTreePublic.of_tree(gs.goal_tree(goal_id, depth=depth))
    # Serialized here, in the worker thread: see prioritized() in routes/goals.py.
    return Response(tree.model_dump_json(), media_type="application/json")
