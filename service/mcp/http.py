"""MCP over Streamable HTTP at `/mcp` in the web app, behind REST's keys and scopes.

Every request presents its key (`Authorization: Bearer <key>` or `X-API-Key`), as a
REST request does: without a valid one it is refused with REST's 401 before MCP reads
it. The web app's TraceMiddleware has already continued the caller's `traceparent`
(or started a trace), and the body limit has bounded the request, as for any route.

Stateless and JSON: each POST is answered on its own (no session held in one
process's memory, so any web process behind a balancer can answer any request) and
with one JSON body rather than an event stream; the tools never call back to the client.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any

from mcp.server.context import ServerRequestContext
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.datastructures import Headers
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from service.api.errors import send_problem
from service.auth import authenticate, presented_key
from service.mcp.server import Caller, GoalStoreMcp, meta_trace
from service.runtime import Services
from service.tracing import TraceContext, new_trace

PATH = "/mcp"
ANONYMOUS = "anonymous"  # the actor of every caller when no keys are configured (as REST)
_NOBODY = Caller(ANONYMOUS, frozenset(), admin=False)


class McpEndpoint:
    """The ASGI endpoint at /mcp: the caller's key checked, then the SDK's transport."""

    def __init__(self, services: Services) -> None:
        self.services = services
        server = GoalStoreMcp(services, self.identify).server()
        self.manager = StreamableHTTPSessionManager(app=server, json_response=True, stateless=True)

    def running(self) -> AbstractAsyncContextManager[None]:
        """The transport's task group: entered for as long as the app serves."""
        return self.manager.run()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = scope.setdefault("state", {})
        keys = self.services.api_keys
        if keys:
            headers = Headers(scope=scope)
            presented = presented_key(headers.get("authorization"), headers.get("x-api-key"))
            key = authenticate(keys, presented)
            if key is None:
                await send_problem(
                    send,
                    scope,
                    401,
                    "",
                    "Unauthorized",
                    "a valid API key is required (Authorization: Bearer <key>)",
                )
                return
            state["mcp_caller"] = Caller.of_key(key)
        else:
            state["mcp_caller"] = Caller.operator(ANONYMOUS)
        await self.manager.handle_request(scope, receive, send)

    def identify(self, ctx: ServerRequestContext[Any, Any]) -> tuple[Caller, TraceContext]:
        state: dict[str, Any] = ctx.request.scope.get("state", {}) if ctx.request else {}
        caller = state.get("mcp_caller", _NOBODY)
        return caller, meta_trace(ctx) or state.get("trace") or new_trace()


def mcp_route(services: Services) -> tuple[Route, McpEndpoint]:
    """The route to add to the web app (outside its OpenAPI document: it speaks
    JSON-RPC, not REST) and the endpoint whose running() the app's lifespan enters."""
    endpoint = McpEndpoint(services)
    route = Route(PATH, endpoint, include_in_schema=False)
    return route, endpoint
