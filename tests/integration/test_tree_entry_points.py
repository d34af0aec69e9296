"""Goal trees (issue 18) at the other entry points, on each engine: the CLI's `goal tree`
(JSON and the text outline) and `goals decompose`, the MCP tools over /mcp, and seed
003's plan applied as a tree scenario (deploy/scenarios/plan_tree_003.json).

Every expected value is written out by hand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from service import cli, commands
from service.commands import Context
from service.commands.starting import Started
from service.domain.tasks import TaskState
from service.testing import goal_spec
from tests.integration.conftest import CliRunner, LiveServer
from tests.integration.test_api_trees import _create, _decompose

REPO = Path(__file__).resolve().parents[2]
OPERATOR = Context(actor="ops", admin=True)


def _satisfy_leaf(server: LiveServer, goal_id: str) -> None:
    """A leaf taken through the gate: adopted, started, its task verified, satisfied."""
    gs = server.services.goalstore
    version = gs.adopt_goal(OPERATOR, goal_id).goal.version
    [started] = commands.start_goals(gs.db, OPERATOR, [(goal_id, version)], gs.vetting)
    assert isinstance(started, Started), started
    gs.report_task(OPERATOR, started.task.task_id, TaskState.SUCCEEDED, evidence={"ok": 1})
    gs.review_task(OPERATOR, goal_id, started.task.task_id, "verify")
    gs.satisfy_goal(OPERATOR, goal_id, {"summary": "done"})


# --- the CLI -------------------------------------------------------------------------------


def test_cli_tree_prints_an_outline_with_progress_bars(
    server: LiveServer, client: httpx.Client, database_location: str,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """`goalstore goal tree R --format text`: one line per goal, indented by level, its
    progress bar, percentage, state, id and text; A1 satisfied makes A and R 1/1 and 1/2
    of their children's value; depth 2 counts A's child on a line of its own."""
    _create(client, "R", text="ship the report")
    assert 201 == _decompose(client, "R", "A", "B").status_code
    assert 201 == _decompose(client, "A", "A1").status_code
    _satisfy_leaf(server, "A1")
    capsys.readouterr()

    full = cli.main(["--database", database_location, "goal", "tree", "R", "--format", "text"])
    whole = capsys.readouterr().out
    cut = cli.main(["--database", database_location, "goals", "tree", "R", "--format", "text",
                    "--depth", "2"])  # fmt: skip

    assert (0, 0) == (full, cut)
    assert [
        "[#####-----]  50%  proposed   R  ship the report",
        "  [##########] 100%  satisfied  A  part A",
        "    [##########] 100%  satisfied  A1  part A1",
        "  [----------]   0%  proposed   B  part B",
    ] == whole.splitlines()
    assert "    … 1 more (raise --depth)" == capsys.readouterr().out.splitlines()[2]


def test_cli_decompose_lists_children_and_refuses_without_cascade(
    database_location: str, run_cli: CliRunner, tmp_path: Path
) -> None:
    """`goals decompose R --file` takes a bare list, `goals list --parent-id R` lists the
    children, `goals abandon R --no-cascade` exits 4 naming them, `goals tree` prints JSON."""
    root = tmp_path / "root.json"
    root.write_bytes(orjson.dumps(goal_spec(id="R")))
    children = tmp_path / "children.json"
    children.write_bytes(orjson.dumps([goal_spec(id="A"), goal_spec(id="B")]))
    assert 0 == run_cli(database_location, "goals", "create", str(root))[0]

    code, made = run_cli(database_location, "goals", "decompose", "R", "--file", str(children))
    listed = run_cli(database_location, "goals", "list", "--parent-id", "R")[1]
    refused = run_cli(database_location, "goals", "abandon", "R", "--no-cascade")
    tree = run_cli(database_location, "goal", "tree", "R", "--depth", "1")[1]

    assert (0, "R", ["A", "B"]) == (code, made["parent"]["id"], [c["id"] for c in made["children"]])
    assert ["A", "B"] == [g["id"] for g in listed["data"]]
    assert (4, "conflict", ["A", "B"]) == (
        refused[0], refused[1]["error"], refused[1]["open_children"]
    )  # fmt: skip
    assert ("R", [], 2) == (tree["id"], tree["children"], tree["more_children"])


# --- MCP -------------------------------------------------------------------------------------

MCP_HEADERS = {
    "Accept": "application/json, text/event-stream",
    "MCP-Protocol-Version": "2025-11-25",
}


def _tool(client: httpx.Client, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    message = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
               "params": {"name": name, "arguments": arguments}}  # fmt: skip
    answer = client.post("/mcp", json=message, headers=MCP_HEADERS)
    assert 200 == answer.status_code, answer.text
    result: dict[str, Any] = answer.json()["result"]
    return result


def test_mcp_decompose_goal_and_goal_tree(client: httpx.Client) -> None:
    """Over /mcp: decompose_goal creates the children (a summary line naming them),
    goal_tree answers the REST tree, list_goals filters by parent; the tree tool is
    listed read-only and idempotent, decompose as a write."""
    _create(client, "R")
    made = _tool(client, "decompose_goal", {"goal_id": "R", "children": [goal_spec(id="A")]})
    tree = _tool(client, "goal_tree", {"goal_id": "R", "depth": 2})
    listed = _tool(client, "list_goals", {"parent_id": "R"})
    tools = client.post("/mcp", json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
                        headers=MCP_HEADERS).json()["result"]["tools"]  # fmt: skip

    assert (False, "goal R decomposed into 1: A") == (
        made.get("isError", False), made["content"][0]["text"]
    )  # fmt: skip
    assert client.get("/v1/goals/R/tree", params={"depth": 2}).json() == tree["structuredContent"]
    assert ["A"] == [g["id"] for g in listed["structuredContent"]["data"]]
    hints = {t["name"]: t["annotations"] for t in tools}
    assert (True, True) == (
        hints["goal_tree"]["readOnlyHint"],
        hints["goal_tree"]["idempotentHint"],
    )
    assert False is hints["decompose_goal"]["readOnlyHint"]


def test_mcp_abandon_without_cascade_is_the_rest_problem(client: httpx.Client) -> None:
    """abandon_goal with cascade false on a goal with an open child is a tool error
    carrying REST's 409 children-open problem."""
    _create(client, "R")
    _tool(client, "decompose_goal", {"goal_id": "R", "children": [goal_spec(id="A")]})

    refused = _tool(client, "abandon_goal", {"goal_id": "R", "cascade": False})

    assert True is refused["isError"]
    assert (409, "urn:goalstore:problem:children-open", ["A"]) == (
        refused["structuredContent"]["status"], refused["structuredContent"]["type"],
        refused["structuredContent"]["open_children"],
    )  # fmt: skip


# --- the tree scenario -----------------------------------------------------------------------


def test_seed_003_plan_applies_as_a_tree_and_reads_back(
    database_location: str, run_cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """deploy/scenarios/plan_tree_003.json: the plan a root, its four items children
    (each after the first depending on earlier ones), the first item done, one stale
    update refused; the tree reads back with the plan's progress the items' value-weighted
    mean (0.8 of 2.9) and the ledger verifies."""
    monkeypatch.chdir(REPO)

    code, out = run_cli(database_location, "apply-scenario", "deploy/scenarios/plan_tree_003.json")
    tree = run_cli(database_location, "goal", "tree", "P-L3-DEMO-001")[1]

    assert (0, True, 1, 1) == (code, out["ok"], out["decomposed"], len(out["conflicts"]))
    items = tree["children"]
    assert [
        ("P-L3-DEMO-001.I-001", "satisfied", []),
        ("P-L3-DEMO-001.I-002", "adopted", ["P-L3-DEMO-001.I-001"]),
        ("P-L3-DEMO-001.I-003", "proposed", ["P-L3-DEMO-001.I-002"]),
        ("P-L3-DEMO-001.I-004", "proposed", ["P-L3-DEMO-001.I-002", "P-L3-DEMO-001.I-003"]),
    ] == [(i["id"], i["state"], i["depends_on"]) for i in items]
    assert {"P-L3-DEMO-001"} == {i["parent_id"] for i in items}
    assert ("adopted", pytest.approx(0.8 / 2.9)) == (tree["state"], tree["progress"])
    assert 0 == run_cli(database_location, "ledger", "verify")[0]
