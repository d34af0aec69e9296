"""Tasks and the verification gate over real HTTP (issue 15), on both engines and a real
Redis: task versions and stale reviews, manual tasks, acceptance criteria at the gate,
the result and progress on the goal, GoalFailures, and the ledger replaying all of it.

Every expectation is written out by hand; "nothing written" is checked by counting
the store's rows before and after a refusal.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from redis import Redis

from service.commands import Context
from service.testing import goal_spec, row_counts
from tests.integration.conftest import CliRunner, LiveServer, ServerFactory
from workers.sweeper import RqJobProbe

PROBLEM = "application/problem+json"


@pytest.fixture
def live(start_server: ServerFactory, redis_client: Redis, redis_url: str) -> LiveServer:
    """A keyless server (the caller acts as admin, with every scope), selecting for real."""
    return start_server(
        redis_url=redis_url, redis_prefix="goalstore-test:", scheduler_queue="scheduler-test",
        GOAL_SYSTEM=True, GOAL_SHADOW=False, max_attempts=2,
    )  # fmt: skip


@pytest.fixture
def http(live: LiveServer) -> Any:
    with live.client() as client:
        yield client


def _create(http: httpx.Client, **spec: Any) -> str:
    created = http.post("/v1/goals", json=goal_spec(**spec))
    assert 201 == created.status_code, created.text
    goal_id: str = created.json()["id"]
    return goal_id


def _adopted(http: httpx.Client, **spec: Any) -> str:
    goal_id = _create(http, **spec)
    assert 200 == http.post(f"/v1/goals/{goal_id}/adopt").status_code
    return goal_id


def _selected(http: httpx.Client, **spec: Any) -> tuple[str, dict[str, Any]]:
    """An adopted goal, selected through the API: its id and its task as served."""
    goal_id = _adopted(http, **spec)
    selection = http.post("/v1/goals/select").json()
    assert ("emitted", goal_id) == (selection["mode"], selection["goal"]["id"]), selection
    task: dict[str, Any] = selection["task"]
    return goal_id, task


def _report(http: httpx.Client, goal_id: str, task_id: str, state: str, **body: Any) -> Any:
    reported = http.post(f"/v1/goals/{goal_id}/tasks/{task_id}/report",
                         json={"state": state, **body})  # fmt: skip
    assert 200 == reported.status_code, reported.text
    return reported.json()


def _goal(http: httpx.Client, goal_id: str) -> Any:
    return http.get(f"/v1/goals/{goal_id}").json()


def _events(live: LiveServer, goal_id: str) -> list[Any]:
    return live.services.goalstore.goal_history(goal_id)


def _replays(live: LiveServer) -> None:
    report = live.services.goalstore.replay_check()
    assert (True, []) == (report.ok, report.differences)


def test_every_task_change_bumps_its_version_and_a_stale_review_is_a_conflict(
    live: LiveServer, http: httpx.Client
) -> None:
    """A selected task is version 1, origin selection; running, succeeded and verified are
    versions 2, 3, 4. A verify naming version 2 is a 409 task-version-conflict naming
    version 3, with a committed goal_conflict_detected event and nothing else changed;
    the same verify naming 3 succeeds, and repeating it changes nothing. The review
    moves the goal's progress (a goal_progressed event) but not its version."""
    goal_id, task = _selected(http)
    task_id = task["task_id"]
    assert (1, "selection", "queued") == (task["version"], task["origin"], task["state"])
    assert 2 == _report(http, goal_id, task_id, "running")["version"]
    assert 3 == _report(http, goal_id, task_id, "succeeded", evidence={"url": "x"})["version"]
    goal_version = _goal(http, goal_id)["version"]
    rows = row_counts(live.services.db.connection())

    stale = http.post(f"/v1/goals/{goal_id}/tasks/{task_id}/verify",
                      json={"expected_version": 2})  # fmt: skip

    assert (409, PROBLEM) == (stale.status_code, stale.headers["content-type"])
    body = stale.json()
    assert ("urn:goalstore:problem:task-version-conflict", task_id, 2, 3) == (
        body["type"], body["task_id"], body["expected_version"], body["current_version"]
    )  # fmt: skip
    conflict = _events(live, goal_id)[-1]
    assert ("goal_conflict_detected", {"action": "verify", "task_id": task_id,
            "expected_version": 2, "current_version": 3}) == (
        conflict.event_type, conflict.payload
    )  # fmt: skip
    after = row_counts(live.services.db.connection())
    assert (rows["ledger"] + 1, rows["goals"]) == (after["ledger"], after["goals"])
    [unchanged] = http.get(f"/v1/goals/{goal_id}/tasks").json()["data"]
    assert ("succeeded", 3) == (unchanged["state"], unchanged["version"])

    verified = http.post(f"/v1/goals/{goal_id}/tasks/{task_id}/verify",
                         json={"expected_version": 3})  # fmt: skip
    again = http.post(f"/v1/goals/{goal_id}/tasks/{task_id}/verify",
                      json={"expected_version": 3})  # fmt: skip

    assert (200, "verified", 4) == (
        verified.status_code, verified.json()["state"], verified.json()["version"]
    )  # fmt: skip
    assert (200, 4) == (again.status_code, again.json()["version"])
    goal = _goal(http, goal_id)
    assert (goal_version, 1.0) == (goal["version"], goal["progress"])
    progressed = [e for e in _events(live, goal_id) if e.event_type == "goal_progressed"]
    assert [{"set": {"progress": 1.0}, "from": 0.0, "task_id": task_id}] == [
        e.payload for e in progressed
    ]
    _replays(live)


def test_a_stale_satisfy_is_a_conflict_event_and_the_result_stays_on_the_goal(
    live: LiveServer, http: httpx.Client
) -> None:
    """satisfy naming an old version: 409 version-conflict and a goal_conflict_detected
    event (it used to write nothing), the goal still executing. With the current
    version: satisfied, and GET shows the typed result, which the goal_satisfied event
    sets (so replay has it)."""
    goal_id, task = _selected(http)
    _report(http, goal_id, task["task_id"], "succeeded", evidence="log")
    assert 200 == http.post(f"/v1/goals/{goal_id}/tasks/{task['task_id']}/verify").status_code
    version = _goal(http, goal_id)["version"]
    result = {"summary": "done", "success_metrics": {"coherence": 0.8}}

    stale = http.post(f"/v1/goals/{goal_id}/satisfy",
                      json={"result": result, "expected_version": version - 1})  # fmt: skip

    assert (409, "urn:goalstore:problem:version-conflict", version) == (
        stale.status_code, stale.json()["type"], stale.json()["current_version"]
    )  # fmt: skip
    conflict = _events(live, goal_id)[-1]
    assert ("goal_conflict_detected", {"action": "satisfy", "expected_version": version - 1,
            "current_version": version}) == (conflict.event_type, conflict.payload)  # fmt: skip
    assert ("executing", None) == (_goal(http, goal_id)["state"], _goal(http, goal_id)["result"])

    done = http.post(f"/v1/goals/{goal_id}/satisfy",
                     json={"result": result, "expected_version": version})  # fmt: skip

    assert (200, "satisfied") == (done.status_code, done.json()["state"])
    assert result == _goal(http, goal_id)["result"]
    satisfied = _events(live, goal_id)[-2]  # then the goal_selected outcome
    assert ("goal_satisfied", result) == (satisfied.event_type, satisfied.payload["set"]["result"])
    _replays(live)


def test_manual_tasks_start_or_join_the_work_and_pass_the_gate_like_any(
    live: LiveServer, http: httpx.Client
) -> None:
    """POST /tasks: refused on a proposed goal and on a manually blocked one (409, nothing
    written); on an adopted goal it starts it (executing, version + 1, goal_task_added
    naming the task), on an executing one it adds a live task (attempt 2, the goal
    version before the bump); a stale expected_version is a conflict. Reported and
    verified through the same endpoints, both count at the gate."""
    gs = live.services.goalstore
    goal_id = _create(http)
    rows = row_counts(gs.db.connection())
    proposed = http.post(f"/v1/goals/{goal_id}/tasks", json={"note": "too early"})
    assert (409, "urn:goalstore:problem:illegal-transition", "proposed") == (
        proposed.status_code, proposed.json()["type"], proposed.json()["current_state"]
    )  # fmt: skip
    assert (rows, []) == (row_counts(gs.db.connection()), gs.list_tasks(goal_id))
    assert 200 == http.post(f"/v1/goals/{goal_id}/adopt").status_code
    assert 200 == http.post(f"/v1/goals/{goal_id}/block", json={"reason": "legal"}).status_code
    rows = row_counts(gs.db.connection())
    blocked = http.post(f"/v1/goals/{goal_id}/tasks", json={})
    assert (409, "urn:goalstore:problem:goal-manually-blocked", "legal") == (
        blocked.status_code, blocked.json()["type"], blocked.json()["reason"]
    )  # fmt: skip
    assert (rows, []) == (row_counts(gs.db.connection()), gs.list_tasks(goal_id))
    assert 200 == http.post(f"/v1/goals/{goal_id}/unblock").status_code
    adopted_version = _goal(http, goal_id)["version"]

    first = http.post(f"/v1/goals/{goal_id}/tasks",
                      json={"evidence": {"session": "chat-42"}, "note": "paired on it",
                            "expected_version": adopted_version})  # fmt: skip

    assert 201 == first.status_code, first.text
    task1 = first.json()
    assert ("manual", "running", 1, adopted_version, 1, {"session": "chat-42"}) == (
        task1["origin"], task1["state"], task1["attempt"], task1["goal_version"],
        task1["version"], task1["evidence"],
    )  # fmt: skip
    goal = _goal(http, goal_id)
    assert ("executing", adopted_version + 1) == (goal["state"], goal["version"])
    added = _events(live, goal_id)[-1]
    assert ("goal_task_added", "add_task", "executing") == (
        added.event_type, added.payload["action"], added.payload["set"]["state"]
    )  # fmt: skip
    assert {"task_id": task1["task_id"], "origin": "manual", "state": "running",
            "evidence": {"session": "chat-42"}, "note": "paired on it",
            "attempt": 1} == added.payload["task"]  # fmt: skip

    stale = http.post(f"/v1/goals/{goal_id}/tasks", json={"expected_version": adopted_version})
    assert (409, "goal_conflict_detected") == (
        stale.status_code, _events(live, goal_id)[-1].event_type
    )  # fmt: skip
    second = http.post(f"/v1/goals/{goal_id}/tasks", json={"note": "a second session"}).json()
    assert (2, adopted_version + 1) == (second["attempt"], second["goal_version"])
    assert adopted_version + 2 == _goal(http, goal_id)["version"]

    _report(http, goal_id, task1["task_id"], "succeeded", evidence="pr-7 merged")
    _report(http, goal_id, second["task_id"], "succeeded", evidence="pr-8 merged")
    assert 200 == http.post(f"/v1/goals/{goal_id}/tasks/{task1['task_id']}/verify").status_code
    closed = http.post(f"/v1/goals/{goal_id}/satisfy", json={"result": {"summary": "done"}})
    assert (409, 2, 1) == (closed.status_code, closed.json()["live"], closed.json()["verified"])
    assert 0.5 == _goal(http, goal_id)["progress"]
    assert 200 == http.post(f"/v1/goals/{goal_id}/tasks/{second['task_id']}/verify").status_code
    done = http.post(f"/v1/goals/{goal_id}/satisfy", json={"result": {"summary": "done"}})
    assert (200, "satisfied", 1.0) == (
        done.status_code, done.json()["state"], done.json()["progress"]
    )  # fmt: skip
    finished = http.post(f"/v1/goals/{goal_id}/tasks", json={})
    assert (409, "satisfied") == (finished.status_code, finished.json()["current_state"])
    _replays(live)


def test_the_gate_needs_every_acceptance_criterion_met(
    live: LiveServer, http: httpx.Client
) -> None:
    """All tasks verified but criteria unreviewed: 409 gate-closed naming both unmet
    criteria, the goal still executing and nothing written; one met: names the other;
    both met: satisfied."""
    gs = live.services.goalstore
    criteria = [{"id": "tests", "text": "the tests pass"}, {"id": "docs", "text": "documented"}]
    goal_id, task = _selected(http, criteria=criteria)
    _report(http, goal_id, task["task_id"], "succeeded", evidence="ok")
    assert 200 == http.post(f"/v1/goals/{goal_id}/tasks/{task['task_id']}/verify").status_code
    rows = row_counts(gs.db.connection())

    closed = http.post(f"/v1/goals/{goal_id}/satisfy", json={"result": {"summary": "done"}})

    body = closed.json()
    assert (409, "urn:goalstore:problem:gate-closed", ["tests", "docs"], 1, 1) == (
        closed.status_code, body["type"], body["unmet_criteria"], body["live"], body["verified"]
    )  # fmt: skip
    assert ("executing", rows) == (_goal(http, goal_id)["state"], row_counts(gs.db.connection()))
    reviewed = http.post(f"/v1/goals/{goal_id}/criteria/tests/review",
                         json={"met": True, "evidence": "CI green"})  # fmt: skip
    assert 200 == reviewed.status_code, reviewed.text
    one_left = http.post(f"/v1/goals/{goal_id}/satisfy", json={"result": {"summary": "done"}})
    assert (409, ["docs"]) == (one_left.status_code, one_left.json()["unmet_criteria"])
    assert 200 == http.post(f"/v1/goals/{goal_id}/criteria/docs/review",
                            json={"met": True}).status_code  # fmt: skip

    done = http.post(f"/v1/goals/{goal_id}/satisfy", json={"result": {"summary": "done"}})

    assert (200, "satisfied") == (done.status_code, done.json()["state"])
    _replays(live)


def test_goal_failures_validation_execution_and_address(
    live: LiveServer, http: httpx.Client
) -> None:
    """An invalid result: 422 with error_type validation, a suggestion per field and
    debug_info (goal type, errors), kept as last_failure without a version bump. Two
    failed attempts (max_attempts 2): the goal is abandoned with an execution failure
    naming the attempts, the last reason and task; the retry superseded attempt 1
    (its version moved on). A report for a task the goal does not have: a 404 whose
    error_type is address. The ledger replays to the table."""
    goal_id, task = _selected(http, goal_type="metric_delta", success_metrics={"recall": 0.8})
    _report(http, goal_id, task["task_id"], "succeeded", evidence="ok")
    assert 200 == http.post(f"/v1/goals/{goal_id}/tasks/{task['task_id']}/verify").status_code
    version = _goal(http, goal_id)["version"]

    invalid = http.post(f"/v1/goals/{goal_id}/satisfy",
                        json={"result": {"colour": "red"}})  # fmt: skip

    body = invalid.json()
    assert (422, "urn:goalstore:problem:invalid-result", "validation") == (
        invalid.status_code, body["type"], body["error_type"]
    )  # fmt: skip
    locs = sorted(e["loc"] for e in body["errors"])
    assert [["result", "achieved"], ["result", "colour"]] == locs
    assert any("remove `result.colour`" in s for s in body["suggestions"]), body["suggestions"]
    assert any("add `result.achieved`" in s for s in body["suggestions"]), body["suggestions"]
    assert ("metric_delta", body["errors"]) == (
        body["debug_info"]["goal_type"], body["debug_info"]["errors"]
    )  # fmt: skip
    goal = _goal(http, goal_id)
    assert ("executing", version, "validation", body["errors"]) == (
        goal["state"], goal["version"], goal["last_failure"]["error_type"],
        goal["last_failure"]["errors"],
    )  # fmt: skip
    assert "goal_failure_recorded" == _events(live, goal_id)[-1].event_type

    failing, first = _selected(http, text="Rotate the keys")
    _report(http, failing, first["task_id"], "failed", reason="tool crashed")
    assert "adopted" == _goal(http, failing)["state"]
    second = http.post("/v1/goals/select").json()["task"]
    assert 2 == second["attempt"]
    old = http.get(f"/v1/goals/{failing}/tasks").json()["data"][0]
    assert (True, 3) == (old["superseded"], old["version"])  # queued, failed, superseded
    _report(http, failing, second["task_id"], "failed", reason="disk full")

    abandoned = _goal(http, failing)
    failure = abandoned["last_failure"]
    assert ("abandoned", "execution", second["task_id"]) == (
        abandoned["state"], failure["error_type"], failure["task_id"]
    )  # fmt: skip
    assert (2, 2, "disk full", second["task_id"]) == (
        failure["debug_info"]["failed_attempts"], failure["debug_info"]["max_attempts"],
        failure["debug_info"]["last_reason"], failure["debug_info"]["task_id"],
    )  # fmt: skip
    assert failure["suggestions"] and "disk full" in failure["detail"]

    unknown = http.post(f"/v1/goals/{failing}/tasks/t-0000000000000000/report",
                        json={"state": "running"})  # fmt: skip
    assert (404, "urn:goalstore:problem:task-not-found", "address") == (
        unknown.status_code, unknown.json()["type"], unknown.json()["error_type"]
    )  # fmt: skip
    _replays(live)


def test_the_cli_lists_adds_reviews_and_satisfies(
    live: LiveServer, http: httpx.Client, run_cli: CliRunner, database_location: str
) -> None:
    """`goalstore tasks list --goal-id` prints what GET …/tasks serves; `tasks add`,
    `tasks report`, `tasks verify` (a stale --expected-version exits 4, the conflict
    code) and `goals satisfy` do what their REST routes do; `ledger replay --check`
    passes afterwards."""
    goal_id = _adopted(http)

    code, added = run_cli(database_location, "tasks", "add", goal_id, "--evidence",
                          '{"pr": 7}', "--note", "done by hand")  # fmt: skip
    assert (0, "manual", {"pr": 7}) == (code, added["origin"], added["evidence"])
    code, listed = run_cli(database_location, "tasks", "list", "--goal-id", goal_id)
    assert (0, http.get(f"/v1/goals/{goal_id}/tasks").json()["data"]) == (code, listed)
    code, reported = run_cli(database_location, "tasks", "report", added["task_id"],
                             "--state", "succeeded")  # fmt: skip
    assert (0, "succeeded", 2) == (code, reported["state"], reported["version"])
    code, refused = run_cli(database_location, "tasks", "verify", goal_id, added["task_id"],
                            "--expected-version", "1")  # fmt: skip
    assert (4, 2) == (code, refused["current_version"])
    code, verified = run_cli(database_location, "tasks", "verify", goal_id, added["task_id"],
                             "--expected-version", "2")  # fmt: skip
    assert (0, "verified") == (code, verified["state"])
    code, satisfied = run_cli(database_location, "goals", "satisfy", goal_id, "--result",
                              '{"summary": "merged"}')  # fmt: skip
    assert (0, "satisfied", {"summary": "merged", "success_metrics": {}}) == (
        code, satisfied["state"], satisfied["result"]
    )  # fmt: skip
    code, replay = run_cli(database_location, "ledger", "replay", "--check")
    assert 0 == code, replay


def test_the_sweep_leaves_a_manual_task_alone(
    live: LiveServer, http: httpx.Client, redis_client: Redis
) -> None:
    """A manual task has no scheduler job: the sweep, which fails open tasks whose job is
    gone, passes over it however long it stays running; a selected task beside it whose
    job vanished is failed."""
    goal_id = _adopted(http)
    manual = http.post(f"/v1/goals/{goal_id}/tasks", json={"note": "long session"}).json()
    _, selected = _selected(http, text="Archive the old logs")
    redis_client.delete(f"rq:job:{selected['task_id']}")
    later = Context(actor="sweeper", clock=lambda: datetime.now(UTC) + timedelta(hours=5))

    swept = live.services.goalstore.sweep_tasks(later, RqJobProbe(redis_client))

    assert [selected["task_id"]] == [t.task_id for t in swept]
    [still] = http.get(f"/v1/goals/{goal_id}/tasks").json()["data"]
    assert (manual["task_id"], "running") == (still["task_id"], still["state"])


def test_starting_a_goal_by_hand_meets_the_rankings_blocks(
    live: LiveServer, http: httpx.Client
) -> None:
    """A manual task may not start a goal selection would refuse: one whose dependency is
    not satisfied, or that contradicts a belief made active after its adoption (409
    goal-blocked naming the reason and what it is about, nothing written); once the
    dependency is gone the same request starts it."""
    gs = live.services.goalstore
    first = _adopted(http)
    waiting = _adopted(http, depends_on=[first])
    assert (
        201 == http.put("/v1/beliefs/b.quiet", json={"statement": "s", "active": False}).status_code
    )
    contrary = _adopted(http, contradicts=["b.quiet"])
    assert (
        200 == http.put("/v1/beliefs/b.quiet", json={"statement": "s", "active": True}).status_code
    )
    rows = row_counts(gs.db.connection())

    refused = [http.post(f"/v1/goals/{g}/tasks", json={}) for g in (waiting, contrary)]

    assert [(409, "urn:goalstore:problem:goal-blocked")] * 2 == [
        (r.status_code, r.json()["type"]) for r in refused
    ]  # fmt: skip
    assert [("dependency_unsatisfied", first), ("contradicts_belief", "b.quiet")] == [
        (r.json()["reasons"][0]["reason"], r.json()["reasons"][0]["ref"]) for r in refused
    ]  # fmt: skip
    assert rows == row_counts(gs.db.connection())
    assert ["adopted", "adopted"] == [_goal(http, g)["state"] for g in (waiting, contrary)]
    assert 200 == http.patch(f"/v1/goals/{waiting}", headers={"If-Match": '"2"'},
                             json={"depends_on": []}).status_code  # fmt: skip
    started = http.post(f"/v1/goals/{waiting}/tasks", json={})
    assert (201, "executing") == (started.status_code, _goal(http, waiting)["state"])


def test_work_recorded_by_hand_is_not_judged_as_a_selection(
    live: LiveServer, http: httpx.Client
) -> None:
    """A goal done only by manual tasks is satisfied without a goal_selected outcome (no
    selection to judge), and its tasks do not count in goalstore_tasks_finished_total,
    which the rollback alert reads; a selected goal still records its outcome."""
    gs = live.services.goalstore
    by_hand = _adopted(http)
    task = http.post(f"/v1/goals/{by_hand}/tasks", json={}).json()
    _report(http, by_hand, task["task_id"], "succeeded")
    assert 200 == http.post(f"/v1/goals/{by_hand}/tasks/{task['task_id']}/verify").status_code
    assert (
        200
        == http.post(f"/v1/goals/{by_hand}/satisfy", json={"result": {"summary": "x"}}).status_code
    )
    selected, picked = _selected(http)
    _report(http, selected, picked["task_id"], "succeeded")
    assert 200 == http.post(f"/v1/goals/{selected}/tasks/{picked['task_id']}/verify").status_code
    assert (
        200
        == http.post(f"/v1/goals/{selected}/satisfy", json={"result": {"summary": "y"}}).status_code
    )

    judged = [o["goal_id"] for o in gs.list_outcomes("goal_selected")]
    finished = http.get("/metrics").text

    assert [selected] == judged
    assert 'goalstore_tasks_finished_total{state="succeeded"} 1.0' in finished


def test_unbounded_evidence_is_refused_everywhere_without_a_trace(
    live: LiveServer, http: httpx.Client, run_cli: CliRunner, database_location: str
) -> None:
    """Evidence nested deeper than metadata may be is a 422 on POST /tasks and on a
    report (REST) and exit 5 from `goalstore tasks add` (CLI), writing nothing; a manual
    task's note past 4000 characters is refused the same way."""
    gs = live.services.goalstore
    goal_id = _adopted(http)
    deep: Any = "leaf"
    for _ in range(300):
        deep = [deep]
    rows = row_counts(gs.db.connection())

    added = http.post(f"/v1/goals/{goal_id}/tasks", json={"evidence": deep})
    code, _ = run_cli(database_location, "tasks", "add", goal_id,
                      "--evidence", "[" * 300 + '"leaf"' + "]" * 300)  # fmt: skip
    long_note, _ = run_cli(database_location, "tasks", "add", goal_id, "--note", "x" * 4001)

    assert (422, 5, 5) == (added.status_code, code, long_note)
    assert rows == row_counts(gs.db.connection())
    task = http.post(f"/v1/goals/{goal_id}/tasks", json={}).json()
    reported = http.post(f"/v1/goals/{goal_id}/tasks/{task['task_id']}/report",
                         json={"state": "succeeded", "evidence": deep})  # fmt: skip
    assert (422, "running") == (reported.status_code, gs.list_tasks(goal_id)[0].state.value)
