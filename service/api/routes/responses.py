"""The documented 403s, shared by the routes that can send them (docs/api.md, scopes)."""

from __future__ import annotations

from typing import Any

from service.api.schemas import Problem

_PROBLEM: dict[str, Any] = {"model": Problem, "content": {"application/problem+json": {}}}

# A route that changes one goal: its owner's or an admin's (service/domain/authz.py).
OWNER_ONLY: dict[str, Any] = {
    **_PROBLEM,
    "description": "The key lacks the write scope, or its actor is neither the goal's owner "
    "nor admin (`not-permitted`, naming the goal and the action); nothing is written.",
}
# A route of the scheduler's: select, task reports.
EXECUTE_ONLY: dict[str, Any] = {
    **_PROBLEM,
    "description": "The key lacks the execute scope (the scheduler's; write does not imply it).",
}
