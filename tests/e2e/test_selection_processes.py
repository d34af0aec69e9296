"""Selection with real processes: the Procfile's `web`, `worker` and `scheduler` (RQ
workers), many selector processes, and a scheduler worker SIGKILLed mid-task."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
from typing import Any

import httpx
import pytest

from service.store.db import open_database
from service.testing import adopted_goal, make_context, post_adopted_goal, wait_for
from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e

ON = {"GOAL_SYSTEM": "on", "GOAL_SHADOW": "off", "GOALSTORE_TASK_STALE_S": "1"}
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def tasks(client: httpx.Client, goal_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/v1/goals/{goal_id}/tasks")
    assert 200 == response.status_code, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def in_state(client: httpx.Client, goal_id: str, state: str) -> list[dict[str, Any]]:
    return [t for t in tasks(client, goal_id) if t["state"] == state]


def ranked(stack: Stack, goal_id: str) -> bool:
    return stack.redis.client().zscore("goalstore:ranked", goal_id) is not None


def test_select_execute_verify_satisfy_with_one_trace(stack: Stack) -> None:
    """REST select with a traceparent -> the scheduler process runs the reference
    executor -> the task report carries that trace id -> verify -> satisfy."""
    http = stack.serve(**ON)
    stack.worker(**ON)
    stack.spawn("scheduler", **ON)
    with http:
        goal_id = post_adopted_goal(http, text="Summarise the incident log")
        wait_for("the goal in the Redis ranking", lambda: ranked(stack, goal_id))

        selected = http.post("/v1/goals/select", headers={"traceparent": TRACEPARENT})
        assert 200 == selected.status_code, selected.text
        body = selected.json()
        assert ("emitted", goal_id) == (body["mode"], body["goal"]["id"])
        task_id = body["task"]["task_id"]
        meta = stack.redis.client().hget(f"rq:job:{task_id}", "meta")
        assert TRACE_ID == json.loads(meta or b"{}")["trace_id"]

        done = wait_for("the executor's report", lambda: in_state(http, goal_id, "succeeded"))
        assert TRACE_ID == done[0]["evidence"]["trace_id"]
        lines = [json.loads(line) for log in stack.tmp_path.glob("scheduler-*.log")
                 for line in log.read_text().splitlines() if line.startswith("{")]  # fmt: skip
        finished = [line for line in lines if line["msg"] == "task finished"]
        assert [(TRACE_ID, task_id)] == [(line.get("trace_id"), line["task_id"])
                                         for line in finished]  # fmt: skip
        history = http.get(f"/v1/goals/{goal_id}/history").json()["data"]
        reports = [e for e in history if e["event_type"] == "task_reported"]
        assert {TRACE_ID} == {e["trace_id"] for e in reports}
        assert ["running", "succeeded"] == [e["payload"]["task"]["state"] for e in reports]

        refused = http.post(f"/v1/goals/{goal_id}/satisfy", json={"result": {"summary": "ok"}})
        assert (409, 0, 1) == (refused.status_code, refused.json()["verified"],
                               refused.json()["live"])  # fmt: skip
        assert 200 == http.post(f"/v1/goals/{goal_id}/tasks/{task_id}/verify").status_code
        invalid = http.post(f"/v1/goals/{goal_id}/satisfy", json={"result": {"summary": ""}})
        assert 422 == invalid.status_code
        assert [["result", "summary"]] == [e["loc"] for e in invalid.json()["errors"]]
        satisfied = http.post(f"/v1/goals/{goal_id}/satisfy", json={"result": {"summary": "ok"}})
        assert ("satisfied", 200) == (satisfied.json()["state"], satisfied.status_code)


def test_a_sigkilled_scheduler_worker_s_task_is_noticed_and_the_goal_retried(
    stack: Stack,
) -> None:
    """The task's worker dies mid-job (SIGKILL): another scheduler process notices (its
    worker process is gone), reports the task failed, and the goal is adopted again."""
    http = stack.serve(**ON)
    stack.worker(**ON)
    victim = stack.spawn("scheduler", **ON)
    with http:
        goal_id = post_adopted_goal(http, metadata={"executor": {"sleep_s": 120}})
        wait_for("the goal in the Redis ranking", lambda: ranked(stack, goal_id))
        task_id = http.post("/v1/goals/select").json()["task"]["task_id"]
        wait_for("the task to run", lambda: in_state(http, goal_id, "running"))

        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        stack.spawn("scheduler", **ON)

        failed = wait_for("the dead task to be noticed", lambda: in_state(http, goal_id, "failed"))
        assert task_id == failed[0]["task_id"]
        assert "abandoned" in failed[0]["reason"]
        goal = wait_for("the goal back to adopted",
                        lambda: (g := http.get(f"/v1/goals/{goal_id}").json())["state"] == "adopted"
                        and g)  # fmt: skip
        assert 4 == goal["version"]  # created 1, adopted 2, executing 3, adopted again 4


_SELECT_LOOP = """
import json, sys
from service.commands import Context
from service.runtime import build_services
services = build_services()
emitted = []
while True:
    selection = services.selector.select(Context(actor="proc"))
    if selection.mode != "emitted":
        break
    emitted.append(selection.goal.id)
print(json.dumps(emitted))
"""


def test_eight_selector_processes_emit_each_of_200_goals_once(stack: Stack) -> None:
    """Eight processes select from one Redis ranking until nothing is left: each of the 200
    adopted goals is emitted exactly once, with one job and one task each."""
    db = open_database(stack.database)
    ctx = make_context()
    with db.batch():
        for n in range(200):
            adopted_goal(db, ctx, id=f"g-{n:03d}", value=(n % 17) / 17)
    db.close()
    rebuilt = stack.goalstore("cache", "rebuild", **ON)
    assert 0 == rebuilt.returncode, rebuilt.stderr
    env = stack.env(**ON)

    procs = [
        subprocess.Popen([sys.executable, "-c", _SELECT_LOOP], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, cwd=stack.tmp_path)
        for _ in range(8)
    ]  # fmt: skip
    outputs = [p.communicate(timeout=120) for p in procs]

    assert [0] * 8 == [p.returncode for p in procs], [err[-2000:] for _, err in outputs]
    emitted = [goal_id for out, _ in outputs for goal_id in json.loads(out)]
    assert sorted(f"g-{n:03d}" for n in range(200)) == sorted(emitted)  # each exactly once
    assert sum(bool(json.loads(out)) for out, _ in outputs) >= 2  # they really raced
    assert 200 == stack.redis.client().llen("rq:queue:scheduler")
    with sqlite3.connect(stack.database) as conn:
        rows = conn.execute("SELECT count(*), count(DISTINCT goal_id) FROM tasks").fetchone()
    assert (200, 200) == tuple(rows)
