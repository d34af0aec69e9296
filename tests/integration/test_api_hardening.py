"""Edges found in review: JSON-exact changes, id shapes, preconditions, bounds, a busy database."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.store.db import StoreBusy, open_database
from service.store.migrate import migrate
from service.testing import goal_spec, holding_write_lock, post_goal, wait_for
from tests.integration.conftest import ServerFactory


def test_a_patch_from_1_to_true_is_a_change(client: httpx.Client) -> None:
    """JSON 1 and true differ: the change is stored, versioned and readable afterwards."""
    goal = post_goal(client, metadata={"flag": 1})

    patched = client.patch(
        f"/v1/goals/{goal['id']}", json={"metadata": {"flag": True}}, headers={"If-Match": '"1"'}
    )

    assert (200, 2) == (patched.status_code, patched.json()["version"])
    assert {"flag": True} == client.get(f"/v1/goals/{goal['id']}").json()["metadata"]
    events = client.get(f"/v1/goals/{goal['id']}/history").json()["data"]
    assert {"flag": True} == events[-1]["payload"]["set"]["metadata"]


@pytest.mark.parametrize("goal_id", ["x/adopt", "prioritized", "select"])
def test_ids_that_would_collide_with_routes_are_refused(goal_id: str, client: httpx.Client) -> None:
    """A goal id is one path segment and never a route word."""
    response = client.post("/v1/goals", json=goal_spec(id=goal_id))

    assert 422 == response.status_code
    assert 0 == client.get("/v1/goals").json()["count"]


def test_if_match_star_allows_a_deliberate_blind_patch(client: httpx.Client) -> None:
    """If-Match: * applies the change at whatever version the goal is."""
    goal = post_goal(client)
    client.patch(f"/v1/goals/{goal['id']}", json={"value": 0.1, "expected_version": 1})

    response = client.patch(
        f"/v1/goals/{goal['id']}", json={"value": 0.2}, headers={"If-Match": "*"}
    )

    assert (200, 3, 0.2) == (
        response.status_code, response.json()["version"], response.json()["value"]
    )  # fmt: skip


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ({"If-Match": 'W/"1"'}, {"value": 0.2}),
        ({"If-Match": '"1"'}, {"value": 0.2, "expected_version": 2}),
    ],
    ids=["weak etag", "header and body disagree"],
)
def test_ambiguous_preconditions_are_400(
    headers: dict[str, str], body: dict[str, Any], client: httpx.Client
) -> None:
    """A weak ETag, or an If-Match that contradicts expected_version, is refused unapplied."""
    goal = post_goal(client)

    response = client.patch(f"/v1/goals/{goal['id']}", json=body, headers=headers)

    assert 400 == response.status_code
    assert 1 == client.get(f"/v1/goals/{goal['id']}").json()["version"]


@pytest.mark.parametrize(
    "path", ["/v1/goals/g-1/history?after=9223372036854775808",
             "/v1/decisions/goal_selected/outcomes?after=9223372036854775808"],
)  # fmt: skip
def test_huge_integers_in_queries_are_422(path: str, client: httpx.Client) -> None:
    """A number past SQLite's integers is a validation error, not a 500."""
    post_goal(client, id="g-1")

    assert 422 == client.get(path).status_code


def test_a_locked_database_is_a_503_with_retry_after(start_server: ServerFactory) -> None:
    """When another writer holds the write lock past the busy timeout (SQLite's lock, the
    PostgreSQL advisory lock), the API says retry."""
    server = start_server(busy_timeout_ms=100)
    with server.client() as client:
        assert 200 == client.get("/readyz").status_code  # migrated
        with holding_write_lock(server.services.db):
            response = client.post("/v1/goals", json=goal_spec())
        after = client.post("/v1/goals", json=goal_spec())

    assert (503, "1") == (response.status_code, response.headers.get("retry-after"))
    assert "application/problem+json" == response.headers["content-type"]
    assert 201 == after.status_code


def test_a_read_that_meets_a_lock_past_the_busy_timeout_is_store_busy(tmp_path: Path) -> None:
    """Any statement, a read too, that meets a lock held past the busy timeout (an
    exclusive-locking session) raises StoreBusy, which every edge serves as its 503 or
    exit code 6, instead of a bare sqlite3 error (a 500)."""
    db = open_database(tmp_path / "locked.db", busy_timeout_ms=100)
    migrate(db)
    db.close()  # no connection of ours holds a read mark while the blocker takes its lock
    blocker = sqlite3.connect(db.location, isolation_level=None)
    blocker.execute("PRAGMA locking_mode = EXCLUSIVE")
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreBusy):
            db.connection().execute("SELECT count(*) FROM goals").fetchone()
        with pytest.raises(StoreBusy), db.read() as conn:
            conn.execute("SELECT count(*) FROM goals").fetchone()
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert 0 == db.connection().execute("SELECT count(*) FROM goals").fetchone()[0]
    db.close()


def test_an_unexpected_error_is_a_traced_500_problem(
    client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug answers 500 problem+json carrying the trace id, and the traceparent header."""
    from service import commands

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(commands, "list_goals", broken)
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"

    response = client.get(
        "/v1/goals", headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"}
    )

    assert 500 == response.status_code
    assert "application/problem+json" == response.headers["content-type"]
    assert trace_id == response.json()["trace_id"]
    assert response.headers["traceparent"].startswith(f"00-{trace_id}-")
    assert "boom" not in response.text


def test_each_request_is_logged_with_its_trace(
    client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    """One access line per request with method, path, status and duration.

    The line is written once the response has been sent (its duration includes the
    send), by the server's thread: the client may see the response first.
    """
    with caplog.at_level("INFO", logger="goalstore.access"):
        client.get("/livez")
        wait_for(
            "the access line",
            lambda: [r for r in caplog.records if r.name == "goalstore.access"],
            5,
        )
        time.sleep(0.1)  # room for a wrong second line to show up

    lines = [r for r in caplog.records if r.name == "goalstore.access"]
    assert 1 == len(lines)
    record: Any = lines[0]
    assert ("GET", "/livez", 200) == (record.method, record.path, record.status)
    assert record.duration_ms >= 0


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [("OPTIONS", "/v1/goals", "GET, POST"), ("OPTIONS", "/v1/goals/select", "POST"),
     ("TRACE", "/v1/goals/g-1", "DELETE, GET, PATCH"), ("PUT", "/v1/goals/g-1/adopt", "POST"),
     ("POST", "/livez", "GET")],
)  # fmt: skip
def test_a_405_names_every_method_the_path_takes(
    client: httpx.Client, method: str, path: str, allow: str
) -> None:
    """Allow lists every method of the path, not only those of the first route the router
    tried (OPTIONS /v1/goals/select used to say GET: the goal route's), as a problem."""
    response = client.request(method, path)

    assert (405, allow) == (response.status_code, response.headers.get("allow"))
    assert "application/problem+json" == response.headers["content-type"]
