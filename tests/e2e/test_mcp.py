"""MCP end to end: the SDK's ClientSession drives a real `goalstore mcp` subprocess over
stdio and a real uvicorn (`goalstore serve`) over Streamable HTTP, on one SQLite file
and the tests' Redis: the whole flow of issue 19, scopes, the REST body equality, and
exactly-once selection across concurrent sessions."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest
from mcp.shared.exceptions import MCPError
from rq import Queue
from rq.serializers import JSONSerializer

from tests.e2e.conftest import goalstore
from tests.e2e.mcp_stack import (
    AGENT_KEY,
    READ_TOOLS,
    READER_KEY,
    RPC_HEADERS,
    McpStack,
    RawStdio,
    Session,
    call_line,
    mcp_stack,
    traceparent,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[McpStack]:
    with mcp_stack(tmp_path_factory.mktemp("mcp")) as s:
        yield s


@pytest.fixture(scope="module")
def sessions(stack: McpStack) -> Iterator[dict[str, Session]]:
    """The agent's sessions, one a transport, shared by the module's tests."""
    with stack.session("stdio") as stdio, stack.session("http") as http:
        yield {"stdio": stdio, "http": http}


def goal(tag: str, **overrides: Any) -> dict[str, Any]:
    spec = {"id": f"g-{tag}", "text": f"Goal {tag}", "category": "exploration",
            "value": 0.5, "effort": 0.3, "risk": 0.2}  # fmt: skip
    return {**spec, **overrides}


@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_the_whole_flow(stack: McpStack, sessions: dict[str, Session], transport: str) -> None:
    """Belief, three goals, two adoptions (one refused naming the belief), the ranking
    with explanations, select (its job on the RQ scheduler queue with the caller's trace
    id), the task reported, and the goal's history: every step a tool call."""
    tag = f"{transport}-{uuid.uuid4().hex[:6]}"
    belief = f"b-{tag}"
    s = sessions[transport]
    put = s.ok("put_belief", belief_id=belief, statement="Never delete user data")
    assert (belief, True, 1) == (put["id"], put["active"], put["version"])

    best = s.ok("propose_goal", **goal(f"{tag}-1", value=1.0, effort=0.0, risk=0.0))
    refused = s.ok("propose_goal", **goal(f"{tag}-2", contradicts=[belief]))
    other = s.ok("propose_goal", **goal(f"{tag}-3"))
    assert ["proposed"] * 3 == [g["state"] for g in (best, refused, other)]

    assert "adopted" == s.ok("adopt_goal", goal_id=best["id"], expected_version=1)["state"]
    problem = s.refused("adopt_goal", goal_id=refused["id"])
    assert "urn:goalstore:problem:goal-blocked" == problem["type"]
    assert (409, [belief]) == (problem["status"], problem["belief_ids"])
    assert "adopted" == s.ok("adopt_goal", goal_id=other["id"])["state"]
    assert "proposed" == s.ok("get_goal", goal_id=refused["id"])["state"]

    ranked = s.ok("ranked_goals", explain=True, limit=500)["data"]
    ours = [item for item in ranked if item["goal_id"] in (best["id"], other["id"])]
    assert [best["id"], other["id"]] == [item["goal_id"] for item in ours]
    for item in ours:
        assert item["explanation"]["goal_id"] == item["goal_id"]
        assert {"value", "effort", "risk", "urgency", "alignment", "penalty"} == set(
            item["explanation"]["terms"]
        )

    header, trace_id = traceparent()
    selection = s.ok("select_next_goal", traceparent=header)
    assert ("emitted", best["id"]) == (selection["mode"], selection["goal"]["id"])
    task = selection["task"]
    assert trace_id == task["trace_id"]
    queue = Queue("scheduler", connection=stack.redis, serializer=JSONSerializer)
    job = queue.fetch_job(task["task_id"])
    assert job is not None and job.id in queue.job_ids
    assert (trace_id, best["id"]) == (job.meta["trace_id"], job.meta["goal_id"])

    report = s.ok("report_task", goal_id=best["id"], task_id=task["task_id"],
                  state="succeeded", evidence={"summary": "done"})  # fmt: skip
    assert ("succeeded", {"summary": "done"}) == (report["state"], report["evidence"])

    history = s.ok("goal_history", goal_id=best["id"])["data"]
    kinds = [event["event_type"] for event in history]
    assert kinds[:2] == ["goal_created", "goal_adopted"]
    started = [event for event in history if event["trace_id"] == trace_id]
    assert started, kinds
    assert {"agent"} == {event["actor"] for event in history[:3]}


def test_a_read_key_lists_only_read_tools_and_is_refused_writing(stack: McpStack) -> None:
    """A read-only key's tools/list omits every writing tool, over both transports; calling
    one is a tool error (REST's 403), and nothing is written."""
    for transport in ("stdio", "http"):
        with stack.session(transport, key=READER_KEY) as s:
            tools = s.tools()
            assert READ_TOOLS == set(tools)
            assert all(tool.annotations.read_only_hint for tool in tools.values())
            problem = s.refused("propose_goal", **goal(f"reader-{transport}"))
            assert (403, "this API key lacks the write scope") == (
                problem["status"], problem["detail"]
            )  # fmt: skip
            assert 403 == s.refused("select_next_goal")["status"]
    with stack.rest(READER_KEY) as rest:
        for transport in ("stdio", "http"):
            assert 404 == rest.get(f"/v1/goals/g-reader-{transport}").status_code


def test_the_http_traceparent_reaches_the_ledger(stack: McpStack) -> None:
    """Over HTTP the caller's `traceparent` header is continued, as REST continues it: the
    ledger event of the change carries its trace id, and so does a tool error."""
    header, trace_id = traceparent()
    with stack.session("http", traceparent=header) as s:
        created = s.ok("propose_goal", **goal(f"trace-{uuid.uuid4().hex[:6]}"))
        events = s.ok("goal_history", goal_id=created["id"])["data"]
        assert [trace_id] == [event["trace_id"] for event in events]
        assert trace_id == s.refused("get_goal", goal_id="g-nowhere")["trace_id"]


def test_the_agent_key_lists_every_tool_with_its_hints(sessions: dict[str, Session]) -> None:
    """The write+execute key sees all the tools; the hints say which only read, which
    may be repeated, which destroy; each input schema is its model's (no hand-written
    schema: the fields REST takes)."""
    tools = sessions["http"].tools()
    assert READ_TOOLS < set(tools) and 19 == len(tools)
    assert tools["abandon_goal"].annotations.destructive_hint
    assert not tools["select_next_goal"].annotations.idempotent_hint
    assert tools["update_goal"].input_schema["required"] == ["goal_id", "expected_version",
                                                              "changes"]  # fmt: skip
    assert {"text", "category", "value", "effort", "risk"} <= set(
        tools["propose_goal"].input_schema["properties"]
    )


@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_tool_output_equals_the_rest_body(
    stack: McpStack, sessions: dict[str, Session], transport: str
) -> None:
    """get_goal, explain_score and goal_history answer, field for field, what REST's GET
    answers for the same goal: one model for both."""
    tag = f"same-{transport}-{uuid.uuid4().hex[:6]}"
    s = sessions[transport]
    with stack.rest() as rest:
        created = s.ok(
            "propose_goal",
            **goal(tag, metadata={"k": [1, 2]}, criteria=[{"id": "c1", "text": "tested"}]),
        )
        s.ok("adopt_goal", goal_id=created["id"])
        gid = created["id"]
        assert rest.get(f"/v1/goals/{gid}").json() == s.ok("get_goal", goal_id=gid)
        assert rest.get(f"/v1/goals/{gid}/score").json() == s.ok("explain_score", goal_id=gid)
        assert rest.get(f"/v1/goals/{gid}/history").json() == s.ok("goal_history", goal_id=gid)


@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_a_stale_update_names_the_current_version(
    sessions: dict[str, Session], transport: str
) -> None:
    """update_goal requires expected_version; a stale one is a tool error carrying REST's
    version-conflict problem, the current version named; the goal is unchanged."""
    s = sessions[transport]
    created = s.ok("propose_goal", **goal(f"upd-{transport}-{uuid.uuid4().hex[:6]}"))
    gid = created["id"]
    changed = s.ok("update_goal", goal_id=gid, expected_version=1, changes={"value": 0.9})
    assert (2, 0.9) == (changed["version"], changed["value"])
    problem = s.refused("update_goal", goal_id=gid, expected_version=1,
                        changes={"value": 0.1})  # fmt: skip
    assert ("urn:goalstore:problem:version-conflict", 2, 1) == (
        problem["type"], problem["current_version"], problem["expected_version"]
    )  # fmt: skip
    missing = s.refused("update_goal", goal_id=gid, changes={"value": 0.1})
    assert ["arguments", "expected_version"] == missing["errors"][0]["loc"]
    assert 0.9 == s.ok("get_goal", goal_id=gid)["value"]


def test_resources_read_a_goal_and_the_ranking(sessions: dict[str, Session]) -> None:
    """goal://{id} is the goal as get_goal answers it; ranking://top/{n} the ranking."""
    s = sessions["http"]
    created = s.ok("propose_goal", **goal(f"res-{uuid.uuid4().hex[:6]}"))
    read = s.portal.call(s.session.read_resource, f"goal://{created['id']}")
    assert created == json.loads(read.contents[0].text)
    top = s.portal.call(s.session.read_resource, "ranking://top/3")
    assert len(json.loads(top.contents[0].text)["data"]) <= 3


def test_concurrent_sessions_hand_each_goal_over_exactly_once(stack: McpStack) -> None:
    """8 sessions call select_next_goal at once over 40 adopted goals until nothing is
    left: every goal is handed over once, none twice."""
    tag = uuid.uuid4().hex[:6]
    with stack.rest() as rest:
        ids = []
        for n in range(40):
            created = rest.post("/v1/goals", json=goal(f"conc-{tag}-{n}"))
            assert 201 == created.status_code, created.text
            ids.append(created.json()["id"])
            assert 200 == rest.post(f"/v1/goals/{ids[-1]}/adopt").status_code

    async def drain(opened: list[Any], handed: list[str]) -> None:
        session = opened[0]
        while True:
            result = await session.call_tool("select_next_goal", {})
            assert not result.is_error, result.content
            if result.structured_content["mode"] != "emitted":
                return
            handed.append(result.structured_content["goal"]["id"])

    handed: list[str] = []
    sessions = [stack.portal.wrap_async_context_manager(stack._http(AGENT_KEY, {}))
                for _ in range(8)]  # fmt: skip
    opened = [cm.__enter__() for cm in sessions]
    try:

        async def all_at_once() -> None:
            async with anyio.create_task_group() as group:
                for session in opened:
                    group.start_soon(drain, [session], handed)

        stack.portal.call(all_at_once)
    finally:
        for cm in reversed(sessions):
            cm.__exit__(None, None, None)
    assert len(handed) == len(set(handed))
    assert set(ids) <= set(handed)


# --- bad input: refused cleanly, nothing half-written, no stack trace -------------------


@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_wrong_types_are_a_tool_error_naming_each_field(
    stack: McpStack, sessions: dict[str, Session], transport: str
) -> None:
    """Arguments of the wrong type are REST's invalid-request problem, each field named;
    no goal is written."""
    gid = f"g-types-{transport}"
    problem = sessions[transport].refused(
        "propose_goal", **goal(f"types-{transport}", value="high", category=7)
    )
    assert (422, "urn:goalstore:problem:invalid-request") == (problem["status"], problem["type"])
    named = {tuple(error["loc"]) for error in problem["errors"]}
    assert {("arguments", "value"), ("arguments", "category")} <= named
    with stack.rest() as rest:
        assert 404 == rest.get(f"/v1/goals/{gid}").status_code


@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_an_unknown_tool_is_refused_naming_it(sessions: dict[str, Session], transport: str) -> None:
    """An unknown tool is the protocol error MCP asks for (invalid params), naming it."""
    with pytest.raises(MCPError) as refused:
        sessions[transport].call("drop_all_goals")
    assert (-32602, "unknown tool 'drop_all_goals'") == (
        refused.value.code, refused.value.message
    )  # fmt: skip


def test_two_megabytes_of_arguments_are_refused(
    stack: McpStack, sessions: dict[str, Session]
) -> None:
    """2 MB of arguments: over HTTP the body limit's 413 problem, before MCP reads it;
    over stdio a tool error with the same problem; the session goes on; nothing written."""
    huge = goal("huge", text="x" * 2_000_000)
    body = call_line(7, "propose_goal", huge)
    headers = {**RPC_HEADERS, "Authorization": f"Bearer {AGENT_KEY}"}
    answer = httpx.post(f"{stack.url}/mcp", content=body, headers=headers, timeout=10)
    assert (413, "urn:goalstore:problem:body-too-large") == (
        answer.status_code, answer.json()["type"]
    )  # fmt: skip
    problem = sessions["stdio"].refused("propose_goal", **huge)
    assert (413, "urn:goalstore:problem:body-too-large") == (problem["status"], problem["type"])
    assert "Traceback" not in str(problem)
    with stack.rest() as rest:
        assert 404 == rest.get("/v1/goals/g-huge").status_code
    assert sessions["stdio"].ok("get_goal", goal_id=sessions["stdio"].ok(
        "propose_goal", **goal("after-huge"))["id"])["state"] == "proposed"  # fmt: skip


def test_a_line_that_is_not_utf8_is_refused_and_the_session_goes_on(stack: McpStack) -> None:
    """A stdio line with bytes that are not UTF-8 is answered with a JSON-RPC parse error
    for its id; nothing is written (not even with the bytes replaced); the next request
    is served and the process exits cleanly when the client hangs up."""
    raw = RawStdio(stack)
    bad = call_line(1, "propose_goal", goal("utf8", text="caf@")).replace(b"caf@", b"caf\xff\xfe")
    raw.send(bad)
    refusal = raw.receive()
    assert (1, -32700) == (refusal["id"], refusal["error"]["code"])
    raw.send(call_line(2, "get_goal", {"goal_id": "g-utf8"}))
    answer = raw.receive()
    assert (2, True, 404) == (
        answer["id"], answer["result"]["isError"], answer["result"]["structuredContent"]["status"]
    )  # fmt: skip
    code, stderr = raw.hang_up()
    assert (0, False) == (code, "Traceback" in stderr)


def test_a_client_going_away_mid_call_leaves_nothing_half_written(stack: McpStack) -> None:
    """A client that hangs up right after sending a call (stdio: stdin closed; HTTP: the
    connection dropped before the answer): each goal is there whole (created, with its
    ledger event) or not at all, the ledger verifies, the servers stay up."""
    raw = RawStdio(stack)
    raw.send(call_line(1, "propose_goal", goal("gone-stdio")))
    code, stderr = raw.hang_up()
    assert (0, False) == (code, "Traceback" in stderr)
    headers = {**RPC_HEADERS, "Authorization": f"Bearer {AGENT_KEY}"}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{stack.url}/mcp", content=call_line(1, "propose_goal", goal("gone-http")),
                   headers=headers, timeout=httpx.Timeout(5, read=0.0001))  # fmt: skip
    with stack.rest() as rest:
        for gid in ("g-gone-stdio", "g-gone-http"):
            found = rest.get(f"/v1/goals/{gid}")
            if found.status_code == 200:
                events = rest.get(f"/v1/goals/{gid}/history").json()["data"]
                assert ["goal_created"] == [event["event_type"] for event in events]
            else:
                assert 404 == found.status_code
        assert 200 == rest.get("/readyz").status_code
    verify = goalstore(stack.env(), stack.tmp, "ledger", "verify")
    assert 0 == verify.returncode, verify.stdout + verify.stderr
