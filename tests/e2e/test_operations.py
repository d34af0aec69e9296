"""Operations with real processes: /metrics shows what every process counted, and the
one-command embedded start ranks, selects and executes with nothing else running."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.testing import (
    free_port,
    metric,
    post_adopted_goal,
    post_goal,
    scrape_metrics,
    wait_for,
)
from tests.e2e.conftest import BIN, Stack, process_env, stop, wait_ready

pytestmark = pytest.mark.e2e

ON = {"GOAL_SYSTEM": "on", "GOAL_SHADOW": "off"}


def task_states(client: httpx.Client, goal_id: str) -> list[str]:
    return [t["state"] for t in client.get(f"/v1/goals/{goal_id}/tasks").json()["data"]]


def from_redis(client: httpx.Client) -> dict[str, Any] | None:
    body: dict[str, Any] = client.get("/v1/goals/prioritized").json()
    return body if body["source"] == "redis" and body["data"] else None


def test_metrics_from_web_worker_scheduler_and_the_cli_reach_the_web_s_metrics(
    stack: Stack,
) -> None:
    """The Procfile's web, worker and scheduler plus a `goalstore select` process: a
    scripted run that creates, adopts, blocks and selects; the web's /metrics shows the
    counts each process made (the CLI's selection, the worker's applied events and
    prioritizing, the scheduler's finished tasks) and the store's exact figures."""
    http = stack.serve(**ON)
    stack.worker(**ON)
    stack.spawn("scheduler", **ON)
    with http:
        belief = {"statement": "Never delete user data", "active": True}
        assert 201 == http.put("/v1/beliefs/safety.data", json=belief).status_code
        post_goal(http, id="g-1", value=0.9)
        post_goal(http, id="g-2", value=0.7)
        post_goal(http, id="g-3", value=0.1, category="exploration")
        post_goal(http, id="g-x", contradicts=["safety.data"])
        for goal_id in ("g-1", "g-2", "g-3"):
            assert 200 == http.post(f"/v1/goals/{goal_id}/adopt").status_code
        assert 409 == http.post("/v1/goals/g-x/adopt").status_code
        wait_for("the adopted goals in Redis",
                 lambda: stack.redis.client().zcard("goalstore:ranked") == 3)  # fmt: skip

        assert "emitted" == http.post("/v1/goals/select").json()["mode"]  # the web process
        cli = stack.goalstore("select", **ON)
        assert 0 == cli.returncode, cli.stderr
        for goal_id in ("g-1", "g-2"):
            wait_for(f"{goal_id}'s task to succeed",
                     lambda g=goal_id: task_states(http, g) == ["succeeded"])  # type: ignore[misc]  # fmt: skip
        wait_for("every event applied", lambda: stack.unapplied() == 0)
        samples = scrape_metrics(http)

    with sqlite3.connect(stack.database) as conn:
        outbox_rows = conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
    assert 3 == metric(samples, "goals_adopted_total")
    assert 2 == metric(samples, "goal_selected_total")  # one by the web, one by the CLI process
    assert 1 == metric(samples, "goal_blocked_by_belief_total", belief_id="safety.data")
    assert 2 == metric(samples, "goal_select_latency_seconds_count")
    assert 2 == metric(samples, "goalstore_tasks_finished_total", state="succeeded")  # scheduler
    assert outbox_rows == metric(samples, "goalstore_events_applied_total")  # the events worker
    assert 1 <= metric(samples, "goal_prioritize_latency_seconds_count")
    assert 2 == metric(samples, "goals_by_state", state="executing")
    assert 1 == metric(samples, "goals_total", category="exploration", state="adopted")
    assert 1 == metric(samples, "goals_total", category="maintenance", state="proposed")
    assert 2 == metric(samples, "goalstore_tasks", state="succeeded")
    assert 0 == metric(samples, "goalstore_queue_depth", queue="scheduler")
    assert (0, 0) == (metric(samples, "goalstore_outbox_pending"),
                      metric(samples, "goalstore_outbox_lag_seconds"))  # fmt: skip
    assert (1, 1) == (
        metric(samples, "goalstore_redis_up"),
        metric(samples, "goalstore_cache_warm"),
    )
    assert 0 <= metric(samples, "goalstore_cache_staleness_seconds") < 60


def test_the_embedded_start_ranks_selects_and_executes_with_nothing_else(
    tmp_path: Path,
) -> None:
    """`goalstore serve` with GOALSTORE_REDIS_URL unset (the README's run command): it
    says it is embedded; a goal is ranked from the in-process Redis, selected, executed
    by the in-process scheduler worker, and counted; SQLite is under ./data."""
    port = free_port()
    env = process_env(PORT=str(port), GOALSTORE_TICK_SECONDS="1", **ON)
    log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [str(BIN / "goalstore"), "serve"], env=env, cwd=tmp_path, stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_ready(f"http://127.0.0.1:{port}", process)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            post_adopted_goal(http, id="g-1")
            body = wait_for("the goal ranked from the embedded Redis", lambda: from_redis(http))
            assert ["g-1"] == [item["goal_id"] for item in body["data"]]
            selected = http.post("/v1/goals/select").json()
            assert ("emitted", "g-1") == (selected["mode"], selected["goal"]["id"])
            wait_for("the embedded scheduler's report",
                     lambda: task_states(http, "g-1") == ["succeeded"])  # fmt: skip
            samples = scrape_metrics(http)
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()

    output = (tmp_path / "serve.log").read_text()
    assert "EMBEDDED MODE" in output
    assert "GOALSTORE_REDIS_URL" in output
    assert (tmp_path / "data" / "goalstore.db").exists()
    assert 1 == metric(samples, "goal_selected_total")
    assert 1 == metric(samples, "goalstore_tasks_finished_total", state="succeeded")
    assert 1 == metric(samples, "goalstore_redis_up")


def test_the_embedded_server_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    """SIGTERM stops the API and its worker threads: exit as uvicorn does, no traceback."""
    port = free_port()
    env = process_env(PORT=str(port))
    process = subprocess.Popen(
        [str(BIN / "goalstore"), "serve"], env=env, cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    wait_ready(f"http://127.0.0.1:{port}", process)

    output = stop(process)

    assert "Traceback" not in output
    assert "Application shutdown complete" in output
