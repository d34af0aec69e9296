"""`goalstore mcp`: the MCP server over stdin and stdout, for an agent that starts
GoalStore as a subprocess. One caller for the whole session (the process's key, or
the operator), each request in its own trace (or the one its `_meta.traceparent` names).

stdout carries only MCP messages (logs go to stderr). A line that is not UTF-8 is
refused with a JSON-RPC parse error naming its id, and nothing is done with it: the
SDK's own reader would replace the bad bytes and run the request with text nobody sent.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from typing import Any, cast

import anyio
import mcp_types as types
import orjson
from mcp.server.context import ServerRequestContext
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError

from service.mcp.server import Caller, GoalStoreMcp, meta_trace
from service.runtime import Services
from service.tracing import TraceContext, new_trace

log = logging.getLogger("goalstore.mcp")

UNREADABLE = "goalstore/unreadable"  # what a non-UTF-8 request is answered as


class Utf8Lines:
    """stdin's lines as text, a line that is not UTF-8 turned into a request the server
    refuses (when an id can be read from it) or dropped (a notification: no answer)."""

    def __init__(self, binary: anyio.AsyncFile[bytes]) -> None:
        self.binary = binary

    async def __aiter__(self) -> AsyncIterator[str]:
        async for raw in self.binary:
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError:
                refusal = _refusal(raw)
                log.warning("refused a line of %d bytes that is not UTF-8", len(raw))
                if refusal is not None:
                    yield refusal


def _refusal(raw: bytes) -> str | None:
    try:
        message = orjson.loads(raw.decode("utf-8", "replace"))
    except orjson.JSONDecodeError:
        return None
    request_id = message.get("id") if isinstance(message, dict) else None
    if not isinstance(request_id, int | str) or isinstance(request_id, bool):
        return None
    return orjson.dumps({"jsonrpc": "2.0", "id": request_id, "method": UNREADABLE}).decode()


async def _unreadable(_: ServerRequestContext[Any, Any], __: types.RequestParams) -> None:
    raise MCPError(types.PARSE_ERROR, "the message is not valid UTF-8; nothing was done")


async def serve_stdio(services: Services, caller: Caller) -> None:
    """Serve one MCP session on this process's stdin and stdout until stdin closes."""

    def identify(ctx: ServerRequestContext[Any, Any]) -> tuple[Caller, TraceContext]:
        return caller, meta_trace(ctx) or new_trace()

    server = GoalStoreMcp(services, identify).server()
    server.add_request_handler(UNREADABLE, types.RequestParams, _unreadable)
    stdin_file = anyio.wrap_file(os.fdopen(os.dup(0), "rb"))
    stdin = cast(anyio.AsyncFile[str], Utf8Lines(stdin_file))  # all stdio_server iterates
    try:
        async with stdio_server(stdin=stdin) as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())
    finally:
        await stdin_file.aclose()
