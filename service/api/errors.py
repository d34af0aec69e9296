"""Every error the API returns is application/problem+json (RFC 9457); mapped here, once."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Scope, Send

from service.domain.errors import ErrorKind, GoalStoreError
from service.logs import current_trace_id
from service.metrics import RATE_LIMITED, RECORDER

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

# The one HTTP reading of the error taxonomy (service/domain/errors.py). The CLI reads
# the same kinds into exit codes (service/cli/output.py).
HTTP_STATUS: dict[ErrorKind, int] = {
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.CONFLICT: 409,
    ErrorKind.INVALID: 422,
    ErrorKind.FORBIDDEN: 403,
    ErrorKind.PRECONDITION: 428,
    ErrorKind.UNAVAILABLE: 503,
    ErrorKind.CONFIGURATION: 503,
}
RETRY_AFTER_S = GoalStoreError.retry_after_s  # a 503 of no command error (e.g. Redis)


def problem_body(
    status: int, slug: str, title: str, detail: str | None, instance: str | None, **extra: Any
) -> dict[str, Any]:
    """The RFC 9457 body every error response of the API carries, with the trace id."""
    body: dict[str, Any] = {
        "type": f"urn:goalstore:problem:{slug}" if slug else "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
        **extra,
    }
    trace_id = current_trace_id.get()
    if trace_id:
        body["trace_id"] = trace_id
    return body


class RateLimited(Exception):
    """The actor's write limit is spent (service/cache/ratelimit.py): a 429."""

    def __init__(self, actor: str, wait_s: float) -> None:
        super().__init__(f"{actor!r} has made its writes for now; retry in {wait_s:.2f} s")
        self.actor = actor
        self.wait_s = max(1, math.ceil(wait_s))  # Retry-After is whole seconds


def _headers(status: int, retry_after_s: int | None = RETRY_AFTER_S) -> dict[str, str]:
    if status == 401:
        return {"WWW-Authenticate": "Bearer"}
    if status in (429, 503) and retry_after_s is not None:
        return {"Retry-After": str(retry_after_s)}
    return {}


def problem(
    status: int, slug: str, title: str, detail: str | None, request: Request,
    wait_s: int | None = RETRY_AFTER_S, **extra: Any,
) -> JSONResponse:  # fmt: skip
    """The problem as a response; a 503 asks the client to retry after `wait_s` (None:
    retrying will not help, e.g. the deployment lacks a part)."""
    body = problem_body(status, slug, title, detail, request.url.path, **extra)
    headers = _headers(status, wait_s)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


async def send_problem(
    send: Send, scope: Scope, status: int, slug: str, title: str, detail: str,
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> None:  # fmt: skip
    """The same problem from plain ASGI middleware (before any route runs)."""
    body = orjson.dumps(problem_body(status, slug, title, detail, scope.get("path")))
    extra = [(k.lower().encode(), v.encode()) for k, v in _headers(status).items()]
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", PROBLEM_JSON.encode()), (b"content-length", str(len(body)).encode()),
        *extra, *headers]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})


def domain_problem(request: Request, exc: GoalStoreError) -> JSONResponse:
    """Any command error as its problem: status from its kind, type and fields from it."""
    status = HTTP_STATUS[exc.kind]
    wait_s = exc.retry_after_s if exc.kind is ErrorKind.UNAVAILABLE else None
    return problem(status, exc.code, exc.title, str(exc), request, wait_s, **exc.fields())


def domain_problem_body(exc: GoalStoreError, instance: str | None) -> dict[str, Any]:
    """The body domain_problem() answers with, for edges that are not HTTP (MCP tools)."""
    status = HTTP_STATUS[exc.kind]
    return problem_body(status, exc.code, exc.title, str(exc), instance, **exc.fields())


def validation_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """Pydantic's errors as served: where and what. `input` is dropped (it can echo
    megabytes back), and `ctx` (it can hold exceptions)."""
    return [
        {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type", "")}
        for err in errors
    ]


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    return validation_errors(exc.errors())


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(GoalStoreError)
    async def on_domain_error(request: Request, exc: GoalStoreError) -> JSONResponse:
        return domain_problem(request, exc)

    @app.exception_handler(RequestValidationError)
    async def on_invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _validation_errors(exc)
        if any(err["type"] == "json_invalid" for err in errors):
            return problem(400, "malformed-json", "Malformed JSON", "the body is not valid JSON "
                           "(NaN and Infinity are not JSON)", request, errors=errors)  # fmt: skip
        return problem(422, "invalid-request", "Invalid request",
                       f"{len(errors)} validation error(s)", request, errors=errors)  # fmt: skip

    @app.exception_handler(RateLimited)
    async def on_rate_limited(request: Request, exc: RateLimited) -> JSONResponse:
        RECORDER.inc(RATE_LIMITED, actor=exc.actor)
        return problem(429, "rate-limited", "Too many writes", str(exc), request, exc.wait_s,
                       actor=exc.actor)  # fmt: skip

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        response = problem(exc.status_code, "", _title(exc.status_code), str(exc.detail), request)
        response.headers.update(exc.headers or {})
        if exc.status_code == 405:  # the router's Allow names the first route's methods only
            response.headers["Allow"] = _allowed(request, response.headers.get("Allow", ""))
        return response

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(500, "", "Internal Server Error", None, request)


def _allowed(request: Request, given: str) -> str:
    """The methods the OpenAPI document declares for the request's path (a literal path
    before templated ones: /v1/goals/select is not a goal id), else what the router said."""
    paths: dict[str, dict[str, Any]] = request.app.openapi()["paths"]
    path = request.url.path
    matching = [template for template in paths if _template(template).fullmatch(path)]
    literal = [template for template in matching if "{" not in template]
    methods = {method.upper() for template in literal or matching for method in paths[template]}
    return ", ".join(sorted(methods)) or given


@lru_cache(maxsize=256)
def _template(template: str) -> re.Pattern[str]:
    return re.compile(re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)))


def _title(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
