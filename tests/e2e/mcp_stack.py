"""What the MCP tests run against: one SQLite file, the tests' Redis (its own key prefix),
a real `goalstore serve` (uvicorn) with API keys, and `goalstore mcp` subprocesses;
sessions of the SDK's own ClientSession over stdio or Streamable HTTP, driven from
synchronous tests through one event loop in a thread (a blocking portal), so a module
shares one server and one stdio subprocess between its tests."""

from __future__ import annotations

import signal
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
from anyio.from_thread import BlockingPortal, start_blocking_portal
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp_types import CallToolResult, RequestParamsMeta
from redis import Redis

from service.testing import free_port, migrated_database
from tests.conftest import TEST_REDIS_URL
from tests.e2e.conftest import BIN, process_env, wait_ready

AGENT_KEY = "agent-key-0123456789abcdef"  # write + execute: proposes, adopts, selects
READER_KEY = "reader-key-0123456789abcdef"  # read only
API_KEYS = f"agent:write+execute:{AGENT_KEY},reader:read:{READER_KEY}"
READ_TOOLS = {"get_goal", "list_goals", "ranked_goals", "explain_score", "list_beliefs",
              "goal_history", "goal_tree"}  # fmt: skip


def traceparent() -> tuple[str, str]:
    """A fresh W3C traceparent and its trace id."""
    trace_id = uuid.uuid4().hex
    return f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01", trace_id


class Session:
    """A ClientSession, called synchronously through the portal's event loop."""

    def __init__(self, portal: BlockingPortal, session: ClientSession) -> None:
        self.portal, self.session = portal, session

    def call(self, tool: str, traceparent: str | None = None, **arguments: Any) -> CallToolResult:
        meta = RequestParamsMeta(traceparent=traceparent) if traceparent else None  # type: ignore[typeddict-unknown-key]
        result = self.portal.call(lambda: self.session.call_tool(tool, arguments, meta=meta))
        assert isinstance(result, CallToolResult)
        return result

    def ok(self, tool: str, traceparent: str | None = None, **arguments: Any) -> dict[str, Any]:
        """The structured content of a call that must succeed."""
        result = self.call(tool, traceparent, **arguments)
        assert not result.is_error, result.content
        assert result.structured_content is not None
        return result.structured_content

    def refused(self, tool: str, **arguments: Any) -> dict[str, Any]:
        """The problem of a call that must fail as a tool error."""
        result = self.call(tool, **arguments)
        assert result.is_error, result.structured_content
        assert result.structured_content is not None
        return result.structured_content

    def tools(self) -> dict[str, Any]:
        listed = self.portal.call(self.session.list_tools)
        return {tool.name: tool for tool in listed.tools}


class McpStack:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.database = tmp / "mcp.db"
        migrated_database(self.database).close()
        self.prefix = f"goalstore-mcp-test-{uuid.uuid4().hex[:8]}:"
        self.redis = Redis.from_url(TEST_REDIS_URL)
        self.url = ""
        self.web: subprocess.Popen[bytes] | None = None
        self.portal_cm = start_blocking_portal()
        self.portal = self.portal_cm.__enter__()

    def env(self, **extra: str) -> dict[str, str]:
        return process_env(
            GOALSTORE_DATABASE=str(self.database), GOALSTORE_REDIS_URL=TEST_REDIS_URL,
            GOALSTORE_REDIS_PREFIX=self.prefix, GOALSTORE_API_KEYS=API_KEYS,
            GOAL_SYSTEM="true", GOAL_SHADOW="false", **extra,
        )  # fmt: skip

    def serve(self) -> None:
        """A real `goalstore serve` (uvicorn) on a free port."""
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        log = open(self.tmp / "web.log", "wb")  # noqa: SIM115 - the process writes it
        self.web = subprocess.Popen(
            [str(BIN / "goalstore"), "serve", "--port", str(port)], env=self.env(),
            cwd=self.tmp, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_ready(self.url, self.web)

    def rest(self, key: str = AGENT_KEY) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10,
                            headers={"Authorization": f"Bearer {key}"})  # fmt: skip

    def stdio_params(self, *args: str, **env: str) -> StdioServerParameters:
        return StdioServerParameters(command=str(BIN / "goalstore"), args=[*args, "mcp"],
                                     env=self.env(**env), cwd=str(self.tmp))  # fmt: skip

    @contextmanager
    def session(self, transport: str, key: str = AGENT_KEY, **headers: str) -> Iterator[Session]:
        """A session over `transport` (stdio: `goalstore --actor agent mcp`, acting as
        `key` unless it is the agent's; http: /mcp with `key`)."""
        opened = self._stdio(key) if transport == "stdio" else self._http(key, headers)
        with self.portal.wrap_async_context_manager(opened) as session:
            yield Session(self.portal, session)

    @asynccontextmanager
    async def _stdio(self, key: str) -> AsyncIterator[ClientSession]:
        env = {} if key == AGENT_KEY else {"GOALSTORE_MCP_KEY": key}
        errlog = open(self.tmp / "mcp-stdio.log", "a")  # noqa: SIM115 - the process writes it
        try:
            params = self.stdio_params("--actor", "agent", **env)
            async with (
                stdio_client(params, errlog=errlog) as (read, write),
                ClientSession(read, write) as session,
            ):
                await session.initialize()
                yield session
        finally:
            errlog.close()

    @asynccontextmanager
    async def _http(self, key: str, headers: dict[str, str]) -> AsyncIterator[ClientSession]:
        sent = {"Authorization": f"Bearer {key}", **headers}
        async with (
            create_mcp_http_client(headers=sent) as http,
            streamable_http_client(f"{self.url}/mcp", http_client=http) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            yield session

    def close(self) -> str:
        """Stop everything; the web process's output."""
        self.portal_cm.__exit__(None, None, None)
        if self.web is not None:
            self.web.send_signal(signal.SIGTERM)
            self.web.wait(timeout=20)
        output = (self.tmp / "web.log").read_text() if self.web is not None else ""
        for key in self.redis.scan_iter(f"{self.prefix}*"):
            self.redis.delete(key)
        self.redis.close()
        return output


HANDSHAKE = {"protocolVersion": "2025-11-25", "capabilities": {},
             "clientInfo": {"name": "raw", "version": "0"}}  # fmt: skip
RPC_HEADERS = {"Content-Type": "application/json", "MCP-Protocol-Version": "2025-11-25",
               "Accept": "application/json, text/event-stream"}  # fmt: skip


def call_line(request_id: int, tool: str, arguments: Any) -> bytes:
    params = {"name": tool, "arguments": arguments}
    return orjson.dumps({"jsonrpc": "2.0", "id": request_id, "method": "tools/call",
                         "params": params})  # fmt: skip


class RawStdio:
    """`goalstore mcp` spoken to byte by byte, as a broken client would."""

    def __init__(self, stack: McpStack) -> None:
        params = stack.stdio_params("--actor", "agent")
        self.stderr = open(stack.tmp / "raw-stdio.log", "w+b")  # noqa: SIM115
        self.process = subprocess.Popen(
            [params.command, *params.args], env=params.env, cwd=params.cwd,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
        )  # fmt: skip
        self.send(orjson.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize",
                                "params": HANDSHAKE}))  # fmt: skip
        assert 0 == self.receive()["id"]
        self.send(b'{"jsonrpc":"2.0","method":"notifications/initialized"}')

    def send(self, line: bytes) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + b"\n")
        self.process.stdin.flush()

    def receive(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        answer: dict[str, Any] = orjson.loads(self.process.stdout.readline())
        return answer

    def hang_up(self) -> tuple[int, str]:
        """Close stdin (the client goes away); the exit code and what went to stderr."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        code = self.process.wait(timeout=30)
        self.stderr.seek(0)
        return code, self.stderr.read().decode()


@contextmanager
def mcp_stack(tmp: Path) -> Iterator[McpStack]:
    stack = McpStack(tmp)
    try:
        stack.serve()
        yield stack
    finally:
        output = stack.close()
        assert "Traceback" not in output, output
