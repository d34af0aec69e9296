"""Per-actor write limits: a token bucket per actor in the tests' Redis."""

from __future__ import annotations

import time

import httpx
from redis import Redis

from service.testing import Samples, goal_spec, metric, scrape_metrics, wait_for
from tests.integration.conftest import KEYS, ServerFactory

API_KEYS = "alice:read+write:alice-key-0123456789,bob:read+write:bob-key-0123456789012"
ALICE = {"Authorization": "Bearer alice-key-0123456789"}
BOB = {"Authorization": "Bearer bob-key-0123456789012"}


def test_an_actor_past_its_burst_gets_429_and_others_and_reads_do_not(
    start_server: ServerFactory, redis_client: Redis, redis_url: str
) -> None:
    """Burst 3 at 2 writes/s: alice's 4th write at once is a 429 problem with Retry-After,
    written nowhere; her reads and bob's writes go on; after Retry-After she writes again;
    the refusal is counted per actor."""
    server = start_server(redis_url=redis_url, redis_prefix=KEYS.prefix, api_keys=API_KEYS,
                          rate_limit_per_s=2, rate_limit_burst=3)  # fmt: skip
    with server.client() as client:
        burst = [client.post("/v1/goals", json=goal_spec(id=f"a-{n}"), headers=ALICE)
                 for n in range(4)]  # fmt: skip
        reads = [client.get("/v1/goals", headers=ALICE).status_code for _ in range(5)]
        bobs = client.post("/v1/goals", json=goal_spec(id="b-1"), headers=BOB)
        refused = burst[-1]
        time.sleep(int(refused.headers["retry-after"]))
        again = client.post("/v1/goals", json=goal_spec(id="a-again"), headers=ALICE)
        listed = [g["id"] for g in client.get("/v1/goals", headers=ALICE).json()["data"]]
        samples = wait_for("the refusal counted", lambda: _counted(client, "alice"), seconds=5)

    assert [201, 201, 201, 429] == [r.status_code for r in burst]
    assert "application/problem+json" == refused.headers["content-type"]
    assert ("urn:goalstore:problem:rate-limited", "alice") == (
        refused.json()["type"], refused.json()["actor"]
    )  # fmt: skip
    assert 1 <= int(refused.headers["retry-after"]) <= 2
    assert [200] * 5 == reads
    assert (201, 201) == (bobs.status_code, again.status_code)
    assert ["a-0", "a-1", "a-2", "b-1", "a-again"] == listed  # a-3 was never written
    assert 1 == metric(samples, "goalstore_rate_limited_total", actor="alice")
    assert redis_client.exists(KEYS.rate("alice"))


def _counted(client: httpx.Client, actor: str) -> Samples | None:
    samples = scrape_metrics(client)
    return samples if ("goalstore_rate_limited_total", (("actor", actor),)) in samples else None


def test_without_a_redis_that_answers_the_limit_is_off(start_server: ServerFactory) -> None:
    """A Redis nobody listens on: writes are not refused for want of a bucket."""
    server = start_server(redis_url="redis://127.0.0.1:9/0", rate_limit_per_s=1,
                          rate_limit_burst=1)  # fmt: skip
    with server.client() as client:
        codes = [client.post("/v1/goals", json=goal_spec(id=f"g-{n}")).status_code
                 for n in range(3)]  # fmt: skip

    assert [201, 201, 201] == codes


def test_no_limit_is_set_by_default(start_server: ServerFactory, redis_url: str,
                                    redis_client: Redis) -> None:  # fmt: skip
    """Unset, the limit takes no token and keeps no bucket."""
    server = start_server(redis_url=redis_url, redis_prefix=KEYS.prefix)
    with server.client() as client:
        codes = {client.post("/v1/goals", json=goal_spec(id=f"g-{n}")).status_code
                 for n in range(20)}  # fmt: skip

    assert {201} == codes
    assert [] == list(redis_client.scan_iter(match=f"{KEYS.prefix}rate:*"))


def test_mcp_write_tools_meet_the_same_limit(
    start_server: ServerFactory, redis_client: Redis, redis_url: str
) -> None:
    """Over /mcp, alice's 4th propose_goal at once (burst 3) is a tool error carrying the
    429 `rate-limited` problem and writes nothing; her read tool goes on."""
    server = start_server(redis_url=redis_url, redis_prefix=KEYS.prefix, api_keys=API_KEYS,
                          rate_limit_per_s=2, rate_limit_burst=3)  # fmt: skip
    headers = {**ALICE, "Accept": "application/json, text/event-stream",
               "MCP-Protocol-Version": "2025-11-25"}  # fmt: skip

    def call(client: httpx.Client, n: int, name: str, arguments: dict[str, object]) -> dict:
        message = {"jsonrpc": "2.0", "id": n, "method": "tools/call",
                   "params": {"name": name, "arguments": arguments}}  # fmt: skip
        answer = client.post("/mcp", json=message, headers=headers)
        assert 200 == answer.status_code, answer.text
        result: dict = answer.json()["result"]
        return result

    with server.client() as client:
        hello = {"protocolVersion": "2025-11-25", "capabilities": {},
                 "clientInfo": {"name": "test", "version": "1"}}  # fmt: skip
        init = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": hello}
        assert 200 == client.post("/mcp", json=init, headers=headers).status_code
        burst = [call(client, n, "propose_goal", goal_spec(id=f"m-{n}")) for n in range(1, 5)]
        read = call(client, 5, "list_goals", {})

    assert [False, False, False, True] == [r.get("isError", False) for r in burst]
    problem = burst[-1]["structuredContent"]
    assert ("urn:goalstore:problem:rate-limited", 429, "alice") == (
        problem["type"], problem["status"], problem["actor"]
    )  # fmt: skip
    assert (False, ["m-1", "m-2", "m-3"]) == (
        read.get("isError", False), [g["id"] for g in read["structuredContent"]["data"]]
    )  # fmt: skip
