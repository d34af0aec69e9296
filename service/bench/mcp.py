"""The ranked read as an agent makes it: the `ranked_goals` tool over Streamable HTTP
(POST /mcp, JSON-RPC), beside REST's GET /v1/goals/prioritized, both against one web
process of its own (real uvicorn), over the same goals, in the same run.

One session, as an MCP client holds it: `initialize`, `notifications/initialized`,
then `tools/call` after `tools/call` over one keep-alive connection. Spoken with the
standard library's http.client, as ranked_read.py speaks REST: the SDK's client costs
about as much per call as the server does, which would time the client rather than the
service (docs/benchmarks.md)."""

from __future__ import annotations

import http.client
from typing import Any

import orjson

from service.bench.plan import TARGETS
from service.bench.processes import free_port, goalstore_process, http_status, wait_for
from service.bench.stage import Stage
from service.bench.stats import percentiles, progress, ratio, timed

WARM_UP = 20  # calls before the timed ones
PROTOCOL = "2025-11-25"  # the handshake revision the SDK's ClientSession negotiates
HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
           "MCP-Protocol-Version": PROTOCOL}  # fmt: skip


def measure(stage: Stage, size: int, requests: int) -> dict[str, Any]:
    port = free_port()
    with goalstore_process(["serve", "--port", str(port)], stage.env, stage.work / "web-mcp.log"):
        wait_for("the web process", lambda: http_status(port, "/readyz") == 200)
        progress(f"{stage.backend}: ranked_goals over MCP x{requests} at {size} goals, "
                 "and GET /v1/goals/prioritized")  # fmt: skip
        return {"goals": size, **_tool_and_rest(port, requests)}


class McpSession:
    """A Streamable HTTP session over one http.client connection."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.headers = dict(HEADERS)
        self.next_id = 0
        hello = {"protocolVersion": PROTOCOL, "capabilities": {},
                 "clientInfo": {"name": "goalstore-bench", "version": "1"}}  # fmt: skip
        self.rpc("initialize", hello)
        self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def post(self, message: dict[str, Any]) -> tuple[int, bytes]:
        self.conn.request("POST", "/mcp", orjson.dumps(message), self.headers)
        response = self.conn.getresponse()
        session = response.getheader("mcp-session-id")
        if session:  # a stateful server names the session: every later request carries it
            self.headers["Mcp-Session-Id"] = session
        return response.status, response.read()

    def rpc(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self.next_id += 1
        status, body = self.post({"jsonrpc": "2.0", "id": self.next_id, "method": method,
                                  "params": params})  # fmt: skip
        answer: dict[str, Any] = orjson.loads(body) if status == 200 else {}
        if "result" not in answer:
            raise RuntimeError(f"bench: {method} answered {status}: {body[:300]!r}")
        result: dict[str, Any] = answer["result"]
        return result

    def close(self) -> None:
        self.conn.close()


def _tool_and_rest(port: int, requests: int) -> dict[str, Any]:
    session = McpSession(port)
    rest = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def ranked_goals() -> dict[str, Any]:
        result = session.rpc("tools/call", {"name": "ranked_goals", "arguments": {}})
        if result.get("isError"):
            raise RuntimeError(f"bench: ranked_goals failed: {str(result)[:300]}")
        content: dict[str, Any] = result["structuredContent"]
        return content

    def prioritized() -> None:
        rest.request("GET", "/v1/goals/prioritized")
        response = rest.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"bench: prioritized answered {response.status}")

    try:
        page = ranked_goals()
        if page.get("source") != "redis":
            raise RuntimeError(f"bench: ranked_goals read from {page.get('source')}, not redis")
        for _ in range(WARM_UP):
            ranked_goals()
            prioritized()
        tool = percentiles(timed(ranked_goals, requests))
        # uvicorn closes a connection idle past its keep-alive (5 s), which the REST one
        # may have been while the tool was timed: open a fresh one, untimed
        rest.close()
        prioritized()
        plain = percentiles(timed(prioritized, requests))
    finally:
        session.close()
        rest.close()
    target = TARGETS["mcp_ranked_goals_p95_ms"]
    return {
        "mcp_ranked_goals": tool,
        "rest_prioritized": plain,
        "ratio_mcp_to_rest_p50": ratio(tool["p50_ms"], plain["p50_ms"]),
        "items": len(page["data"]),
        "target_p95_ms": target,
        "met": tool["p95_ms"] <= target,
    }
