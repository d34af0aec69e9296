"""Goal trees (issue 18) over REST, on each engine: POST …/subgoals, GET …/tree, the
parent_id filter, cascades, Idempotency-Key on a decomposition (a real Redis) and the
OpenAPI document. The CLI, MCP and the tree scenario: test_tree_entry_points.py.

Every expected value is written out by hand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from redis import Redis

from service import commands
from service.commands import Context
from service.commands.tree_view import goal_tree
from service.domain.inputs import GoalCreate, Subgoals
from service.store.sqlite import _SqliteConnection
from service.testing import goal_spec, migrated_database
from tests.conftest import TEST_REDIS_URL
from tests.integration.conftest import LiveServer, ServerFactory

PROBLEM = "application/problem+json"
OPERATOR = Context(actor="ops", admin=True)


def _post(client: httpx.Client, path: str, body: Any = None, **kw: Any) -> httpx.Response:
    return client.post(path, json=body, **kw)


def _create(client: httpx.Client, goal_id: str, **overrides: Any) -> dict[str, Any]:
    answer = _post(client, "/v1/goals", goal_spec(id=goal_id, **overrides))
    assert 201 == answer.status_code, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _decompose(client: httpx.Client, goal_id: str, *child_ids: str, **kw: Any) -> httpx.Response:
    children = [goal_spec(id=child, text=f"part {child}") for child in child_ids]
    return _post(client, f"/v1/goals/{goal_id}/subgoals", {"children": children}, **kw)


def _events(server: LiveServer, goal_id: str) -> list[str]:
    return [e.event_type for e in server.services.goalstore.goal_history(goal_id)]


# --- POST /v1/goals/{id}/subgoals --------------------------------------------------------


def test_subgoals_creates_every_child_under_the_goal(
    server: LiveServer, client: httpx.Client
) -> None:
    """201 with the parent and the children in the order sent, each a root's child with
    the tree fields in its body; the parent keeps its version; the ledger has a
    goal_created per child and the parent's goal_decomposed naming them."""
    _create(client, "R")
    children = [goal_spec(id="A", text="gather"), goal_spec(id="B", text="draft", parent_id="R",
                completion_policy="any")]  # fmt: skip

    answer = _post(client, "/v1/goals/R/subgoals", {"children": children})

    assert (201, '"1"', "/v1/goals/R/tree") == (
        answer.status_code, answer.headers["etag"], answer.headers["location"]
    )  # fmt: skip
    body = answer.json()
    assert ("R", 1, None, "all", None) == (
        body["parent"]["id"], body["parent"]["version"], body["parent"]["parent_id"],
        body["parent"]["completion_policy"], body["parent"]["tree_block"],
    )  # fmt: skip
    assert [("A", "R", "all", 0.0, 1), ("B", "R", "any", 0.0, 1)] == [
        (c["id"], c["parent_id"], c["completion_policy"], c["progress"], c["version"])
        for c in body["children"]
    ]
    assert ["goal_created"] == _events(server, "A")
    history = server.services.goalstore.goal_history("R")
    decomposed = [e for e in history if e.event_type == "goal_decomposed"]
    assert [["A", "B"]] == [e.payload["children"] for e in decomposed]
    assert "R" == client.get("/v1/goals/B").json()["parent_id"]


def test_subgoals_with_a_stale_if_match_or_a_taken_id_writes_nothing(
    client: httpx.Client,
) -> None:
    """If-Match naming another version is 409 version-conflict; a child id already taken
    is 409 goal-exists, and the children before it are not created either."""
    _create(client, "R")
    _create(client, "TAKEN")

    stale = _decompose(client, "R", "A", headers={"If-Match": '"7"'})
    taken = _decompose(client, "R", "B", "TAKEN")

    assert (409, PROBLEM, "urn:goalstore:problem:version-conflict") == (
        stale.status_code, stale.headers["content-type"], stale.json()["type"]
    )  # fmt: skip
    assert (409, "urn:goalstore:problem:goal-exists") == (taken.status_code, taken.json()["type"])
    assert (404, 404) == (client.get("/v1/goals/A").status_code,
                          client.get("/v1/goals/B").status_code)  # fmt: skip


def test_the_limits_are_422_naming_the_field(client: httpx.Client) -> None:
    """101 children in one request, a ninth level by decomposing, and a ninth level by
    creating with parent_id are each 422, naming `children` or `parent_id`."""
    _create(client, "L1")
    for level in range(2, 9):
        _create(client, f"L{level}", parent_id=f"L{level - 1}")

    too_many = _decompose(client, "L1", *(f"c{n}" for n in range(101)))
    too_deep = _decompose(client, "L8", "L9")
    created_deep = _post(client, "/v1/goals", goal_spec(id="L9", parent_id="L8"))

    assert (422, "children") == (too_many.status_code, too_many.json()["errors"][0]["loc"][-1])
    assert 422 == too_deep.status_code
    [deep_error] = too_deep.json()["errors"]
    assert {"children", "parent_id"} & set(deep_error["loc"])
    assert "at most 8" in deep_error["msg"]
    assert (422, ["parent_id"]) == (
        created_deep.status_code, created_deep.json()["errors"][0]["loc"]
    )  # fmt: skip
    assert "at most 8" in created_deep.json()["errors"][0]["msg"]
    assert 0 == client.get("/v1/goals", params={"parent_id": "L8"}).json()["count"]


def test_a_parent_cycle_is_422_naming_its_path(client: httpx.Client) -> None:
    """Moving a goal under its own grandchild is refused, the message naming the cycle
    goal by goal; the goal stays a root."""
    _create(client, "A")
    _create(client, "B", parent_id="A")
    _create(client, "C", parent_id="B")

    answer = client.patch("/v1/goals/A", json={"parent_id": "C"}, headers={"If-Match": '"1"'})

    assert 422 == answer.status_code
    [error] = answer.json()["errors"]
    assert ["parent_id"] == error["loc"]
    assert "would make a cycle" in error["msg"]
    assert {"A", "B", "C"} <= set(error["msg"].replace("->", " ").split())
    assert None is client.get("/v1/goals/A").json()["parent_id"]


# --- GET /v1/goals/{id}/tree and ?parent_id= ---------------------------------------------


def _three_levels(client: httpx.Client) -> None:
    """R has children A and B; A has child A1."""
    _create(client, "R", text="ship the report")
    assert 201 == _decompose(client, "R", "A", "B").status_code
    assert 201 == _decompose(client, "A", "A1").status_code


def test_the_tree_nests_children_in_order_with_scores(
    server: LiveServer, client: httpx.Client
) -> None:
    """The whole tree by default: every node the goal body plus score (a float for the
    adopted goal, null for the proposed), blocked, children and more_children."""
    _three_levels(client)
    server.services.goalstore.adopt_goal(OPERATOR, "B")

    tree = client.get("/v1/goals/R/tree").json()

    def shape(node: dict[str, Any]) -> Any:
        return (node["id"], node["state"], node["more_children"],
                [shape(child) for child in node["children"]])  # fmt: skip

    assert ("R", "proposed", 0, [("A", "proposed", 0, [("A1", "proposed", 0, [])]),
                                 ("B", "adopted", 0, [])]) == shape(tree)  # fmt: skip
    b = tree["children"][1]
    assert (float, False, []) == (type(b["score"]), b["blocked"], b["blocked_by"])
    assert 0.0 <= b["score"] <= 1.0
    assert (None, "R", "ship the report") == (tree["score"], b["parent_id"], tree["text"])
    assert b["score"] == client.get("/v1/goals/B/score").json()["score"]


def test_each_node_says_why_the_ranking_holds_it(server: LiveServer, client: httpx.Client) -> None:
    """An adopted parent with open children is blocked by the first of them; once the
    parent is blocked by hand, its adopted child is blocked by that ancestor."""
    _three_levels(client)
    gs = server.services.goalstore
    gs.adopt_goal(OPERATOR, "R")
    gs.adopt_goal(OPERATOR, "B")

    before = client.get("/v1/goals/R/tree").json()
    gs.block_goal(OPERATOR, "R", "waiting for the vendor")
    after = client.get("/v1/goals/R/tree").json()

    assert (True, [{"reason": "open_children", "ref": "A"}]) == (
        before["blocked"], before["blocked_by"]
    )  # fmt: skip
    assert (False, []) == (before["children"][1]["blocked"], before["children"][1]["blocked_by"])
    assert (True, [{"reason": "ancestor_blocked", "ref": "R"}]) == (
        after["children"][1]["blocked"], after["children"][1]["blocked_by"]
    )  # fmt: skip


def test_depth_cuts_the_tree_and_counts_what_it_left_out(client: httpx.Client) -> None:
    """depth=1 is the goal alone with its 2 children counted; depth=2 shows them and
    counts A's child; depth 0 or 9 is 422 naming depth; an unknown or deleted goal 404."""
    _three_levels(client)
    _create(client, "GONE")
    assert 204 == client.delete("/v1/goals/GONE").status_code

    one = client.get("/v1/goals/R/tree", params={"depth": 1}).json()
    two = client.get("/v1/goals/R/tree", params={"depth": 2}).json()

    assert ([], 2) == (one["children"], one["more_children"])
    assert [("A", [], 1), ("B", [], 0)] == [
        (c["id"], c["children"], c["more_children"]) for c in two["children"]
    ]
    for depth in (0, 9):
        refused = client.get("/v1/goals/R/tree", params={"depth": depth})
        assert (422, PROBLEM) == (refused.status_code, refused.headers["content-type"])
        assert "depth" in refused.json()["errors"][0]["loc"]
    assert (404, 404) == (client.get("/v1/goals/NOPE/tree").status_code,
                          client.get("/v1/goals/GONE/tree").status_code)  # fmt: skip


def test_a_tree_read_costs_the_same_queries_whatever_its_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """goal_tree() runs as many statements for a root with one child as for 1 + 6 + 36 +
    216 goals over four levels: the subtree is one query, the ranking one read (SQLite,
    whose connection class the statements pass through)."""
    db = migrated_database(str(tmp_path / "trees.db"))

    def grow(root: str, width: int, levels: int) -> None:
        commands.create_goal(db, OPERATOR, GoalCreate.model_validate(goal_spec(id=root)))
        parents = [root]
        for _ in range(levels - 1):
            below = []
            for parent in parents:
                kids = [goal_spec(id=f"{parent}.{n}") for n in range(width)]
                spec = Subgoals.model_validate({"children": kids})
                done = commands.decompose_goal(db, OPERATOR, parent, spec)
                below += [child.id for child in done.children]
            parents = below

    def statements(root: str) -> tuple[int, int]:
        ran: list[str] = []
        for name in ("execute", "tuples"):
            original = getattr(_SqliteConnection, name)

            def counted(self: Any, sql: str, *args: Any, _original: Any = original) -> Any:
                ran.append(sql)
                return _original(self, sql, *args)

            monkeypatch.setattr(_SqliteConnection, name, counted)
        tree = goal_tree(db, root)
        monkeypatch.undo()
        return len(ran), sum(1 for _ in tree.root.walk())

    grow("SMALL", 1, 2)
    grow("BIG", 6, 4)
    try:
        small, big = statements("SMALL"), statements("BIG")
    finally:
        db.close()

    assert (2, 1 + 6 + 36 + 216) == (small[1], big[1])
    assert 3 <= small[0] == big[0]  # counted at all: the root, the subtree, the ranking


def test_list_filters_by_parent(client: httpx.Client) -> None:
    """?parent_id= lists that goal's children only, not its grandchildren or others'."""
    _three_levels(client)
    _create(client, "OTHER")
    assert 201 == _decompose(client, "OTHER", "O1").status_code

    page = client.get("/v1/goals", params={"parent_id": "R"}).json()

    assert (2, ["A", "B"]) == (page["count"], [g["id"] for g in page["data"]])
    assert 0 == client.get("/v1/goals", params={"parent_id": "B"}).json()["count"]


# --- cascades ------------------------------------------------------------------------------


def test_cascade_false_is_409_children_open_and_changes_nothing(
    server: LiveServer, client: httpx.Client
) -> None:
    """Abandon or delete with cascade=false while children are open: 409 children-open
    naming them; every goal stays as it was."""
    _three_levels(client)

    abandon = _post(client, "/v1/goals/R/abandon", params={"cascade": "false"})
    delete = client.delete("/v1/goals/R", params={"cascade": "false"})

    for answer in (abandon, delete):
        assert (409, PROBLEM) == (answer.status_code, answer.headers["content-type"])
        problem = answer.json()
        assert ("urn:goalstore:problem:children-open", "R", ["A", "B"]) == (
            problem["type"], problem["goal_id"], problem["open_children"]
        )  # fmt: skip
    states = {g: client.get(f"/v1/goals/{g}").json()["state"] for g in ("R", "A", "B", "A1")}
    assert dict.fromkeys(("R", "A", "B", "A1"), "proposed") == states


def test_abandon_and_delete_cascade_by_default(server: LiveServer, client: httpx.Client) -> None:
    """Abandoning R abandons every open descendant, each with an event naming R; deleting
    a goal deletes its subtree."""
    _three_levels(client)
    _create(client, "D")
    assert 201 == _decompose(client, "D", "D1").status_code

    assert 200 == _post(client, "/v1/goals/R/abandon").status_code
    assert 204 == client.delete("/v1/goals/D").status_code

    states = {g: client.get(f"/v1/goals/{g}").json()["state"] for g in ("R", "A", "B", "A1")}
    assert dict.fromkeys(("R", "A", "B", "A1"), "abandoned") == states
    a1 = [e for e in server.services.goalstore.goal_history("A1")
          if e.event_type == "goal_abandoned"]  # fmt: skip
    assert ["R"] == [e.payload["cascade_from"] for e in a1]
    assert 404 == client.get("/v1/goals/D1").status_code


# --- idempotency, OpenAPI ------------------------------------------------------------------


def test_subgoals_with_an_idempotency_key_replays_and_creates_once(
    start_server: ServerFactory, redis_client: Redis
) -> None:
    """The same POST …/subgoals with the same Idempotency-Key answers the first 201 again
    (marked replayed) and creates the children once."""
    server = start_server(redis_url=TEST_REDIS_URL, redis_prefix="goalstore-test:")
    with server.client() as client:
        _create(client, "R")
        first = _decompose(client, "R", "A", headers={"Idempotency-Key": "tree-1"})
        again = _decompose(client, "R", "A", headers={"Idempotency-Key": "tree-1"})

        assert (201, 201, first.json()) == (first.status_code, again.status_code, again.json())
        assert "true" == again.headers["idempotent-replayed"]
        assert 1 == client.get("/v1/goals", params={"parent_id": "R"}).json()["count"]


def test_openapi_describes_the_tree_routes(client: httpx.Client) -> None:
    """The document names the answers as served: the decomposition and the nested node
    (children of the node's own schema), depth's bounds, the parent_id filter, cascade
    and the children-open conflict."""
    doc = client.get("/openapi.json").json()
    paths, schemas = doc["paths"], doc["components"]["schemas"]

    created = paths["/v1/goals/{goal_id}/subgoals"]["post"]["responses"]["201"]
    assert created["content"]["application/json"]["schema"]["$ref"].endswith("/DecompositionPublic")
    tree_op = paths["/v1/goals/{goal_id}/tree"]["get"]
    node = tree_op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert node.endswith("/GoalTreePublic")
    for name in ("GoalTreePublic", "GoalTreeNodePublic"):  # the root, and every node below
        children = schemas[name]["properties"]["children"]["items"]["$ref"]
        assert children.endswith("/GoalTreeNodePublic")
    [depth] = [p for p in tree_op["parameters"] if p["name"] == "depth"]
    assert (1, 8, 8) == (depth["schema"]["minimum"], depth["schema"]["maximum"],
                         depth["schema"]["default"])  # fmt: skip
    listed = {p["name"] for p in paths["/v1/goals"]["get"]["parameters"]}
    assert "parent_id" in listed
    for path, method in (
        ("/v1/goals/{goal_id}/abandon", "post"),
        ("/v1/goals/{goal_id}", "delete"),
    ):
        operation = paths[path][method]
        assert "cascade" in {p["name"] for p in operation["parameters"]}
        assert "children-open" in operation["responses"]["409"]["description"]
    for name in ("parent_id", "completion_policy", "tree_block", "progress"):
        assert name in schemas["GoalPublic"]["required"]
