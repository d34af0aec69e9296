"""The body limit reads no more than the limit of a body it refuses."""

from __future__ import annotations

import asyncio
from typing import Any

from service.api.middleware import BodyLimitMiddleware


def run(headers: list[tuple[bytes, bytes]], chunks: list[bytes], limit: int) -> dict[str, Any]:
    received: list[int] = []
    sent: list[dict[str, Any]] = []
    reached_app: list[bytes] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        message = await receive()
        reached_app.append(message["body"])

    async def receive() -> dict[str, Any]:
        index = len(received)
        received.append(index)
        return {"type": "http.request", "body": chunks[index],
                "more_body": index < len(chunks) - 1}  # fmt: skip

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "headers": headers, "path": "/v1/goals"}
    asyncio.run(BodyLimitMiddleware(app, limit)(scope, receive, send))
    status = sent[0]["status"] if sent else None
    return {"chunks_read": len(received), "status": status, "app": reached_app}


def test_a_declared_oversize_body_is_refused_before_any_is_read() -> None:
    """Content-Length over the limit: 413 without reading a byte."""
    result = run([(b"content-length", b"2097152")], [b"x" * 1024] * 2048, limit=1024 * 1024)

    assert (0, 413, []) == (result["chunks_read"], result["status"], result["app"])


def test_a_chunked_oversize_body_is_cut_off_just_past_the_limit() -> None:
    """Without a length, reading stops at the first chunk that passes the limit."""
    chunk = b"x" * 64 * 1024
    result = run([], [chunk] * 32, limit=1024 * 1024)  # 2 MiB offered

    assert (17, 413, []) == (result["chunks_read"], result["status"], result["app"])


def test_a_body_within_the_limit_reaches_the_app_whole() -> None:
    """Chunks under the limit are passed on as one body."""
    result = run([], [b"ab", b"cd", b"ef"], limit=1024)

    assert (3, None, [b"abcdef"]) == (result["chunks_read"], result["status"], result["app"])
