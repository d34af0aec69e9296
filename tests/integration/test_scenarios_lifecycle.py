"""Scenarios over a goal's whole lifecycle (seed 003's TODO → IN_PROGRESS → DONE), through
`goalstore apply-scenario` on each engine: the shipped plan flow, selection on a real
Redis, task references, a run that finds its first step applied, and --from-step.

Every expected count is counted by hand from the scenario it belongs to.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from redis import Redis
from rq import Queue

from service import cli
from service.testing import goal_spec
from tests.integration.conftest import CliRunner
from tests.integration.test_cli_and_scenario import NOTHING, REPO, Cli, write_json

PLAN_FLOW = "deploy/scenarios/plan_flow_003.json"
LIVE = {"GOAL_SYSTEM": "true", "GOAL_SHADOW": "false"}  # selection hands out tasks


@pytest.fixture
def run(database_location: str, run_cli: CliRunner) -> Cli:
    return Cli(database_location, run_cli)


def counted(out: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {key: out[key] for key in ("ok", "applied", "events_written", *keys)}


def scenario_file(tmp_path: Path, steps: list[dict[str, Any]], name: str = "s") -> str:
    """A scenario in the working directory (tmp_path): its path relative to it."""
    write_json(tmp_path / f"{name}.json", {"name": name, "actor": "planner", "steps": steps})
    return f"{name}.json"


def task_events(run: Cli, goal_id: str) -> list[dict[str, Any]]:
    _, timeline = run("ledger", "timeline", "--goal-id", goal_id)
    return [e for e in timeline["data"] if "task" in e["payload"]]


# --- the shipped plan flow --------------------------------------------------------------


def test_plan_flow_runs_from_creation_to_a_satisfied_goal(
    run: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """plan_flow_003 applies whole: G-PLAN-001 ends satisfied with its typed result, both
    criteria met, the chat session linked, no block, progress 1, two notes; the stale
    update of G-PLAN-002 is the one conflict; the ledger verifies and replays, and the
    extended healthcheck passes."""
    monkeypatch.chdir(REPO)

    code, out = run("apply-scenario", PLAN_FLOW)

    # 16 steps, 17 events: one each, plus the verified task's goal_progressed (no
    # goal_selected outcome: the work was recorded by hand, not handed over by a selection).
    assert (0, "PLAN_FLOW_003") == (code, out["scenario"])
    assert {
        "ok": True, "applied": 16, "events_written": 17, "created": 2, "adopted": 1,
        "noted": 2, "blocked": 1, "unblocked": 1, "linked": 1, "tasks_added": 1,
        "reported": 1, "verified": 1, "criteria_reviewed": 2, "updated": 1, "satisfied": 1,
        "unchanged": 0,
    } == counted(out, "created", "adopted", "noted", "blocked", "unblocked", "linked",
                 "tasks_added", "reported", "verified", "criteria_reviewed", "updated",
                 "satisfied", "unchanged")  # fmt: skip
    assert [(15, "update", "G-PLAN-002", "VersionConflict")] == [
        (c["step"], c["op"], c["goal_id"], c["error"]) for c in out["conflicts"]
    ]
    _, goal = run("goals", "show", "G-PLAN-001")
    assert ("satisfied", "codex", 1.0, None) == (
        goal["state"], goal["assigned_to"], goal["progress"], goal["manual_block"]
    )  # fmt: skip
    assert {"summary": "Schema and CLI skeleton in place",
            "achieved": {"cli_commands": 4.0}} == goal["result"]  # fmt: skip
    assert [("schema", True), ("cli", True)] == [(c["id"], c["met"]) for c in goal["criteria"]]
    assert [("chat_session", "codex-session-2025-12-24", "codex")] == [
        (link["kind"], link["ref"], link["actor"]) for link in goal["links"]
    ]
    _, notes = run("notes", "list", "G-PLAN-001")
    assert [("blocker", "codex"), ("decision", "liam")] == [
        (n["kind"], n["actor"]) for n in notes["data"]
    ]  # newest first
    _, other = run("goals", "show", "G-PLAN-002")
    assert ("proposed", 2, 0.7, ["G-PLAN-001"]) == (
        other["state"], other["version"], other["value"], other["related"]
    )  # fmt: skip
    verify_code, verified = run("ledger", "verify")
    replay_code, replayed = run("ledger", "replay", "--check")
    assert (0, True, 0, True, []) == (
        verify_code, verified["ok"], replay_code, replayed["ok"], replayed["differences"]
    )  # fmt: skip
    health_code, health = run("healthcheck", "--extended")
    assert (0, True, "ok") == (health_code, health["ok"], health["checks"]["ledger"]["status"])
    events = task_events(run, "G-PLAN-001")
    assert ["goal_task_added", "task_reported", "task_reviewed"] == [
        e["event_type"] for e in events
    ]
    assert 1 == len({e["payload"]["task"]["task_id"] for e in events})


def test_plan_flow_run_again_says_it_ran_before_and_writes_nothing(
    database_location: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same file again: exit 4, the first step named as already applied, a
    --from-step hint, no event written, and no traceback on stderr."""
    monkeypatch.chdir(REPO)
    argv = ["--database", database_location, "apply-scenario", PLAN_FLOW]
    assert 0 == cli.main(argv)
    first = orjson.loads(capsys.readouterr().out)

    code = cli.main(argv)
    captured = capsys.readouterr()
    again = orjson.loads(captured.out)

    assert (4, False, True, 0, 0) == (
        code, again["ok"], again["already_applied"], again["applied"], again["events_written"]
    )  # fmt: skip
    assert {"step": 1, "op": "create", "error": "AlreadyApplied",
            "detail": "step 1 (create goal G-PLAN-001) is already applied: this scenario ran "
                      "before; use --from-step N to resume at the first step not applied "
                      "yet"} == again["failure"]  # fmt: skip
    assert "Traceback" not in captured.err
    assert "already applied" in captured.err
    assert 0 == cli.main(["--database", database_location, "ledger", "checkpoint"])
    assert first["events_written"] == orjson.loads(capsys.readouterr().out)["seq"]


# --- --from-step ------------------------------------------------------------------------


def _gated_steps(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"op": "create", "goal": goal_spec(id="A")},
        {"op": "adopt", "goal_id": "A"},
        {"op": "add_task", "goal_id": "A", "evidence": "done by hand"},
        {"op": "report", "goal_id": "A", "task": "$last", "state": "succeeded"},
        {"op": "verify", "goal_id": "A"},
        {"op": "satisfy", "goal_id": "A", "result": result},
        {"op": "note", "goal_id": "A", "kind": "info", "text": "closed"},
    ]


def test_from_step_resumes_a_run_that_stopped(
    run: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run stops at step 6 (a result invalid for the goal type: exit 1, 5 applied). The
    file fixed, `--from-step 6` applies steps 6-7 only; the goal is satisfied. From step 1
    the run is refused as already applied (exit 4)."""
    monkeypatch.chdir(tmp_path)
    path = scenario_file(tmp_path, _gated_steps({"summary": ""}))

    code, stopped = run("apply-scenario", path)
    scenario_file(tmp_path, _gated_steps({"summary": "shipped"}))
    resumed_code, resumed = run("apply-scenario", path, "--from-step", "6")
    again_code, again = run("apply-scenario", path)

    assert (1, False, 5) == (code, stopped["ok"], stopped["applied"])
    assert (6, "ResultInvalid") == (stopped["failure"]["step"], stopped["failure"]["error"])
    assert (0, True, 6, 2, 1, 1) == (
        resumed_code, resumed["ok"], resumed["from_step"], resumed["applied"],
        resumed["satisfied"], resumed["noted"],
    )  # fmt: skip
    _, goal = run("goals", "show", "A")
    assert ("satisfied", {"summary": "shipped", "success_metrics": {}}) == (
        goal["state"], goal["result"]
    )  # fmt: skip
    assert (4, "AlreadyApplied", 1) == (again_code, again["failure"]["error"],
                                        again["failure"]["step"])  # fmt: skip


def test_from_step_whose_step_is_applied_is_refused_as_already_applied(
    run: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Resuming too early: step 2 (adopt) of a goal already adopted changes nothing, so
    the run stops at once with exit 4 naming step 2."""
    monkeypatch.chdir(tmp_path)
    path = scenario_file(tmp_path, _gated_steps({"summary": "ok"})[:2])
    assert 0 == run("apply-scenario", path)[0]

    code, out = run("apply-scenario", path, "--from-step", "2")

    assert (4, 2, 0) == (code, out["failure"]["step"], out["events_written"])
    assert out["failure"]["detail"].startswith("step 2 (adopt goal A) is already applied")


@pytest.mark.parametrize("from_step", ["0", "8", "-1"])
def test_from_step_outside_the_file_is_invalid(
    run: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, from_step: str
) -> None:
    """--from-step must name one of the file's steps (1-7 here): exit 5, nothing written."""
    monkeypatch.chdir(tmp_path)
    path = scenario_file(tmp_path, _gated_steps({"summary": "ok"}))

    code, out = run("apply-scenario", path, "--from-step", from_step)

    assert (5, "invalid") == (code, out["error"])
    assert "this scenario has steps 1 to 7" in out["detail"]
    assert NOTHING == run.counts()


def test_from_step_after_the_task_maker_refuses_last(
    run: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From step 4 on, step 4's "$last" has no add_task before it: exit 5 before any step."""
    monkeypatch.chdir(tmp_path)
    path = scenario_file(tmp_path, _gated_steps({"summary": "ok"}))

    code, out = run("apply-scenario", path, "--from-step", "4")

    assert (5, "invalid") == (code, out["error"])
    assert out["detail"].startswith('step 4 (report) names the task "$last"')
    assert NOTHING == run.counts()


# --- selection on a real Redis -----------------------------------------------------------


def _two_adopted() -> list[dict[str, Any]]:
    return [
        {"op": "create", "goal": goal_spec(id="HI", value=0.9)},
        {"op": "create", "goal": goal_spec(id="LO", value=0.1)},
        {"op": "adopt", "goal_id": "HI"},
        {"op": "adopt", "goal_id": "LO"},
    ]


def test_select_report_review_satisfy_with_the_scheduler_on_redis(
    run: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_url: str,
    redis_client: Redis,
) -> None:  # fmt: skip
    """Live selection hands HI to the scheduler queue on Redis (job id = task id); the
    task is reported running then succeeded, a review naming a stale task version is the
    expected conflict, the one naming the current version verifies it, and the gate lets
    the result through."""
    monkeypatch.chdir(tmp_path)
    for name, value in (LIVE | {"GOALSTORE_REDIS_URL": redis_url}).items():
        monkeypatch.setenv(name, value)
    steps = [
        *_two_adopted(),
        {"op": "select", "goal_id": "HI"},  # task version 1
        {"op": "report", "goal_id": "HI", "task": "$last", "state": "running"},  # v2
        {"op": "report", "goal_id": "HI", "state": "succeeded", "evidence": {"rows": 3}},  # v3
        {"op": "verify", "goal_id": "HI", "expected_version": 1, "expect": "conflict"},
        {"op": "verify", "goal_id": "HI", "task": "$last", "expected_version": 3},
        {"op": "satisfy", "goal_id": "HI", "result": {"summary": "done"}},
    ]

    code, out = run("apply-scenario", scenario_file(tmp_path, steps))

    assert (0, True, 10) == (code, out["ok"], out["applied"])
    assert (1, 2, 1, 1) == (out["selected"], out["reported"], out["verified"], out["satisfied"])
    assert [(8, "verify")] == [(c["step"], c["op"]) for c in out["conflicts"]]
    events = task_events(run, "HI")
    task_id = events[0]["payload"]["task"]["task_id"]
    assert ["goal_selected_for_execution", "task_reported", "task_reported", "task_reviewed"] == [
        e["event_type"] for e in events if e["payload"]["task"]["task_id"] == task_id
    ]
    assert [task_id] == Queue("scheduler", connection=redis_client).job_ids
    _, hi = run("goals", "show", "HI")
    _, lo = run("goals", "show", "LO")
    assert ("satisfied", {"summary": "done", "success_metrics": {}}, "adopted") == (
        hi["state"], hi["result"], lo["state"]
    )  # fmt: skip


def test_select_step_fails_when_another_goal_is_selected(
    run: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_url: str,
    redis_client: Redis,
) -> None:  # fmt: skip
    """A select step expecting LO while HI ranks first stops the run (exit 1) and says
    which goal came out; later steps do not run."""
    monkeypatch.chdir(tmp_path)
    for name, value in (LIVE | {"GOALSTORE_REDIS_URL": redis_url}).items():
        monkeypatch.setenv(name, value)
    steps = [*_two_adopted(), {"op": "select", "goal_id": "LO"},
             {"op": "note", "goal_id": "LO", "kind": "info", "text": "never written"}]  # fmt: skip

    code, out = run("apply-scenario", scenario_file(tmp_path, steps))

    assert (1, 4, 5, "SelectedAnotherGoal") == (
        code, out["applied"], out["failure"]["step"], out["failure"]["error"]
    )  # fmt: skip
    assert out["failure"]["detail"].startswith("goal HI was selected, not LO")
    assert "executing" == run("goals", "show", "HI")[1]["state"]
    assert 0 == out["noted"]


def test_select_step_in_shadow_mode_fails_and_says_why(
    run: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the default flags (shadow) a select step hands out no task: exit 1, the detail
    names shadow mode and the way out; the goal stays adopted."""
    monkeypatch.chdir(tmp_path)
    steps = [*_two_adopted(), {"op": "select", "goal_id": "HI"}]

    code, out = run("apply-scenario", scenario_file(tmp_path, steps))

    assert (1, "NotSelected") == (code, out["failure"]["error"])
    assert "shadow mode" in out["failure"]["detail"]
    assert "GOAL_SHADOW=off" in out["failure"]["detail"]
    assert "adopted" == run("goals", "show", "HI")[1]["state"]


# --- task references and the new steps' validation ---------------------------------------


def test_last_task_of_another_goal_stops_the_run(
    run: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The task "$last" is the latest add_task step's: on another goal's step it fails."""
    monkeypatch.chdir(tmp_path)
    steps = [*_two_adopted(), {"op": "add_task", "goal_id": "HI"},
             {"op": "report", "goal_id": "LO", "task": "$last", "state": "succeeded"}]  # fmt: skip

    code, out = run("apply-scenario", scenario_file(tmp_path, steps))

    assert (1, 6, "TaskOfAnotherGoal") == (code, out["failure"]["step"], out["failure"]["error"])


def test_latest_without_a_task_stops_the_run(
    run: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The task "latest" (the default) of a goal with no task fails the step, naming it."""
    monkeypatch.chdir(tmp_path)
    steps = [*_two_adopted(), {"op": "verify", "goal_id": "LO"}]

    code, out = run("apply-scenario", scenario_file(tmp_path, steps))

    assert (1, "NoTask", "goal LO has no live task") == (
        code, out["failure"]["error"], out["failure"]["detail"]
    )  # fmt: skip


@pytest.mark.parametrize(
    "bad_step",
    [
        {"op": "note", "goal_id": "A", "kind": "gossip", "text": "x"},
        {"op": "note", "goal_id": "A", "kind": "info"},
        {"op": "link", "goal_id": "A", "kind": "session", "ref": "s-1", "url": "ftp://x"},
        {"op": "block", "goal_id": "A"},
        {"op": "unblock", "goal_id": "A", "reason": "no such field"},
        {"op": "report", "goal_id": "A", "state": "verified"},
        {"op": "report", "goal_id": "A", "task": "$last", "state": "running"},
        {"op": "verify", "goal_id": "A", "task": "not/an/id"},
        {"op": "reject", "goal_id": "A", "expected_version": 0},
        {"op": "review_criterion", "goal_id": "A", "criterion_id": "c1"},
        {"op": "review_criterion", "goal_id": "A", "criterion_id": "c1", "met": "yes"},
        {"op": "satisfy", "goal_id": "A"},
        {"op": "select"},
        {"op": "add_task", "goal_id": "A", "surprise": 1},
    ],
)
def test_malformed_lifecycle_step_applies_nothing(
    run: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bad_step: dict[str, Any]
) -> None:
    """A malformed new step makes the whole file invalid (exit 5): the create before it
    does not run."""
    monkeypatch.chdir(tmp_path)
    path = scenario_file(tmp_path, [{"op": "create", "goal": goal_spec(id="A")}, bad_step])

    code, out = run("apply-scenario", path)

    assert (5, "invalid") == (code, out["error"])
    assert NOTHING == run.counts()
