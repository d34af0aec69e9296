"""/metrics and /readyz over HTTP, against a real SQLite file and a real Redis."""

from __future__ import annotations

from redis import Redis

from service.testing import metric, post_goal, scrape_metrics
from tests.integration.conftest import ServerFactory


def test_a_scripted_run_shows_every_seed_metric_with_its_value(
    start_server: ServerFactory, redis_client: Redis, redis_url: str
) -> None:
    """Create 5 goals, adopt 3, one blocked by a belief, select 1: /metrics agrees."""
    server = start_server(
        redis_url=redis_url, redis_prefix="goalstore-test:", scheduler_queue="scheduler-test",
        GOAL_SYSTEM=True, GOAL_SHADOW=False,
    )  # fmt: skip
    with server.client() as client:
        belief = {"statement": "Never delete user data", "active": True}
        assert 201 == client.put("/v1/beliefs/safety.data", json=belief).status_code
        post_goal(client, id="m-1", category="maintenance", value=0.9)
        post_goal(client, id="m-2", category="maintenance", value=0.5)
        post_goal(client, id="e-1", category="exploration")
        post_goal(client, id="e-2", category="exploration")
        post_goal(client, id="x-1", category="exploration", contradicts=["safety.data"])
        for goal_id in ("m-1", "m-2", "e-1"):
            assert 200 == client.post(f"/v1/goals/{goal_id}/adopt").status_code
        assert 409 == client.post("/v1/goals/x-1/adopt").status_code
        selected = client.post("/v1/goals/select")
        assert ("emitted", "m-1") == (selected.json()["mode"], selected.json()["goal"]["id"])

        samples = scrape_metrics(client)

    assert 3 == metric(samples, "goals_adopted_total")
    assert 1 == metric(samples, "goal_selected_total")
    assert 0 == metric(samples, "goal_selected_shadow_total")
    assert 1 == metric(samples, "goal_blocked_by_belief_total", belief_id="safety.data")
    assert 3 == metric(samples, "goal_adopt_latency_seconds_count")
    assert 1 == metric(samples, "goal_select_latency_seconds_count")
    assert 1 <= metric(samples, "goal_prioritize_latency_seconds_count")  # the SQLite ranking
    assert 1 == metric(samples, "goals_total", category="maintenance", state="executing")
    assert 1 == metric(samples, "goals_total", category="maintenance", state="adopted")
    assert 1 == metric(samples, "goals_total", category="exploration", state="adopted")
    assert 2 == metric(samples, "goals_total", category="exploration", state="proposed")
    assert 0 == metric(samples, "goals_total", category="introspection", state="adopted")
    by_state = {"proposed": 2, "adopted": 2, "executing": 1, "satisfied": 0, "abandoned": 0}
    assert by_state == {s: metric(samples, "goals_by_state", state=s) for s in by_state}
    assert 1 == metric(samples, "goalstore_tasks", state="queued")
    assert 1 == metric(samples, "goalstore_queue_depth", queue="scheduler-test")
    # No events worker runs here: the events wait in the outbox (exact count: next test).
    assert 0 < metric(samples, "goalstore_outbox_pending")
    assert 0 < metric(samples, "goalstore_outbox_lag_seconds")
    assert (1, 0) == (
        metric(samples, "goalstore_redis_up"),
        metric(samples, "goalstore_cache_warm"),
    )
    assert not any(name == "goalstore_cache_staleness_seconds" for name, _ in samples)


def test_outbox_pending_is_the_number_of_unapplied_events(
    start_server: ServerFactory, redis_client: Redis, redis_url: str
) -> None:
    """goalstore_outbox_pending counts the events no worker has applied yet."""
    server = start_server(redis_url=redis_url, redis_prefix="goalstore-test:")
    with server.client() as client:
        post_goal(client, id="g-1")
        post_goal(client, id="g-2")
        assert 200 == client.post("/v1/goals/g-1/adopt").status_code
        samples = scrape_metrics(client)

    assert 3 == metric(samples, "goalstore_outbox_pending")  # two creates and an adopt


def test_without_redis_readyz_is_503_and_metrics_still_serve_the_store(
    start_server: ServerFactory, engine: str
) -> None:
    """Redis does not answer: not ready (503 naming Redis); /metrics keeps serving SQLite's
    exact figures with goalstore_redis_up 0; writes still succeed."""
    server = start_server(redis_url="redis://127.0.0.1:9/0")  # nothing listens on port 9
    with server.client() as client:
        post_goal(client, id="g-1")
        ready = client.get("/readyz")
        samples = scrape_metrics(client)

    assert 503 == ready.status_code
    assert {engine: "ok", "redis": "unavailable"} == ready.json()["checks"]
    assert 0 == metric(samples, "goalstore_redis_up")
    assert 1 == metric(samples, "goals_by_state", state="proposed")
    assert not any(name == "goals_adopted_total" for name, _ in samples)


def test_readyz_checks_redis_when_it_answers(
    start_server: ServerFactory, redis_client: Redis, redis_url: str, engine: str
) -> None:
    """/readyz is 200 with the store and redis both ok when Redis answers."""
    server = start_server(redis_url=redis_url, redis_prefix="goalstore-test:")
    with server.client() as client:
        ready = client.get("/readyz")

    assert (200, {engine: "ok", "redis": "ok"}) == (ready.status_code, ready.json()["checks"])


def test_a_shadow_selection_is_counted_as_shadow_only(
    start_server: ServerFactory, redis_client: Redis, redis_url: str
) -> None:
    """The defaults shadow: the would-be pick is counted, nothing is handed over."""
    server = start_server(redis_url=redis_url, redis_prefix="goalstore-test:")
    with server.client() as client:
        post_goal(client, id="g-1")
        assert 200 == client.post("/v1/goals/g-1/adopt").status_code
        assert "shadow" == client.post("/v1/goals/select").json()["mode"]
        samples = scrape_metrics(client)

    assert (1, 0) == (metric(samples, "goal_selected_shadow_total"),
                      metric(samples, "goal_selected_total"))  # fmt: skip
    assert 0 == metric(samples, "goal_select_latency_seconds_count")
