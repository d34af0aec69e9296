"""A goal tree worked end to end over REST: real web and events worker processes (the
Procfile's), a redis-server of the test's own, and the stock `rq worker` running the
reference executor (examples/executor/report_writer.py). Three levels made with
POST /v1/goals and POST /v1/goals/{id}/subgoals; every goal adopted, the parents too,
so that the ranking has to keep them out; the leaves selected, run, verified and
satisfied one by one; the parents completed by their children up to the root."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.testing import goal_spec, wait_for
from tests.e2e.conftest import BIN, REPO, Stack

pytestmark = pytest.mark.e2e

ON = {"GOAL_SYSTEM": "on", "GOAL_SHADOW": "off", "GOALSTORE_EXECUTOR": "report_writer.run"}
LEAVES = ("draft-a1", "draft-a2", "review-b")
PARENTS = ("report", "draft")


def reference_executor(stack: Stack) -> subprocess.Popen[bytes]:
    """The stock `rq worker` on the scheduler queue, examples/executor on PYTHONPATH, as
    examples/executor/README.md starts it (reports land in tmp_path/reports)."""
    env = stack.env(**ON, PYTHONPATH=str(REPO / "examples" / "executor"))
    log = open(stack.tmp_path / "rq-worker.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [str(BIN / "rq"), "worker", "--serializer", "rq.serializers.JSONSerializer",
         "--url", stack.redis.url, "scheduler"],
        env=env, cwd=stack.tmp_path, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    stack.processes.append(process)
    return process


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert status == response.status_code, response.text
    return response.json()


def history(http: httpx.Client, goal_id: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = ok(http.get(f"/v1/goals/{goal_id}/history"))["data"]
    return events


def root_progress(done: list[str]) -> float:
    """By hand, every value equal: draft = its two leaves' mean, report = (draft + review) / 2."""
    draft = ((LEAVES[0] in done) + (LEAVES[1] in done)) / 2
    return (draft + (LEAVES[2] in done)) / 2


def make_tree(http: httpx.Client) -> None:
    ok(http.post("/v1/goals", json=goal_spec(id="report", text="Ship the quarterly report")),
       201)  # fmt: skip
    made = ok(http.post("/v1/goals/report/subgoals", json={"children": [
        goal_spec(id="draft", text="Draft the report"),
        goal_spec(id="review-b", text="Review the figures"),
    ]}), 201)  # fmt: skip
    assert ["draft", "review-b"] == [c["id"] for c in made["children"]]
    assert {"report"} == {c["parent_id"] for c in made["children"]}
    ok(http.post("/v1/goals/draft/subgoals", json={"children": [
        goal_spec(id="draft-a1", text="Gather the data"),
        goal_spec(id="draft-a2", text="Write the prose"),
    ]}), 201)  # fmt: skip
    for goal_id in (*PARENTS, *LEAVES):
        assert "adopted" == ok(http.post(f"/v1/goals/{goal_id}/adopt"))["state"]


def work_one(stack: Stack, http: httpx.Client, waiting: list[str]) -> str:
    """Select once the cache has caught up (the waiting leaves ranked, the parents held
    as blocked): a leaf must come out. Its task run by the executor, verified, satisfied."""
    redis = stack.redis.client()

    def caught_up() -> bool:
        ranked = {m.decode() for m in redis.zrange("goalstore:ranked", 0, -1)}
        return set(waiting) == ranked - set(PARENTS)

    wait_for("the waiting leaves in the ranking", caught_up)
    blocked = {m.decode() for m in redis.zrange("goalstore:blocked", 0, -1)}
    open_parents = [p for p in PARENTS if ok(http.get(f"/v1/goals/{p}"))["state"] == "adopted"]
    assert set(open_parents) <= blocked  # open children hold them: never ranked to run
    selected = ok(http.post("/v1/goals/select"))
    goal_id: str = selected["goal"]["id"]
    assert goal_id in waiting, selected  # never a goal with open children
    task_id = selected["task"]["task_id"]

    def reported() -> dict[str, Any] | None:
        tasks = ok(http.get(f"/v1/goals/{goal_id}/tasks"))["data"]
        found: dict[str, Any] = next(t for t in tasks if t["task_id"] == task_id)
        return found if found["state"] in ("succeeded", "failed") else None

    task = wait_for(f"the executor's report on {goal_id}", reported)
    assert "succeeded" == task["state"], task
    assert Path(task["evidence"]["path"]).is_file()  # the reference executor's report
    ok(http.post(f"/v1/goals/{goal_id}/tasks/{task_id}/verify"))
    satisfied = ok(http.post(f"/v1/goals/{goal_id}/satisfy", json={"result": {"summary": "ok"}}))
    assert "satisfied" == satisfied["state"]
    return goal_id


def test_a_three_level_tree_is_worked_leaf_by_leaf_up_to_a_satisfied_root(stack: Stack) -> None:
    """The root reaches progress 1 and `satisfied`; its goal_progressed events climb
    through the values worked out by hand for the order the leaves were done in, then
    its goal_satisfied (action `complete`, by its two children) comes last, after its
    child `draft` was completed the same way; the ledger verifies."""
    http = stack.serve(**ON)
    stack.worker(**ON)
    reference_executor(stack)
    make_tree(http)

    done: list[str] = []
    while len(done) < len(LEAVES):
        done.append(work_one(stack, http, [g for g in LEAVES if g not in done]))

    root = ok(http.get("/v1/goals/report"))
    assert ("satisfied", 1.0) == (root["state"], root["progress"])
    tree = ok(http.get("/v1/goals/report/tree"))
    assert {"draft": "satisfied", "review-b": "satisfied"} == {
        c["id"]: c["state"] for c in tree["children"]
    }

    events = history(http, "report")
    progressed = [e["payload"] for e in events if e["event_type"] == "goal_progressed"]
    expected = [root_progress(done[: n + 1]) for n in range(len(done))]
    assert expected == [p["set"]["progress"] for p in progressed]
    assert [0.0, *expected[:-1]] == [p["from"] for p in progressed]
    assert ["goal_created", "goal_decomposed", "goal_adopted"] == [
        e["event_type"] for e in events[:3]
    ]
    last = events[-1]
    assert ("goal_satisfied", "complete") == (last["event_type"], last["payload"]["action"])
    assert ["draft", "review-b"] == sorted(last["payload"]["by_children"])
    [draft_done] = [e for e in history(http, "draft") if e["event_type"] == "goal_satisfied"]
    assert "complete" == draft_done["payload"]["action"]
    assert ["draft-a1", "draft-a2"] == sorted(draft_done["payload"]["by_children"])
    assert draft_done["seq"] < last["seq"]

    verified = stack.goalstore("ledger", "verify")
    assert 0 == verified.returncode, verified.stdout + verified.stderr
