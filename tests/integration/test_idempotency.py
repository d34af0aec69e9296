"""Idempotency-Key on POST, through a live server and a real Redis."""

from __future__ import annotations

import hashlib

import httpx
import orjson
from redis import Redis

from service.testing import goal_spec
from tests.conftest import TEST_REDIS_URL
from tests.integration.conftest import ServerFactory

REDIS = {"redis_url": TEST_REDIS_URL, "redis_prefix": "goalstore-test:"}


def goals_created(client: httpx.Client) -> int:
    """How many goals the server lists."""
    count: int = client.get("/v1/goals").json()["count"]
    return count


def test_a_repeated_post_replays_the_first_response(
    start_server: ServerFactory, redis_client: Redis
) -> None:
    """A POST repeated with the same Idempotency-Key gets the first response again (status,
    body, ETag, Location, marked replayed), creates one goal, and the key lives a day."""
    server = start_server(**REDIS)
    body = goal_spec(text="write the weekly report")
    with server.client() as client:
        first = client.post("/v1/goals", json=body, headers={"Idempotency-Key": "k-1"})
        again = client.post("/v1/goals", json=body, headers={"Idempotency-Key": "k-1"})

        assert 201 == first.status_code
        assert (201, first.json(), first.headers["etag"], first.headers["location"]) == (
            again.status_code, again.json(), again.headers["etag"], again.headers["location"]
        )  # fmt: skip
        assert "true" == again.headers["idempotent-replayed"]
        assert 1 == goals_created(client)
        assert 1 == len(list(redis_client.scan_iter("goalstore-test:idem:anonymous:k-1")))
        assert 0 < redis_client.ttl("goalstore-test:idem:anonymous:k-1") <= 24 * 3600


def test_a_key_reused_for_another_body_is_422_and_one_in_flight_is_409(
    start_server: ServerFactory, redis_client: Redis
) -> None:
    """A key sent again with another body is 422 idempotency-key-reused; a key whose first
    request is still running is 409; neither creates a goal."""
    server = start_server(**REDIS)
    with server.client() as client:
        client.post("/v1/goals", json=goal_spec(text="one"), headers={"Idempotency-Key": "k-2"})
        other = client.post("/v1/goals", json=goal_spec(text="two"),
                            headers={"Idempotency-Key": "k-2"})  # fmt: skip
        assert (422, "urn:goalstore:problem:idempotency-key-reused") == (
            other.status_code, other.json()["type"]
        )  # fmt: skip

        # The first request of key k-3 is still running (its record says so).
        raw = orjson.dumps(goal_spec(text="three"))
        fingerprint = hashlib.sha256(b"POST /v1/goals\n" + raw).hexdigest()
        running = {"state": "in_flight", "fingerprint": fingerprint}
        redis_client.set("goalstore-test:idem:anonymous:k-3", orjson.dumps(running), ex=60)
        busy = client.post("/v1/goals", content=raw, headers={
            "Idempotency-Key": "k-3", "content-type": "application/json"})  # fmt: skip
        assert 409 == busy.status_code
        assert 1 == goals_created(client)


def test_keys_are_per_actor_and_errors_are_replayed_too(
    start_server: ServerFactory, redis_client: Redis
) -> None:
    """The same key from two actors is two requests; an error response is replayed too."""
    keys = "alice:read+write:alice-key-0123456789,bob:read+write:bob-key-0123456789ab"
    server = start_server(**REDIS, api_keys=keys)
    alice = {"Authorization": "Bearer alice-key-0123456789", "Idempotency-Key": "same"}
    bob = {"Authorization": "Bearer bob-key-0123456789ab", "Idempotency-Key": "same"}
    with server.client() as client:
        a = client.post("/v1/goals", json=goal_spec(text="alice's"), headers=alice)
        b = client.post("/v1/goals", json=goal_spec(text="bob's"), headers=bob)
        assert (201, 201) == (a.status_code, b.status_code)
        assert ("alice", "bob") == (a.json()["owner"], b.json()["owner"])
        missing = client.post("/v1/goals/g-none/adopt", headers={**alice, "Idempotency-Key": "x"})
        replay = client.post("/v1/goals/g-none/adopt", headers={**alice, "Idempotency-Key": "x"})
        assert (404, 404, "true") == (missing.status_code, replay.status_code,
                                      replay.headers["idempotent-replayed"])  # fmt: skip


def test_without_redis_a_key_is_refused_not_ignored(start_server: ServerFactory) -> None:
    """Without Redis a request with an Idempotency-Key is 503 and creates nothing (it is not
    run unprotected); one without a key is served."""
    server = start_server()
    with server.client() as client:
        refused = client.post("/v1/goals", json=goal_spec(), headers={"Idempotency-Key": "k"})
        assert 503 == refused.status_code
        assert 0 == goals_created(client)
        assert 201 == client.post("/v1/goals", json=goal_spec()).status_code  # no key: fine


def test_refusals_before_any_route_carry_the_callers_trace(
    start_server: ServerFactory, redis_client: Redis
) -> None:
    """A 413 of the body limit and a 422 of a reused Idempotency-Key are problems in the
    caller's trace, like a route's errors; a replay answers in the replaying request's."""
    server = start_server(**REDIS, max_body_bytes=1024)
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    sent = {"traceparent": f"00-{trace}-00f067aa0ba902b7-01"}
    with server.client() as client:
        too_big = client.post("/v1/goals", content=b"x" * 2048, headers=sent)
        client.post("/v1/goals", json=goal_spec(text="a"), headers={"Idempotency-Key": "k-t"})
        reused = client.post("/v1/goals", json=goal_spec(text="b"),
                             headers={**sent, "Idempotency-Key": "k-t"})  # fmt: skip
        replay = client.post("/v1/goals", json=goal_spec(text="a"),
                             headers={**sent, "Idempotency-Key": "k-t"})  # fmt: skip

    assert [(413, trace), (422, trace)] == [
        (r.status_code, r.json()["trace_id"]) for r in (too_big, reused)
    ]
    assert [trace] * 3 == [
        r.headers["traceparent"].split("-")[1] for r in (too_big, reused, replay)
    ]
    assert "true" == replay.headers["idempotent-replayed"]
