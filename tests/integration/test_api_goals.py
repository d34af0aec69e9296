"""The goals API over real HTTP, on a real SQLite file."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema
import pytest

from service.testing import goal_spec, post_goal, row_counts
from tests.integration.conftest import LiveServer, ServerFactory
from tests.seed import SEED_EXAMPLE_JSON

SEED_EXAMPLE = SEED_EXAMPLE_JSON

JSON = {"content-type": "application/json"}
PROBLEM = "application/problem+json"


NOTHING = {"goals": 0, "ledger": 0, "outbox": 0}


def stored(server: LiveServer) -> dict[str, int]:
    """The goals, ledger and outbox rows the server's SQLite file holds now."""
    return row_counts(server.services.db.connection())


def test_seed_example_is_accepted_as_written(client: httpx.Client) -> None:
    """The seed's example goal creates a proposed goal; the server sets the timestamps."""
    response = client.post("/v1/goals", content=SEED_EXAMPLE, headers=JSON)

    assert 201 == response.status_code, response.text
    body = response.json()
    assert ("goal_001", "proposed", 1) == (body["id"], body["state"], body["version"])
    assert "anonymous" == body["owner"]
    assert not body["created_at"].startswith("2025-11-08")
    assert body["created_at"] == body["updated_at"]
    assert '"1"' == response.headers["etag"]
    assert "/v1/goals/goal_001" == response.headers["location"]
    assert ["core.ontological.consciousness"] == body["aligns_with"]
    assert {"coherence_delta": 0.05} == body["success_metrics"]


def test_creating_the_same_id_again_is_a_conflict(client: httpx.Client, server: LiveServer) -> None:
    """A second create with the same id is a 409 problem and writes nothing."""
    client.post("/v1/goals", content=SEED_EXAMPLE, headers=JSON)
    before = stored(server)

    response = client.post("/v1/goals", content=SEED_EXAMPLE, headers=JSON)

    assert 409 == response.status_code
    assert PROBLEM == response.headers["content-type"]
    assert "urn:goalstore:problem:goal-exists" == response.json()["type"]
    assert before == stored(server)


def test_minted_ids_have_the_documented_shape(client: httpx.Client) -> None:
    """Without an id, the server mints g- and 16 hex characters."""
    goal_id = post_goal(client)["id"]

    assert goal_id.startswith("g-")
    assert 18 == len(goal_id)
    int(goal_id[2:], 16)


BAD_BODIES: dict[str, bytes] = {
    "value above 1": json.dumps(goal_spec(value=1.5)).encode(),
    "negative effort": json.dumps(goal_spec(effort=-0.1)).encode(),
    "NaN": b'{"text": "t", "category": "maintenance", "value": NaN, "effort": 0.1, "risk": 0.1}',
    "Infinity": b'{"text": "t", "category": "maintenance", "value": 0.1, "effort": Infinity,'
    b' "risk": 0.1}',
    "huge exponent": b'{"text": "t", "category": "maintenance", "value": 1e999, "effort": 0.1,'
    b' "risk": 0.1}',
    "string for a number": json.dumps(goal_spec(risk="low")).encode(),
    "numeric string for a number": json.dumps(goal_spec(risk="0.5")).encode(),
    "boolean for a number": json.dumps(goal_spec(value=True)).encode(),
    "float for minutes": json.dumps(goal_spec(horizon_max_min=60.5)).encode(),
    "number for text": json.dumps(goal_spec(text=42)).encode(),
    "list for metadata": json.dumps(goal_spec(metadata=[1, 2])).encode(),
    "unknown category": json.dumps(goal_spec(category="fun")).encode(),
    "unknown goal type": json.dumps(goal_spec(goal_type="astrology")).encode(),
    "horizon max below min": json.dumps(goal_spec(horizon_min_min=60, horizon_max_min=30)).encode(),
    "negative horizon": json.dumps(goal_spec(horizon_min_min=-1)).encode(),
    "state other than proposed": json.dumps(goal_spec(state="adopted")).encode(),
    "client-set version": json.dumps(goal_spec(version=7)).encode(),
    "client-set owner": json.dumps(goal_spec(owner="mallory")).encode(),
    "empty text": json.dumps(goal_spec(text="   ")).encode(),
    "text too long": json.dumps(goal_spec(text="x" * 4001)).encode(),
    "id with spaces": json.dumps(goal_spec(id="my goal")).encode(),
    "id too long": json.dumps(goal_spec(id="g" * 129)).encode(),
    "too many beliefs": json.dumps(goal_spec(aligns_with=[f"b{i}" for i in range(65)])).encode(),
    "metadata too deep": json.dumps(
        goal_spec(metadata={"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": 1}}}}}}}}})
    ).encode(),
    "self dependency": json.dumps(goal_spec(id="g-self", depends_on=["g-self"])).encode(),
    "unknown dependency": json.dumps(goal_spec(depends_on=["g-nowhere"])).encode(),
    "metric_delta without targets": json.dumps(goal_spec(goal_type="metric_delta")).encode(),
    "malformed JSON": b'{"text": "unterminated',
    "not UTF-8": b'{"text": "\xff\xfe", "category": "maintenance"}',
    "JSON array": b"[1, 2, 3]",
    "empty body": b"",
}


@pytest.mark.parametrize("case", sorted(BAD_BODIES))
def test_bad_create_bodies_are_refused_and_write_nothing(
    case: str, client: httpx.Client, server: LiveServer
) -> None:
    """Each kind of bad input is a 4xx problem+json, and nothing is stored."""
    before = stored(server)

    response = client.post("/v1/goals", content=BAD_BODIES[case], headers=JSON)

    assert 400 <= response.status_code < 500, (case, response.status_code, response.text)
    assert PROBLEM == response.headers["content-type"]
    problem = response.json()
    assert response.status_code == problem["status"]
    assert problem["title"] and problem["type"]
    assert before == stored(server)


def test_malformed_json_is_400_and_invalid_fields_are_422(client: httpx.Client) -> None:
    """Unparseable bodies and well-formed but invalid ones get distinct statuses and paths."""
    malformed = client.post("/v1/goals", content=BAD_BODIES["NaN"], headers=JSON)
    invalid = client.post("/v1/goals", json=goal_spec(value=2, category="fun"))

    assert 400 == malformed.status_code
    assert 422 == invalid.status_code
    locations = sorted(tuple(err["loc"]) for err in invalid.json()["errors"])
    assert [("body", "category"), ("body", "value")] == locations


def test_a_declared_two_megabyte_body_is_refused_unread(
    client: httpx.Client, server: LiveServer
) -> None:
    """A Content-Length over the limit gets 413 before the body is read."""
    before = stored(server)
    body = b'{"text": "' + b"x" * (2 * 1024 * 1024) + b'"}'

    response = client.post("/v1/goals", content=body, headers=JSON)

    assert 413 == response.status_code
    assert PROBLEM == response.headers["content-type"]
    assert before == stored(server)


def test_a_chunked_two_megabyte_body_is_cut_off_at_the_limit(
    client: httpx.Client, server: LiveServer
) -> None:
    """A body with no declared length is refused (how much is read: test_body_limit.py)."""

    def chunks() -> Iterator[bytes]:
        yield b'{"text": "'
        for _ in range(32):
            yield b"x" * (64 * 1024)
        yield b'"}'

    response = client.post("/v1/goals", content=chunks(), headers=JSON)

    assert 413 == response.status_code
    assert NOTHING == stored(server)


UNKNOWN_ID_CALLS = [
    ("GET", "/v1/goals/g-missing", None),
    ("PATCH", "/v1/goals/g-missing", {"value": 0.5, "expected_version": 1}),
    ("POST", "/v1/goals/g-missing/adopt", None),
    ("POST", "/v1/goals/g-missing/abandon", None),
    ("DELETE", "/v1/goals/g-missing", None),
    ("GET", "/v1/goals/g-missing/history", None),
]


@pytest.mark.parametrize(("method", "path", "body"), UNKNOWN_ID_CALLS)
def test_unknown_ids_are_404_problems(
    method: str, path: str, body: dict[str, Any] | None, client: httpx.Client, server: LiveServer
) -> None:
    """Every goal route answers an unknown id with a 404 problem and writes nothing."""
    response = client.request(method, path, json=body)

    assert 404 == response.status_code
    assert PROBLEM == response.headers["content-type"]
    assert "g-missing" == response.json()["goal_id"]
    assert NOTHING == stored(server)


def test_patch_with_if_match_advances_the_version(client: httpx.Client) -> None:
    """A PATCH at the current ETag applies and returns the next ETag."""
    goal = post_goal(client, value=0.3)

    response = client.patch(
        f"/v1/goals/{goal['id']}", json={"value": 0.9}, headers={"If-Match": '"1"'}
    )

    assert 200 == response.status_code, response.text
    assert (0.9, 2) == (response.json()["value"], response.json()["version"])
    assert '"2"' == response.headers["etag"]


def test_a_stale_patch_is_a_conflict_recorded_in_the_ledger(
    client: httpx.Client, server: LiveServer
) -> None:
    """A stale version is a 409 naming the current one, plus a goal_conflict_detected event."""
    goal_id = post_goal(client)["id"]
    client.patch(f"/v1/goals/{goal_id}", json={"value": 0.1, "expected_version": 1})

    stale = client.patch(f"/v1/goals/{goal_id}", json={"value": 0.2}, headers={"If-Match": '"1"'})

    assert 409 == stale.status_code
    assert (2, 1) == (stale.json()["current_version"], stale.json()["expected_version"])
    current = client.get(f"/v1/goals/{goal_id}").json()
    assert (0.1, 2) == (current["value"], current["version"])
    events = client.get(f"/v1/goals/{goal_id}/history").json()["data"]
    assert ["goal_created", "goal_updated", "goal_conflict_detected"] == [
        e["event_type"] for e in events
    ]


def test_patch_without_a_version_is_428(client: httpx.Client, server: LiveServer) -> None:
    """A blind PATCH is refused: it would silently overwrite someone else's change."""
    goal_id = post_goal(client)["id"]
    before = stored(server)

    response = client.patch(f"/v1/goals/{goal_id}", json={"value": 0.1})

    assert 428 == response.status_code
    assert before == stored(server)


def test_a_malformed_if_match_is_400(client: httpx.Client) -> None:
    """If-Match must be an ETag as the server sent it."""
    goal_id = post_goal(client)["id"]

    response = client.patch(f"/v1/goals/{goal_id}", json={"value": 0.1}, headers={"If-Match": "v1"})

    assert 400 == response.status_code


def test_patch_rejects_nulls_and_unknown_fields(client: httpx.Client) -> None:
    """Only horizon_max_min may be cleared with null; unknown fields are refused."""
    goal_id = post_goal(client, horizon_max_min=60)["id"]

    null_text = client.patch(f"/v1/goals/{goal_id}", json={"text": None, "expected_version": 1})
    unknown = client.patch(f"/v1/goals/{goal_id}", json={"state": "adopted", "expected_version": 1})
    cleared = client.patch(
        f"/v1/goals/{goal_id}", json={"horizon_max_min": None, "expected_version": 1}
    )

    assert (422, 422, 200) == (null_text.status_code, unknown.status_code, cleared.status_code)
    assert cleared.json()["horizon_max_min"] is None
    assert cleared.json()["deadline"] is None


def test_sixteen_concurrent_patches_at_one_version_one_wins(
    client: httpx.Client, server: LiveServer
) -> None:
    """16 PATCHes racing at version 1: exactly one succeeds, 15 are 409."""
    goal_id = post_goal(client)["id"]
    barrier = threading.Barrier(16)
    statuses: list[int] = []
    lock = threading.Lock()

    def patch(n: int) -> None:
        with server.client(timeout=30) as own:
            barrier.wait()
            response = own.patch(
                f"/v1/goals/{goal_id}",
                json={"value": n / 100},
                headers={"If-Match": '"1"'},
            )
        with lock:
            statuses.append(response.status_code)

    threads = [threading.Thread(target=patch, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [200] + [409] * 15 == sorted(statuses)
    assert 2 == client.get(f"/v1/goals/{goal_id}").json()["version"]
    events = client.get(f"/v1/goals/{goal_id}/history").json()["data"]
    assert 15 == sum(e["event_type"] == "goal_conflict_detected" for e in events)


def test_adopt_and_abandon_are_idempotent(client: httpx.Client, server: LiveServer) -> None:
    """Repeating adopt or abandon is a 200 that changes nothing."""
    goal_id = post_goal(client)["id"]

    first = client.post(f"/v1/goals/{goal_id}/adopt")
    after_first = stored(server)
    again = client.post(f"/v1/goals/{goal_id}/adopt", json={"expected_version": 1})

    assert (200, 200) == (first.status_code, again.status_code)
    assert ("adopted", 2) == (again.json()["state"], again.json()["version"])
    assert after_first == stored(server)

    abandoned = client.post(f"/v1/goals/{goal_id}/abandon", headers={"If-Match": '"2"'})
    abandoned_again = client.post(f"/v1/goals/{goal_id}/abandon")
    assert ("abandoned", 3) == (abandoned.json()["state"], abandoned.json()["version"])
    assert 3 == abandoned_again.json()["version"]


def test_an_illegal_transition_names_the_current_state(
    client: httpx.Client, server: LiveServer
) -> None:
    """Adopting an abandoned goal is a 409 with the state it is in, and changes nothing."""
    goal_id = post_goal(client)["id"]
    client.post(f"/v1/goals/{goal_id}/abandon")
    before = stored(server)

    response = client.post(f"/v1/goals/{goal_id}/adopt")

    assert 409 == response.status_code
    assert ("abandoned", "adopt") == (response.json()["current_state"], response.json()["action"])
    assert before == stored(server)


def test_a_stale_adopt_is_a_conflict(client: httpx.Client) -> None:
    """adopt honours If-Match like any other change."""
    goal_id = post_goal(client)["id"]
    client.patch(f"/v1/goals/{goal_id}", json={"value": 0.2, "expected_version": 1})

    response = client.post(f"/v1/goals/{goal_id}/adopt", headers={"If-Match": '"1"'})

    assert 409 == response.status_code
    assert "proposed" == client.get(f"/v1/goals/{goal_id}").json()["state"]


def test_soft_delete_hides_the_goal_but_keeps_its_history(client: httpx.Client) -> None:
    """DELETE is 204 (twice), the goal leaves reads and lists, its history remains."""
    goal_id = post_goal(client)["id"]

    assert 204 == client.delete(f"/v1/goals/{goal_id}").status_code
    assert 204 == client.delete(f"/v1/goals/{goal_id}").status_code
    assert 404 == client.get(f"/v1/goals/{goal_id}").status_code
    assert 0 == client.get("/v1/goals").json()["count"]
    shown = client.get(f"/v1/goals/{goal_id}", params={"include_deleted": True}).json()
    assert shown["deleted_at"] is not None
    history = client.get(f"/v1/goals/{goal_id}/history").json()["data"]
    assert ["goal_created", "goal_deleted"] == [e["event_type"] for e in history]


def test_lists_filter_and_paginate(client: httpx.Client) -> None:
    """state and category filters combine; cursors walk every match exactly once."""
    ids = {post_goal(client, category="exploration")["id"] for _ in range(7)}
    post_goal(client, category="maintenance")
    adopted = post_goal(client, category="exploration")["id"]
    client.post(f"/v1/goals/{adopted}/adopt")

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"category": "exploration", "state": "proposed", "limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/v1/goals", params=params).json()
        assert 7 == page["count"]
        seen += [goal["id"] for goal in page["data"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert 3 == pages
    assert sorted(ids) == sorted(seen)
    assert 9 == client.get("/v1/goals").json()["count"]
    assert [adopted] == [g["id"] for g in client.get("/v1/goals?state=adopted").json()["data"]]


@pytest.mark.parametrize(
    "query", ["state=done", "category=fun", "limit=0", "limit=501", "cursor=abc"]
)
def test_bad_list_queries_are_422(query: str, client: httpx.Client) -> None:
    """Unknown filter values and out-of-range paging are refused, not ignored."""
    response = client.get(f"/v1/goals?{query}")

    assert 422 == response.status_code
    assert PROBLEM == response.headers["content-type"]


def test_the_callers_trace_reaches_the_ledger(client: httpx.Client) -> None:
    """An incoming traceparent's trace id is recorded on the event; a new span is echoed."""
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    traceparent = f"00-{trace_id}-00f067aa0ba902b7-01"

    response = client.post("/v1/goals", json=goal_spec(), headers={"traceparent": traceparent})

    event = client.get(f"/v1/goals/{response.json()['id']}/history").json()["data"][0]
    assert trace_id == event["trace_id"]
    assert "00f067aa0ba902b7" != event["span_id"]
    assert response.headers["traceparent"].startswith(f"00-{trace_id}-")


def test_health_probes(client: httpx.Client, engine: str) -> None:
    """livez always answers; readyz reports the store, by engine."""
    assert {"status": "ok"} == client.get("/livez").json()
    ready = client.get("/readyz")
    assert (200, "ok") == (ready.status_code, ready.json()["checks"][engine])


def test_goal_types_are_listed_with_schemas(client: httpx.Client) -> None:
    """/v1/goal-types lists generic and metric_delta with JSON Schemas of their results."""
    types = {t["name"]: t for t in client.get("/v1/goal-types").json()["data"]}

    assert {"generic", "metric_delta"} <= set(types)
    assert "summary" in types["generic"]["result_schema"]["properties"]
    assert "achieved" in types["metric_delta"]["result_schema"]["required"]


def test_openapi_documents_examples_and_problems(client: httpx.Client) -> None:
    """The OpenAPI document carries the seed example and problem+json error responses."""
    spec = client.get("/openapi.json").json()
    create_op = spec["paths"]["/v1/goals"]["post"]

    example = create_op["requestBody"]["content"]["application/json"]["examples"]["seed"]
    assert "goal_001" == example["value"]["id"]
    assert "application/problem+json" in create_op["responses"]["409"]["content"]


@pytest.mark.parametrize(
    ("path", "route"),
    [("/v1/beliefs?active=AAA", "/v1/beliefs"),
     ("/v1/decisions/goal_selected/outcomes?limit=0", "/v1/decisions/{decision_id}/outcomes"),
     ("/v1/goals?limit=-1", "/v1/goals"),
     ("/v1/goals/prioritized?limit=abc", "/v1/goals/prioritized")],
)  # fmt: skip
def test_validation_errors_are_served_as_documented(
    client: httpx.Client, path: str, route: str
) -> None:
    """A 422 is served as application/problem+json, the only media type the document gives
    it, and its body validates against the documented schema (a generated client parses
    it); the document has no FastAPI HTTPValidationError left."""
    document = client.get("/openapi.json").json()
    documented = document["paths"][route]["get"]["responses"]["422"]["content"]
    served = client.get(path)

    assert ["application/problem+json"] == list(documented)
    assert (422, "application/problem+json") == (
        served.status_code, served.headers["content-type"]
    )  # fmt: skip
    schema = {**documented["application/problem+json"]["schema"],
              "components": document["components"]}  # fmt: skip
    jsonschema.validate(served.json(), schema)
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_every_documented_error_is_problem_json(client: httpx.Client) -> None:
    """Every 4xx and 5xx response of every operation is documented as problem+json only."""
    document = client.get("/openapi.json").json()
    media = {
        (method, path, status): list(response.get("content", {}))
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        for status, response in operation["responses"].items()
        if status[0] in "45"
    }

    assert media  # the document has error responses at all
    assert {key: ["application/problem+json"] for key in media} == media


KEYS = "alice:read+write:alice-key-0123456789,viewer:read:viewer-key-0123456789"


@pytest.fixture
def secured(start_server: ServerFactory) -> LiveServer:
    return start_server(api_keys=KEYS)


def test_without_a_key_requests_are_401(secured: LiveServer) -> None:
    """With keys configured, a request without one (or with a wrong one) is refused."""
    with secured.client() as anonymous:
        missing = anonymous.get("/v1/goals")
        wrong = anonymous.get("/v1/goals", headers={"Authorization": "Bearer nope-nope-nope-nope"})

    assert (401, 401) == (missing.status_code, wrong.status_code)
    assert PROBLEM == missing.headers["content-type"]
    assert "Bearer" == missing.headers["www-authenticate"]


def test_a_read_key_cannot_write(secured: LiveServer) -> None:
    """Scopes are enforced: read may list, not create."""
    headers = {"X-API-Key": "viewer-key-0123456789"}
    with secured.client(headers=headers) as viewer:
        assert 200 == viewer.get("/v1/goals").status_code
        refused = viewer.post("/v1/goals", json=goal_spec())

    assert 403 == refused.status_code
    assert NOTHING == stored(secured)


def test_the_keys_actor_owns_the_goal_and_signs_the_ledger(secured: LiveServer) -> None:
    """The actor of the key becomes the owner and the ledger's actor."""
    headers = {"Authorization": "Bearer alice-key-0123456789"}
    with secured.client(headers=headers) as alice:
        goal = alice.post("/v1/goals", json=goal_spec()).json()
        alice.post(f"/v1/goals/{goal['id']}/adopt")
        history = alice.get(f"/v1/goals/{goal['id']}/history").json()["data"]

    assert "alice" == goal["owner"]
    assert ["alice", "alice"] == [event["actor"] for event in history]


def test_health_needs_no_key(secured: LiveServer) -> None:
    """Probes stay open so orchestrators can reach them."""
    with secured.client() as anonymous:
        assert 200 == anonymous.get("/livez").status_code
        assert 200 == anonymous.get("/readyz").status_code
