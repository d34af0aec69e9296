"""What the routes declare they may answer (every refusal problem+json), and the two
helpers the goal routes share. One place, so a route module cannot drift from the others."""

from __future__ import annotations

from typing import Any

from fastapi import Response

from service.api.deps import etag, expected_version
from service.api.schemas import GoalPublic, Problem, VersionPrecondition
from service.domain.goal import Goal

PROBLEM: dict[str, Any] = {"model": Problem, "content": {"application/problem+json": {}}}

# A route that changes one goal: its owner's or an admin's (service/domain/authz.py).
OWNER_ONLY: dict[str, Any] = {
    **PROBLEM,
    "description": "The key lacks the write scope, or its actor is neither the goal's owner "
    "nor admin (`not-permitted`, naming the goal and the action); nothing is written.",
}
# A route of the scheduler's: select, task reports.
EXECUTE_ONLY: dict[str, Any] = {
    **PROBLEM,
    "description": "The key lacks the execute scope (the scheduler's; write does not imply it).",
}

# Abandon and delete: a goal's children close with it, or (cascade=false) it is refused.
CASCADE_CONFLICT: dict[str, Any] = {
    **PROBLEM,
    "description": "A stale version (`version-conflict`), a finished goal "
    "(`illegal-transition`), or `children-open` with cascade=false: the goal has open "
    "children (`open_children` names them); nothing is written.",
}

Responses = dict[int | str, dict[str, Any]]
READ_ERRORS: Responses = {401: PROBLEM, 403: PROBLEM, 404: PROBLEM}
# A write may conflict, be invalid or too large, or meet the actor's write limit.
WRITE_ERRORS: Responses = {**READ_ERRORS, 409: PROBLEM, 413: PROBLEM, 422: PROBLEM, 429: PROBLEM}
OWNER_ERRORS: Responses = {**WRITE_ERRORS, 403: OWNER_ONLY, 400: PROBLEM}
EXECUTE_ERRORS: Responses = {**WRITE_ERRORS, 403: EXECUTE_ONLY}


def goal_with_etag(response: Response, goal: Goal) -> GoalPublic:
    """The goal as served, its version as the ETag."""
    response.headers["ETag"] = etag(goal.version)
    return GoalPublic.of(goal)


def expected_of(version: int | None, body: VersionPrecondition | None) -> int | None:
    """The version a caller acts on: If-Match, or the body's expected_version."""
    return expected_version(version, body.expected_version if body else None)
