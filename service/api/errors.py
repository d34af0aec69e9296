"""Every error the API returns is application/problem+json (RFC 9457); mapped here, once."""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.commands.selection import SchedulerUnavailable
from service.commands.tasks import GateClosed, ResultInvalid
from service.domain.errors import (
    BeliefNotFound,
    DecisionNotFound,
    GoalAlreadyExists,
    GoalNotFound,
    GoalStoreError,
    IllegalTransition,
    InvalidGoal,
    InvalidInput,
    PreconditionRequired,
    VersionConflict,
)
from service.domain.tasks import IllegalTaskTransition, TaskNotFound
from service.domain.vetting import CheckerUnavailable, GoalBlocked
from service.logs import current_trace_id

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


def problem(
    status: int, slug: str, title: str, detail: str | None, request: Request, **extra: Any
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"urn:goalstore:problem:{slug}" if slug else "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        **extra,
    }
    trace_id = current_trace_id.get()
    if trace_id:
        body["trace_id"] = trace_id
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _domain_problem(request: Request, exc: GoalStoreError) -> JSONResponse:
    detail = str(exc)
    match exc:
        case GoalNotFound():
            return problem(404, "goal-not-found", "Goal not found", detail, request,
                           goal_id=exc.goal_id)  # fmt: skip
        case BeliefNotFound():
            return problem(404, "belief-not-found", "Belief not found", detail, request,
                           belief_id=exc.belief_id)  # fmt: skip
        case DecisionNotFound():
            return problem(404, "decision-not-found", "Decision not found", detail, request,
                           decision_id=exc.decision_id)  # fmt: skip
        case GoalAlreadyExists():
            return problem(409, "goal-exists", "Goal already exists", detail, request,
                           goal_id=exc.goal_id)  # fmt: skip
        case VersionConflict():
            return problem(409, "version-conflict", "Version conflict", detail, request,
                           goal_id=exc.goal_id, current_version=exc.current_version,
                           expected_version=exc.expected_version)  # fmt: skip
        case IllegalTransition():
            return problem(409, "illegal-transition", "Illegal state transition", detail, request,
                           goal_id=exc.goal_id, current_state=exc.current_state,
                           action=exc.action)  # fmt: skip
        case PreconditionRequired():
            return problem(428, "precondition-required", "Expected version required", detail,
                           request, goal_id=exc.goal_id)  # fmt: skip
        case GoalBlocked():
            return problem(409, "goal-blocked", "Blocked by vetting", detail, request,
                           goal_id=exc.goal_id, belief_ids=exc.verdict.belief_ids,
                           reasons=[b.as_dict() for b in exc.verdict.blocks],
                           severity=exc.verdict.severity)  # fmt: skip
        case CheckerUnavailable():
            return problem(503, "checker-unavailable", "Checker unavailable", detail, request,
                           retry_after_s=5)  # fmt: skip
        case SchedulerUnavailable():
            return problem(503, "scheduler-unavailable", "Scheduler queue unavailable", detail,
                           request)  # fmt: skip
        case TaskNotFound():
            return problem(404, "task-not-found", "Task not found", detail, request,
                           task_id=exc.task_id)  # fmt: skip
        case IllegalTaskTransition():
            return problem(409, "illegal-task-transition", "Illegal task transition", detail,
                           request, task_id=exc.task_id, current_state=exc.current_state,
                           action=exc.action)  # fmt: skip
        case GateClosed():
            return problem(409, "gate-closed", "Verification gate closed", detail, request,
                           goal_id=exc.goal_id, **exc.counts.as_dict())  # fmt: skip
        case ResultInvalid():
            return problem(422, "invalid-result", "Invalid result (GoalFailure)", detail, request,
                           goal_id=exc.goal_id, goal_type=exc.goal_type,
                           errors=[e.as_dict() for e in exc.errors])  # fmt: skip
        case InvalidGoal():
            return problem(422, "invalid-goal", "Invalid goal", detail, request,
                           errors=[e.as_dict() for e in exc.errors])  # fmt: skip
        case InvalidInput():
            return problem(422, "invalid-input", "Invalid input", detail, request,
                           errors=[e.as_dict() for e in exc.errors])  # fmt: skip
    log.error("unmapped domain error %r", exc)
    return problem(500, "", "Internal Server Error", None, request)


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    # Drop `input` (it can echo megabytes back) and `ctx` (it can hold exceptions).
    return [
        {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type", "")}
        for err in exc.errors()
    ]


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(GoalStoreError)
    async def on_domain_error(request: Request, exc: GoalStoreError) -> JSONResponse:
        return _domain_problem(request, exc)

    @app.exception_handler(RequestValidationError)
    async def on_invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _validation_errors(exc)
        if any(err["type"] == "json_invalid" for err in errors):
            return problem(400, "malformed-json", "Malformed JSON", "the body is not valid JSON "
                           "(NaN and Infinity are not JSON)", request, errors=errors)  # fmt: skip
        return problem(422, "invalid-request", "Invalid request",
                       f"{len(errors)} validation error(s)", request, errors=errors)  # fmt: skip

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem(exc.status_code, "", _title(exc.status_code), str(exc.detail), request)

    @app.exception_handler(sqlite3.OperationalError)
    async def on_database_error(request: Request, exc: sqlite3.OperationalError) -> JSONResponse:
        if "locked" in str(exc) or "busy" in str(exc):
            response = problem(503, "database-busy", "Database busy",
                               "the database stayed locked past the busy timeout; retry",
                               request)  # fmt: skip
            response.headers["Retry-After"] = "1"
            return response
        log.exception("database error on %s %s", request.method, request.url.path)
        return problem(500, "", "Internal Server Error", None, request)

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(500, "", "Internal Server Error", None, request)


def _title(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
