"""/v1/beliefs: the agent's beliefs, mirrored for adoption vetting and ranking."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from service.api.deps import GS, Reader, Writer
from service.api.middleware import StrictJsonRoute
from service.api.schemas import BeliefPublic, BeliefsPublic, Problem
from service.domain.beliefs import BeliefPut
from service.domain.inputs import Identifier

router = APIRouter(prefix="/v1/beliefs", tags=["beliefs"], route_class=StrictJsonRoute)
_P: dict[str, Any] = {"model": Problem, "content": {"application/problem+json": {}}}
_AUTH: dict[int | str, dict[str, Any]] = {401: _P, 403: _P}  # with keys: none, or no scope


@router.get("", responses=_AUTH)
def list_beliefs(_: Reader, gs: GS, active: bool | None = None) -> BeliefsPublic:
    """Every belief, or only the active (or inactive) ones."""
    beliefs = gs.list_beliefs(active)
    return BeliefsPublic(data=[BeliefPublic.of(b) for b in beliefs], count=len(beliefs))


@router.get("/{belief_id}", responses={**_AUTH, 404: _P})
def get_belief(belief_id: str, _: Reader, gs: GS) -> BeliefPublic:
    """One belief."""
    return BeliefPublic.of(gs.get_belief(belief_id))


@router.put(
    "/{belief_id}",
    responses={201: {"model": BeliefPublic, "description": "Created: the belief is new."},
               **_AUTH, 400: _P, 413: _P, 422: _P, 429: _P},
)  # fmt: skip
def put_belief(
    belief_id: Identifier, spec: BeliefPut, ctx: Writer, gs: GS, response: Response
) -> BeliefPublic:
    """Create or update a belief (201 when new). Activating one re-ranks the goals it touches."""
    belief, changed = gs.put_belief(ctx, belief_id, spec)
    if changed and belief.version == 1:
        response.status_code = 201
    return BeliefPublic.of(belief)
