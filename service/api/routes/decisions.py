"""/v1/decisions: the goal_selected weights, and the outcomes of selections."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from service.api.deps import GS, Admin, Reader, Writer
from service.api.middleware import StrictJsonRoute
from service.api.schemas import DecisionPublic, OutcomePublic, OutcomesPublic, Problem
from service.domain.decisions import DecisionChange, OutcomeCreate

router = APIRouter(prefix="/v1/decisions", tags=["decisions"], route_class=StrictJsonRoute)
_P: dict[str, Any] = {"model": Problem, "content": {"application/problem+json": {}}}
_AUTH: dict[int | str, dict[str, Any]] = {401: _P, 403: _P}  # with keys: none, or no scope
_ADMIN_ONLY = {**_P, "description": "The API key lacks the admin scope."}


@router.get("/{decision_id}", responses={**_AUTH, 404: _P})
def get_decision(decision_id: str, _: Reader, gs: GS) -> DecisionPublic:
    """A decision's parameters: current value, range and step of each weight."""
    return DecisionPublic.of(gs.get_decision(decision_id))


@router.put("/{decision_id}", responses={**_AUTH, 403: _ADMIN_ONLY, 404: _P, 422: _P, 429: _P})
def change_decision(decision_id: str, change: DecisionChange, ctx: Admin, gs: GS) -> DecisionPublic:
    """Set new current values (in range, on step; admin scope). Every goal is re-ranked."""
    decision, _ = gs.change_decision(ctx, decision_id, change)
    return DecisionPublic.of(decision)


@router.post(
    "/{decision_id}/outcomes", status_code=201, responses={**_AUTH, 404: _P, 422: _P, 429: _P}
)
def record_outcome(decision_id: str, outcome: OutcomeCreate, ctx: Writer, gs: GS) -> OutcomePublic:
    """Record values of the decision's success metrics after a selection played out."""
    return OutcomePublic(**gs.record_outcome(ctx, decision_id, outcome))


@router.get("/{decision_id}/outcomes", responses={**_AUTH, 404: _P})
def list_outcomes(
    decision_id: str,
    _: Reader,
    gs: GS,
    after: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> OutcomesPublic:
    """Recorded outcomes, oldest first."""
    rows = gs.list_outcomes(decision_id, after=after, limit=limit)
    return OutcomesPublic(data=[OutcomePublic(**row) for row in rows])
