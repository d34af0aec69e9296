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

from service.api.errors import problem, send_problem
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
        await send_problem(send, scope, 413, "body-too-large", "Request body too large",
                           f"the body must not exceed {self.max_bytes} bytes",
                           headers=[(b"connection", b"close")])  # fmt: skip


class TraceMiddleware:
    """Continue the caller's trace (or start one), echo our span, log one line per request.

    Plain ASGI rather than `@app.middleware("http")`: Starlette's BaseHTTPMiddleware runs
    the app in a task behind memory streams, which cost more than the ranked read it
    wraps. Unexpected errors are answered here, inside the trace, so the 500 and its log
    line carry the trace id too.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = next((v for k, v in scope["headers"] if k == b"traceparent"), None)
        trace = continue_trace(None if header is None else header.decode("latin-1"))
        scope.setdefault("state", {})["trace"] = trace  # request.state.trace
        echoed = (b"traceparent", trace.traceparent.encode())
        status = 0

        async def traced(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), echoed]}
            await send(message)

        token = current_trace_id.set(trace.trace_id)
        started = time.perf_counter()
        method, path = scope["method"], scope["path"]
        try:
            try:
                await self.app(scope, receive, traced)
            except Exception:
                log.exception("unhandled error on %s %s", method, path)
                if status:  # the response has begun: nothing clean can be sent now
                    raise
                response = problem(500, "", "Internal Server Error", None, Request(scope))
                await response(scope, receive, traced)
            access_log.info(
                "%s %s %s", method, path, status,
                extra={"method": method, "path": path, "status": status,
                       "duration_ms": round((time.perf_counter() - started) * 1000, 2)},
            )  # fmt: skip
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
