"""The ranking loop with real processes: the Procfile's `web` and `worker` (an RQ worker),
and a redis-server of the test's own, which the tests kill and restart empty."""

from __future__ import annotations

import random
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from rq import Worker
from rq.suspension import resume, suspend

from service.store import outbox
from service.testing import goal_spec, post_adopted_goal, wait_for
from tests.e2e.conftest import Stack
from tests.ranking_oracle import DEFAULT_WEIGHTS, independent_score, is_blocked

pytestmark = pytest.mark.e2e


def redis_cli_ranking(port: int, key: str = "goalstore:ranked") -> list[tuple[str, float]]:
    """`redis-cli ZREVRANGE <key> 0 -1 WITHSCORES`, as an operator would type it."""
    out = subprocess.run(
        ["redis-cli", "-p", str(port), "ZREVRANGE", key, "0", "-1", "WITHSCORES"],
        capture_output=True, text=True, check=True, timeout=10,
    ).stdout.split()  # fmt: skip
    return [(out[i], float(out[i + 1])) for i in range(0, len(out), 2)]


def prioritized(client: httpx.Client) -> dict[str, Any]:
    response = client.get("/v1/goals/prioritized", params={"limit": 500})
    assert 200 == response.status_code, response.text
    body: dict[str, Any] = response.json()
    return body


def converged(stack: Stack, client: httpx.Client) -> dict[str, Any] | None:
    """The prioritized body once every event is applied and the read comes from Redis."""
    if stack.unapplied():  # first: a body read before this check could predate the last event
        return None
    body = prioritized(client)
    return body if body["source"] == "redis" else None


def check_against_oracle(
    stack: Stack, client: httpx.Client, specs: list[dict[str, Any]], weights: dict[str, float],
    active: set[str],
) -> None:  # fmt: skip
    """REST and redis-cli both hold exactly the unblocked goals, with the oracle's scores,
    best first."""
    body = wait_for("the cache to converge", lambda: converged(stack, client))
    expected = {
        s["id"]: independent_score(s, weights, active) for s in specs if not is_blocked(s, active)
    }
    in_redis = redis_cli_ranking(stack.redis.port)
    served = [(item["goal_id"], item["score"]) for item in body["data"]]
    for listing in (in_redis, served):
        assert set(expected) == {goal_id for goal_id, _ in listing}
        for goal_id, score in listing:
            assert expected[goal_id] == pytest.approx(score, abs=1e-9), goal_id
        scores = [score for _, score in listing]
        assert scores == sorted(scores, reverse=True)
    assert [g for g, _ in in_redis] == [g for g, _ in served] or _only_ties_differ(in_redis, served)


def _only_ties_differ(a: list[tuple[str, float]], b: list[tuple[str, float]]) -> bool:
    """ZREVRANGE orders equal scores by member; the API by the documented tie-breakers."""
    return [round(s, 12) for _, s in a] == [round(s, 12) for _, s in b]


def test_rest_changes_reach_redis_through_the_worker(stack: Stack) -> None:
    """300 random goals created and adopted over REST; then a belief is activated and the
    weights change. After each step, REST and `redis-cli ZREVRANGE goalstore:ranked` equal
    an independent computation of the seed formula."""
    stack.worker()
    client = stack.serve()
    rnd = random.Random(314)
    beliefs = ["b.a", "b.b", "b.c", "b.d"]
    active = {"b.a", "b.c"}
    for belief in beliefs:
        body = {"statement": belief, "active": belief in active}
        assert 201 == client.put(f"/v1/beliefs/{belief}", json=body).status_code
    specs = []
    for n in range(300):
        spec = goal_spec(
            id=f"g-{n:03d}",
            value=round(rnd.random(), 4), effort=round(rnd.random(), 4),
            risk=round(rnd.random(), 4),
            aligns_with=rnd.sample(beliefs, rnd.randint(0, 3)),
            contradicts=rnd.sample(["b.b", "b.d"], 1) if rnd.random() < 0.15 else [],
        )  # fmt: skip
        specs.append(spec)
        post_adopted_goal(client, **spec)
    check_against_oracle(stack, client, specs, DEFAULT_WEIGHTS, active)

    # Belief activation: goals contradicting b.b leave the ranking, aligned ones gain.
    assert (
        200 == client.put("/v1/beliefs/b.b", json={"statement": "b.b", "active": True}).status_code
    )
    active.add("b.b")
    check_against_oracle(stack, client, specs, DEFAULT_WEIGHTS, active)
    leaving = {s["id"] for s in specs if "b.b" in s.get("contradicts", [])}
    assert leaving, "the random goals never contradicted b.b: the step proves nothing"
    blocked = {m.decode() for m in stack.redis.client().zrange("goalstore:blocked", 0, -1)}
    assert leaving <= blocked

    # Weight change: everything is re-ranked.
    change = {"parameters": {"value_weight": 0.25, "effort_weight": 0.5}}
    assert 200 == client.put("/v1/decisions/goal_selected", json=change).status_code
    weights = {**DEFAULT_WEIGHTS, "value": 0.25, "effort": 0.5}
    check_against_oracle(stack, client, specs, weights, active)
    stored = {
        k.decode(): float(v) for k, v in stack.redis.client().hgetall("goalstore:weights").items()
    }
    assert (0.25, 0.5) == (stored["value_weight"], stored["effort_weight"])


def test_redis_lost_and_back_empty_converges_with_nothing_lost(stack: Stack) -> None:
    """Redis killed mid-run: writes still succeed and the ranking is served from SQLite; Redis
    restarted empty: the worker rebuilds it whole, with no manual step."""
    stack.worker()
    client = stack.serve()
    rnd = random.Random(5)
    specs = [goal_spec(id=f"before-{n}", value=round(rnd.random(), 4)) for n in range(5)]
    for spec in specs:
        post_adopted_goal(client, **spec)
    check_against_oracle(stack, client, specs, DEFAULT_WEIGHTS, set())

    stack.redis.kill()
    during = [goal_spec(id=f"during-{n}", value=round(rnd.random(), 4)) for n in range(5)]
    for spec in during:
        post_adopted_goal(client, **spec)  # asserts 201 and 200: the outbox holds the events
    assert 204 == client.delete("/v1/goals/before-0", headers={"If-Match": '"2"'}).status_code
    fallback = prioritized(client)
    assert ("sqlite", "redis_unavailable") == (fallback["source"], fallback["fallback_reason"])
    live = [s for s in specs + during if s["id"] != "before-0"]
    assert {s["id"] for s in live} == {item["goal_id"] for item in fallback["data"]}
    assert stack.unapplied() >= 10

    stack.redis.start()  # same port, empty
    check_against_oracle(stack, client, live, DEFAULT_WEIGHTS, set())
    assert all(process.poll() is None for process in stack.processes), "a process died"
    verify = stack.goalstore("ledger", "verify")
    assert 0 == verify.returncode, verify.stdout


def test_a_worker_killed_mid_batch_loses_no_event(stack: Stack) -> None:
    """Two workers; one is SIGKILLed while it holds a batch (written to Redis, not yet marked
    applied). The other redelivers and applies it: every event is applied, the ranking is
    whole, and no rebuild was needed."""
    slow_sqlite = {"GOALSTORE_BUSY_TIMEOUT_MS": "30000", "GOALSTORE_EVENTS_BATCH": "5"}
    victim = stack.worker(**slow_sqlite)
    survivor = stack.spawn("worker", **slow_sqlite)
    redis = stack.redis.client()
    wait_for("two RQ workers", lambda: len(Worker.all(connection=redis)) == 2)
    rebuilt_seq = redis.hget("goalstore:meta", "rebuilt_seq")
    client = stack.serve()

    suspend(redis)  # workers finish what they hold, then take nothing new
    first = [goal_spec(id=f"warm-{n}") for n in range(4)]
    for spec in first:
        post_adopted_goal(client, **spec)
    wait_for(
        "both workers to be suspended",
        lambda: [w.get_state() for w in Worker.all(connection=redis)] == ["suspended"] * 2,
    )
    rest = [goal_spec(id=f"g-{n:02d}", value=round(0.01 * n, 2)) for n in range(20)]
    for spec in rest:
        post_adopted_goal(client, **spec)
    wait_for("every event relayed", lambda: _all_relayed(stack.database))

    lock = sqlite3.connect(stack.database, isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")  # the workers can read and write Redis, not mark applied
    try:
        resume(redis)
        wait_for(
            "both workers inside a batch",
            lambda: [w.get_state() for w in Worker.all(connection=redis)] == ["busy"] * 2,
        )
        victim.kill()  # SIGKILL, mid-batch
        victim.wait(timeout=10)
        held = _relayed_not_applied(lock)
        assert held, "the killed worker held no batch"
    finally:
        lock.execute("ROLLBACK")
        lock.close()

    check_against_oracle(stack, client, first + rest, DEFAULT_WEIGHTS, set())
    assert survivor.poll() is None
    assert rebuilt_seq == redis.hget("goalstore:meta", "rebuilt_seq")  # redelivered, not rebuilt


def _all_relayed(database: Path) -> bool:
    with sqlite3.connect(database) as conn:
        return not outbox.has_pending(conn)


def _relayed_not_applied(conn: sqlite3.Connection) -> int:
    """Events on the queue, not yet applied (nor covered by a rebuild's watermark)."""
    row = conn.execute(
        "SELECT count(*) FROM outbox WHERE relayed_at IS NOT NULL AND applied_at IS NULL"
        " AND ledger_seq > (SELECT applied_through FROM outbox_watermark)"
    ).fetchone()
    return int(row[0])
