"""Tasks in the domain (issue 15): versions, progress, and GoalFailure as seed 002 has it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from service.commands.gate import GateClosed, ResultInvalid
from service.domain.errors import FieldError
from service.domain.goal_types import result_failure, validate_result
from service.domain.tasks import (
    GateCounts,
    IllegalTaskTransition,
    Task,
    TaskState,
    execution_failure,
    progress,
    report,
    review,
    reviewed,
)
from service.testing import make_goal

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def task(attempt: int = 1, state: TaskState = TaskState.QUEUED, **fields: object) -> Task:
    return Task(
        task_id=f"t-{attempt}", goal_id="g-1", goal_version=attempt, attempt=attempt,
        state=state, trace_id="0" * 32, span_id="0" * 16, traceparent="", created_at=T0,
        updated_at=T0, **fields,  # type: ignore[arg-type]
    )  # fmt: skip


def test_each_report_and_review_bumps_the_version_and_a_repeat_does_not() -> None:
    later = T0 + timedelta(minutes=1)
    running = report(task(), TaskState.RUNNING, None, None, later)
    succeeded = report(running, TaskState.SUCCEEDED, {"url": "x"}, None, later)
    verified = review(succeeded, "verify", None, later)

    assert (2, 3, 4) == (running.version, succeeded.version, verified.version)
    assert running is report(running, TaskState.RUNNING, None, None, later)
    assert verified is review(verified, "verify", None, later)
    assert (True, False) == (reviewed(verified, "verify"), reviewed(verified, "reject"))
    with pytest.raises(IllegalTaskTransition):
        review(running, "verify", None, later)


def test_progress_counts_verified_live_tasks_only() -> None:
    tasks = [
        task(1, TaskState.FAILED, superseded=True),
        task(2, TaskState.VERIFIED),
        task(3, TaskState.RUNNING, origin="manual"),
    ]
    assert 0.5 == progress(tasks)
    assert 0.0 == progress([])


def test_a_result_failure_suggests_a_fix_per_field_and_carries_what_debugging_needs() -> None:
    goal = make_goal(goal_type="metric_delta", success_metrics={"recall": 0.8})
    _, errors = validate_result(goal, {"achieved": {"recall": 0.5}})
    failure = result_failure("metric_delta", errors, "2026-01-01T00:00:00.000000Z")
    body = failure.as_dict()

    assert ("validation", [["result", "achieved", "recall"]]) == (
        body["error_type"], [e["loc"] for e in body["errors"]]
    )  # fmt: skip
    assert body["suggestions"][0].startswith("`result.achieved.recall`: 0.5 does not meet")
    assert ("metric_delta", ["achieved", "summary"]) == (
        body["debug_info"]["goal_type"], body["debug_info"]["result_fields"]
    )  # fmt: skip
    assert "task_id" not in body


def test_an_execution_failure_names_the_attempts_and_the_last_reason() -> None:
    first = task(1, TaskState.FAILED, reason="crashed", superseded=True)
    second = task(2, TaskState.REJECTED, reason="wrong file")
    not_emitted = task(3, TaskState.FAILED, reason="not_emitted: queue down")

    body = execution_failure("g-1", second, [first, second, not_emitted], 2, "now").as_dict()

    assert ("execution", "t-2", 2, "wrong file") == (
        body["error_type"], body["task_id"], body["debug_info"]["failed_attempts"],
        body["debug_info"]["last_reason"],
    )  # fmt: skip
    assert ["t-1", "t-2"] == [a["task_id"] for a in body["debug_info"]["attempts"]]
    assert "wrong file" in body["detail"] and body["suggestions"]


def test_the_gate_and_result_problems_say_what_is_missing() -> None:
    closed = GateClosed("g-1", GateCounts(live=1, verified=1), ["docs"])
    invalid = ResultInvalid("g-1", "generic", [FieldError(("result", "summary"), "missing",
                                                          "missing")])  # fmt: skip

    assert ["docs"] == closed.fields()["unmet_criteria"]
    assert "acceptance criteria not met: docs" in str(closed)
    assert "no task to verify" in str(GateClosed("g-1", GateCounts(0, 0)))
    assert ("validation", ["add `result.summary`: the generic result requires it",
                           "the generic result schema: GET /v1/goal-types"]) == (
        invalid.fields()["error_type"], invalid.fields()["suggestions"]
    )  # fmt: skip
