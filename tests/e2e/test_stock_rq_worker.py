"""Executors that are plain functions, run by the stock `rq worker` (not `goalstore
scheduler`): RQ's own callbacks record each outcome, and the events worker's sweeper
notices a worker killed mid-job. Real web and events worker processes, a real Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.testing import post_adopted_goal, wait_for
from tests.e2e.conftest import BIN, Stack

pytestmark = pytest.mark.e2e

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"
STALE_S = 2
ON = {"GOAL_SYSTEM": "on", "GOAL_SHADOW": "off", "GOALSTORE_EXECUTOR": "userexec.run",
      "GOALSTORE_TASK_STALE_S": str(STALE_S), "GOALSTORE_MAX_ATTEMPTS": "2"}  # fmt: skip

# The user's executor: no GoalStore import, a plain function of the payload.
USER_EXECUTOR = """
import time

def run(payload):
    asked = payload["metadata"].get("test", {})
    time.sleep(asked.get("sleep_s", 0))
    if "raise" in asked:
        raise ValueError(asked["raise"])
    return {"summary": "did: " + payload["text"], "attempt": payload["attempt"]}
"""


def stock_rq_worker(stack: Stack) -> subprocess.Popen[bytes]:
    """`rq worker --serializer rq.serializers.JSONSerializer scheduler`, as a user types
    it, with the executor's module on PYTHONPATH, in a session of its own (so a SIGKILL
    takes its work horse too)."""
    (stack.tmp_path / "userexec.py").write_text(USER_EXECUTOR)
    env = stack.env(**ON, PYTHONPATH=str(stack.tmp_path))
    log = open(stack.tmp_path / f"rq-worker-{len(stack.processes)}.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [str(BIN / "rq"), "worker", "--serializer", "rq.serializers.JSONSerializer",
         "--url", stack.redis.url, "scheduler"],
        env=env, cwd=stack.tmp_path, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    stack.processes.append(process)
    return process


def select(http: httpx.Client, stack: Stack, **metadata: Any) -> tuple[str, str]:
    goal_id = post_adopted_goal(http, metadata={"test": metadata})
    ranking = stack.redis.client()
    wait_for("the goal in the Redis ranking",
             lambda: ranking.zscore("goalstore:ranked", goal_id) is not None)  # fmt: skip
    selected = http.post("/v1/goals/select", headers={"traceparent": TRACEPARENT}).json()
    assert ("emitted", goal_id) == (selected["mode"], selected["goal"]["id"])
    return goal_id, selected["task"]["task_id"]


def task(http: httpx.Client, goal_id: str, task_id: str) -> dict[str, Any]:
    found: dict[str, Any] = next(
        t for t in http.get(f"/v1/goals/{goal_id}/tasks").json()["data"] if t["task_id"] == task_id
    )
    return found


def reports(http: httpx.Client, goal_id: str) -> list[dict[str, Any]]:
    history = http.get(f"/v1/goals/{goal_id}/history").json()["data"]
    return [e for e in history if e["event_type"] == "task_reported"]


@pytest.fixture
def running(stack: Stack) -> tuple[Stack, httpx.Client, subprocess.Popen[bytes]]:
    http = stack.serve(**ON)
    stack.worker(**ON)
    return stack, http, stock_rq_worker(stack)


def test_a_returning_executor_succeeds_with_its_result_as_evidence(
    running: tuple[Stack, httpx.Client, subprocess.Popen[bytes]],
) -> None:
    """The job returns: the task went running, then succeeded with exactly the returned
    mapping as evidence, both reports in the selecting request's trace."""
    stack, http, _ = running
    goal_id, task_id = select(http, stack)
    wait_for("the success callback's report",
             lambda: task(http, goal_id, task_id)["state"] == "succeeded")  # fmt: skip
    evidence = task(http, goal_id, task_id)["evidence"]
    assert {"summary": f"did: {goal_text(http, goal_id)}", "attempt": 1} == evidence
    assert [("running", TRACE_ID), ("succeeded", TRACE_ID)] == [
        (e["payload"]["task"]["state"], e["trace_id"]) for e in reports(http, goal_id)
    ]


def goal_text(http: httpx.Client, goal_id: str) -> str:
    text: str = http.get(f"/v1/goals/{goal_id}").json()["text"]
    return text


def test_a_raising_executor_fails_with_its_reason_and_the_goal_is_retried(
    running: tuple[Stack, httpx.Client, subprocess.Popen[bytes]],
) -> None:
    """The job raises: the task failed with `ValueError: <message>` (no traceback), and
    the goal is adopted again for another attempt (GOALSTORE_MAX_ATTEMPTS=2)."""
    stack, http, _ = running
    goal_id, task_id = select(http, stack, **{"raise": "the API said no"})
    wait_for("the failure callback's report",
             lambda: task(http, goal_id, task_id)["state"] == "failed")  # fmt: skip
    assert "ValueError: the API said no" == task(http, goal_id, task_id)["reason"]
    assert "adopted" == http.get(f"/v1/goals/{goal_id}").json()["state"]
    assert {TRACE_ID} == {e["trace_id"] for e in reports(http, goal_id)}


def test_a_worker_killed_mid_job_is_failed_by_the_events_worker_s_sweeper(
    running: tuple[Stack, httpx.Client, subprocess.Popen[bytes]],
) -> None:
    """SIGKILL to the rq worker and its work horse mid-job: no callback runs, and the
    events worker's sweeper reports the task failed within GOALSTORE_TASK_STALE_S and a
    margin; the goal is adopted again."""
    stack, http, worker = running
    goal_id, task_id = select(http, stack, sleep_s=120)
    wait_for("the task to run", lambda: task(http, goal_id, task_id)["state"] == "running")
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait(timeout=10)
    wait_for("the sweeper's report",
             lambda: task(http, goal_id, task_id)["state"] == "failed",
             seconds=STALE_S + 15)  # fmt: skip
    assert "adopted" == http.get(f"/v1/goals/{goal_id}").json()["state"]
    assert [("running", TRACE_ID), ("failed", TRACE_ID)] == [
        (e["payload"]["task"]["state"], e["trace_id"]) for e in reports(http, goal_id)
    ]


def test_the_executor_module_needs_no_goalstore_import(tmp_path: Path) -> None:
    """The user's executor above is plain Python: it runs in an interpreter where
    GoalStore cannot even be imported."""
    (tmp_path / "userexec.py").write_text(USER_EXECUTOR)
    script = ("import importlib.util, userexec; "
              "print(importlib.util.find_spec('service') is None, "
              "userexec.run({'metadata': {}, 'text': 't', 'attempt': 1})['summary'])")  # fmt: skip
    # -S: no site-packages (where GoalStore is installed), -E: no PYTHONPATH.
    out = subprocess.run([sys.executable, "-S", "-E", "-c", script], cwd=tmp_path,
                         capture_output=True, text=True, timeout=30, check=True)  # fmt: skip
    assert "True did: t" == out.stdout.strip()
