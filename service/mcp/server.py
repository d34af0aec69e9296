"""The one MCP server definition both transports serve (stdio: service/mcp/stdio.py,
Streamable HTTP: service/mcp/http.py).

Each transport says who is calling (a `Caller`: the actor the ledger records, the
scopes its key holds) and in which trace; the server lists the tools those scopes
reach, runs a tool's use case in a worker thread (the event loop stays free, and a
client that goes away cannot cut a command in half: the thread runs it to its commit),
and answers with the REST model as structured content, or a tool error carrying the
REST problem.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import anyio.to_thread
import mcp_types as types
import orjson
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import Server
from mcp.shared.exceptions import MCPError
from pydantic import BaseModel

from service import __version__
from service.api.errors import RateLimited
from service.api.schemas import GoalPublic
from service.auth import ApiKey, Scope
from service.commands import Context
from service.logs import traced
from service.mcp.errors import ArgumentsTooLarge, ScopeMissing, problem_of, tool_error
from service.mcp.tools import BY_NAME, TOOLS, RankedGoalsPublic, ToolSpec
from service.runtime import Services
from service.tracing import TraceContext, continue_trace, parse_traceparent

RESOURCE_NOT_FOUND = -32002  # MCP's code for a resource read of nothing
TOP_N = 20  # ranking://top
_GOAL_URI = re.compile(r"^goal://(?P<goal_id>[^/?#]+)$")
_RANKING_URI = re.compile(r"^ranking://top(?:/(?P<n>\d{1,3}))?$")


@dataclass(frozen=True)
class Caller:
    """Who calls, as REST's deps.py reads it from a key: its actor, its scopes, and
    whether it acts as admin (an admin key, or no keys configured)."""

    actor: str
    scopes: frozenset[Scope]
    admin: bool

    @classmethod
    def of_key(cls, key: ApiKey) -> Caller:
        return cls(key.actor, frozenset(s for s in Scope if key.allows(s)), key.admin)

    @classmethod
    def operator(cls, actor: str) -> Caller:
        """No keys to check (keyless REST, the CLI's operator): everything, as admin."""
        return cls(actor, frozenset(Scope), True)

    def allows(self, scope: Scope) -> bool:
        return scope in self.scopes


# The transport's answer to "who is calling, in which trace" for one request.
Identify = Callable[[ServerRequestContext[Any, Any]], tuple[Caller, TraceContext]]


def meta_trace(ctx: ServerRequestContext[Any, Any]) -> TraceContext | None:
    """A span in the caller's trace when the request's `_meta` carries a `traceparent`
    (how MCP clients pass W3C trace context), else None."""
    meta = (ctx.params or {}).get("_meta")
    header = meta.get("traceparent") if isinstance(meta, dict) else None
    if not isinstance(header, str) or parse_traceparent(header) is None:
        return None
    return continue_trace(header)


@cache
def listed(tool: ToolSpec) -> types.Tool:
    """The tool as tools/list shows it: schemas from its models, its hints."""
    return types.Tool(
        name=tool.name,
        description=tool.description,
        input_schema=tool.args.model_json_schema(),
        output_schema=tool.result.model_json_schema(mode="serialization"),
        annotations=types.ToolAnnotations(
            read_only_hint=tool.read_only,
            idempotent_hint=tool.idempotent,
            destructive_hint=tool.destructive,
            open_world_hint=False,
        ),
    )


def summary(tool: str, data: dict[str, Any]) -> str:
    """A line for a model that reads text, not structured content."""
    if "data" in data and isinstance(data["data"], list):
        ids = [_item(item) for item in data["data"]]
        return f"{tool}: {len(ids)} item(s){': ' if ids else ''}{_shown(ids)}"
    if "mode" in data:  # a selection
        goal = data.get("goal") or {}
        said = {"emitted": "started and queued", "shadow": "would hand over (shadow: nothing "
                "was started)"}.get(data["mode"], "selected nothing")  # fmt: skip
        return f"select_next_goal: {data['mode']}: {said} {goal.get('id', '')}".rstrip()
    if "task_id" in data:
        return f"task {data['task_id']} of goal {data['goal_id']}: {data['state']}"
    if "parent" in data and "children" in data:  # a decomposition
        ids = [child["id"] for child in data["children"]]
        return f"goal {data['parent']['id']} decomposed into {len(ids)}: {_shown(ids)}"
    if "more_children" in data:  # a tree
        return (f"goal tree {data['id']} ({data['state']}, progress {data['progress']:.0%}): "
                f"{_count(data)} goal(s) shown")  # fmt: skip
    if "state" in data and "version" in data and "text" in data:
        return f"goal {data['id']} ({data['state']}, version {data['version']}): {data['text']}"
    return f"{tool}: {orjson.dumps(data).decode()[:400]}"


def _shown(ids: list[str]) -> str:
    return ", ".join(ids[:10]) + (" …" if len(ids) > 10 else "")


def _count(node: dict[str, Any]) -> int:
    return 1 + sum(_count(child) for child in node["children"])


def _item(item: dict[str, Any]) -> str:
    if "event_type" in item:  # a ledger event
        return f"{item['seq']} {item['event_type']}"
    if "score" in item:  # a ranked goal
        return f"{item['goal_id']} ({item['score']:.3f})"
    return str(item.get("id") or item.get("goal_id"))


class GoalStoreMcp:
    """The tools and resources over one Services, for callers a transport identifies."""

    def __init__(self, services: Services, identify: Identify) -> None:
        self.services = services
        self.identify = identify

    def server(self) -> Server[Any]:
        server: Server[Any] = Server(
            "goalstore", version=__version__, title="GoalStore",
            instructions="Durable, ranked goals with a hash-chained ledger: propose and adopt "
            "goals, read the ranking with its explanation, select the next goal exactly once, "
            "report its task. Every change names the version it is based on.",
            on_list_tools=self.list_tools, on_call_tool=self.call_tool,
            on_list_resources=self.list_resources,
            on_list_resource_templates=self.list_templates,
            on_read_resource=self.read_resource,
        )  # fmt: skip
        server.middleware = []  # no OpenTelemetry span per message: GoalStore traces its own
        return server

    async def list_tools(
        self, ctx: ServerRequestContext[Any, Any], _: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        caller, _trace = self.identify(ctx)
        return types.ListToolsResult(tools=[listed(t) for t in TOOLS if caller.allows(t.scope)])

    async def call_tool(
        self, ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        tool = BY_NAME.get(params.name)
        if tool is None:  # a protocol error, as the MCP specification asks for unknown tools
            raise MCPError(types.INVALID_PARAMS, f"unknown tool {params.name[:100]!r}",
                           {"tools": [t.name for t in TOOLS]})  # fmt: skip
        caller, trace = self.identify(ctx)
        instance = f"tools/call/{tool.name}"
        with traced(trace.trace_id):
            try:
                answer = await anyio.to_thread.run_sync(
                    self._run, tool, caller, trace, params.arguments or {}
                )
            except Exception as exc:
                return tool_error(exc, instance)
            data = answer.model_dump(mode="json")
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=summary(tool.name, data))],
            structured_content=data,
        )

    def _run(
        self, tool: ToolSpec, caller: Caller, trace: TraceContext, arguments: dict[str, Any]
    ) -> BaseModel:
        """In a worker thread: the checks REST makes, in its order, then the use case."""
        if not caller.allows(tool.scope):
            raise ScopeMissing(tool.scope)
        limit = self.services.settings.max_body_bytes
        if len(orjson.dumps(arguments)) > limit:
            raise ArgumentsTooLarge(limit)
        parsed = tool.args.model_validate(arguments)
        limiter = self.services.rate_limiter
        if tool.scope is not Scope.READ and limiter is not None:
            wait_s = limiter.wait_s(caller.actor)
            if wait_s > 0:
                raise RateLimited(caller.actor, wait_s)
        ctx = Context(actor=caller.actor, trace=trace, admin=caller.admin)
        return tool.run(self.services.goalstore, ctx, parsed)

    # --- resources -------------------------------------------------------------------

    async def list_resources(
        self, ctx: ServerRequestContext[Any, Any], _: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        ranking = types.Resource(
            uri="ranking://top", name="ranking", mime_type="application/json",
            description=f"The top {TOP_N} adopted goals, best first, with their scores "
            "(ranking://top/{n} for another count, up to 500).",
        )  # fmt: skip
        return types.ListResourcesResult(resources=[ranking])

    async def list_templates(
        self, ctx: ServerRequestContext[Any, Any], _: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        return types.ListResourceTemplatesResult(resource_templates=[
            types.ResourceTemplate(uri_template="goal://{goal_id}", name="goal",
                                   mime_type="application/json",
                                   description="One goal, as get_goal answers it."),
            types.ResourceTemplate(uri_template="ranking://top/{n}", name="ranking-top-n",
                                   mime_type="application/json",
                                   description="The top n adopted goals (1-500), best first."),
        ])  # fmt: skip

    async def read_resource(
        self, ctx: ServerRequestContext[Any, Any], params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        uri = str(params.uri)
        caller, trace = self.identify(ctx)
        with traced(trace.trace_id):
            try:
                if not caller.allows(Scope.READ):
                    raise ScopeMissing(Scope.READ)
                body = await anyio.to_thread.run_sync(self._read, uri)
            except MCPError:
                raise
            except Exception as exc:
                problem = problem_of(exc, uri)
                code = RESOURCE_NOT_FOUND if problem["status"] == 404 else types.INVALID_PARAMS
                raise MCPError(code, problem["detail"] or problem["title"], problem) from None
        text = body.model_dump_json()
        return types.ReadResourceResult(contents=[
            types.TextResourceContents(uri=uri, mime_type="application/json", text=text)
        ])  # fmt: skip

    def _read(self, uri: str) -> BaseModel:
        gs = self.services.goalstore
        goal = _GOAL_URI.match(uri)
        if goal is not None:
            return GoalPublic.of(gs.get_goal(goal["goal_id"]))
        ranking = _RANKING_URI.match(uri)
        if ranking is not None and 1 <= int(ranking["n"] or TOP_N) <= 500:
            tool = BY_NAME["ranked_goals"]
            args = tool.args.model_validate({"limit": int(ranking["n"] or TOP_N)})
            result = tool.run(gs, Context(actor="mcp"), args)
            assert isinstance(result, RankedGoalsPublic)
            return result
        raise MCPError(
            RESOURCE_NOT_FOUND,
            f"no resource at {uri[:200]!r}",
            {"uri": uri[:200], "templates": ["goal://{goal_id}", "ranking://top/{n}"]},
        )
