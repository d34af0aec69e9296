"""ASGI pieces: a hard body-size limit, trace context, and strict JSON parsing."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.errors import problem
from service.logs import current_trace_id
from service.tracing import continue_trace

log = logging.getLogger(__name__)
access_log = logging.getLogger("goalstore.access")


def replaying(body: bytes, receive: Receive) -> Receive:
    """A receive() that hands the app an already-read body once, then the real channel
    (so the app still hears a disconnect)."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


class BodyLimitMiddleware:
    """Refuse bodies over `max_bytes` with 413, reading at most `max_bytes` of them.

    A declared Content-Length over the limit is refused before any of the body is
    read; a chunked body is buffered only up to the limit, then refused.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(scope, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, replaying(b"".join(chunks), receive), send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        body = orjson.dumps(
            {
                "type": "urn:goalstore:problem:body-too-large",
                "title": "Request body too large",
                "status": 413,
                "detail": f"the body must not exceed {self.max_bytes} bytes",
                "instance": scope.get("path"),
            }
        )
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/problem+json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


async def trace_middleware(
    request: Request, call_next: Callable[[Request], Coroutine[Any, Any, Response]]
) -> Response:
    """Continue the caller's trace (or start one), echo our span, log one line per request.

    Unexpected errors are answered here, inside the trace, so the 500 and its log
    line carry the trace id too.
    """
    trace = continue_trace(request.headers.get("traceparent"))
    request.state.trace = trace
    token = current_trace_id.set(trace.trace_id)
    started = time.perf_counter()
    try:
        try:
            response = await call_next(request)
        except Exception:
            log.exception("unhandled error on %s %s", request.method, request.url.path)
            response = problem(500, "", "Internal Server Error", None, request)
        response.headers["traceparent"] = trace.traceparent
        access_log.info(
            "%s %s %s", request.method, request.url.path, response.status_code,
            extra={"method": request.method, "path": request.url.path,
                   "status": response.status_code,
                   "duration_ms": round((time.perf_counter() - started) * 1000, 2)},
        )  # fmt: skip
        return response
    finally:
        current_trace_id.reset(token)


class _StrictJsonRequest(Request):
    async def json(self) -> Any:
        # orjson refuses NaN/Infinity and invalid UTF-8, which json.loads lets through;
        # its error type subclasses json.JSONDecodeError, which FastAPI turns into a 400.
        if not hasattr(self, "_json"):
            self._json = orjson.loads(await self.body())
        return self._json


class StrictJsonRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(_StrictJsonRequest(request.scope, request.receive))

        return strict
