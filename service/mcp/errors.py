"""Failures as MCP answers: the problem+json body REST would give (service/api/errors.py),
carried by a tool error, or by a JSON-RPC error's data where MCP has no tool error (a
resource read). Never a stack trace: an unexpected error is logged here and answered
as REST answers it, a bare 500."""

from __future__ import annotations

import logging
from typing import Any

import mcp_types as types
import orjson
from pydantic import ValidationError

from service.api.errors import (
    RateLimited,
    domain_problem_body,
    problem_body,
    validation_errors,
)
from service.auth import Scope
from service.domain.errors import GoalStoreError
from service.metrics import RATE_LIMITED, RECORDER

log = logging.getLogger("goalstore.mcp")


class ScopeMissing(Exception):
    """The caller's key lacks the scope the tool or resource needs: REST's 403."""

    def __init__(self, scope: Scope) -> None:
        super().__init__(f"this API key lacks the {scope.value} scope")


class ArgumentsTooLarge(Exception):
    """The arguments exceed the request body limit REST applies (GOALSTORE_MAX_BODY_BYTES)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the arguments must not exceed {limit} bytes")


def problem_of(exc: BaseException, instance: str) -> dict[str, Any]:
    """The problem body REST answers `exc` with."""
    if isinstance(exc, GoalStoreError):
        return domain_problem_body(exc, instance)
    if isinstance(exc, ValidationError):
        errors = validation_errors(exc.errors())
        for error in errors:
            error["loc"] = ["arguments", *error["loc"]]
        detail = f"{len(errors)} validation error(s)"
        return problem_body(422, "invalid-request", "Invalid request", detail, instance,
                            errors=errors)  # fmt: skip
    if isinstance(exc, ScopeMissing):
        return problem_body(403, "", "Forbidden", str(exc), instance)
    if isinstance(exc, ArgumentsTooLarge):
        return problem_body(413, "body-too-large", "Request body too large", str(exc), instance)
    if isinstance(exc, RateLimited):
        RECORDER.inc(RATE_LIMITED, actor=exc.actor)
        return problem_body(429, "rate-limited", "Too many writes", str(exc), instance,
                            actor=exc.actor, retry_after_s=exc.wait_s)  # fmt: skip
    log.error("unexpected error in %s", instance, exc_info=exc)
    return problem_body(500, "", "Internal Server Error", None, instance)


def tool_error(exc: BaseException, instance: str) -> types.CallToolResult:
    """A tool error: the problem as structured content, and as JSON text for clients that
    read text only (the first line says what happened, for a model reading it)."""
    problem = problem_of(exc, instance)
    headline = f"{problem['title']} ({problem['status']}): {problem['detail'] or ''}".rstrip(": ")
    text = f"{headline}\n{orjson.dumps(problem).decode()}"
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)],
        structured_content=problem,
        is_error=True,
    )
