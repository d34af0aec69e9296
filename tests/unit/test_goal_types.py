"""Unit tests for the goal-type registry and typed results."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from service.domain import goal_types as registry
from service.domain.errors import FieldError
from service.domain.goal_types import (
    GenericResult,
    MetricDeltaResult,
    get_goal_type,
    goal_type,
    goal_type_problems,
    goal_types,
    known_goal_type,
    validate_result,
)
from service.testing import make_goal


def locs_and_types(problems: list[FieldError]) -> list[tuple[tuple[str | int, ...], str]]:
    return [(p.loc, p.type) for p in problems]


METRIC_GOAL = make_goal(
    goal_type="metric_delta",
    success_metrics={"coherence_delta": 0.05, "latency_drop": 0.2, "recall": 0.9},
)


# --- the registry -----------------------------------------------------------------


def test_registry_lists_built_in_types_by_name() -> None:
    """The registry lists generic and metric_delta, sorted by name."""
    assert ["generic", "metric_delta"] == [entry.name for entry in goal_types()]


def test_each_type_has_a_description_and_result_model() -> None:
    """Each built-in type names its description and result model."""
    assert GenericResult is get_goal_type("generic").result_model
    assert MetricDeltaResult is get_goal_type("metric_delta").result_model
    assert all(entry.description for entry in goal_types())


def test_generic_json_schema_requires_summary() -> None:
    """generic's JSON Schema is an object requiring summary, with no other properties."""
    schema = get_goal_type("generic").json_schema()

    assert "object" == schema["type"]
    assert ["summary"] == schema["required"]
    assert {"summary", "success_metrics"} == set(schema["properties"])
    assert False is schema["additionalProperties"]


def test_metric_delta_json_schema_requires_achieved() -> None:
    """metric_delta's JSON Schema requires a non-empty `achieved` map of numbers."""
    schema = get_goal_type("metric_delta").json_schema()

    assert ["achieved"] == schema["required"]
    achieved = schema["properties"]["achieved"]
    assert "object" == achieved["type"]
    assert 1 == achieved["minProperties"]
    assert {"type": "number"} == achieved["additionalProperties"]


@pytest.mark.parametrize(
    ("name", "known"),
    [("generic", True), ("metric_delta", True), ("doc_written", False), ("Generic", False)],
)
def test_known_goal_type(name: str, known: bool) -> None:
    """known_goal_type is true only for registered names, case-sensitively."""
    assert known == known_goal_type(name)


@pytest.mark.parametrize("name", ["generic", "metric_delta"])
def test_registering_a_duplicate_name_raises(name: str) -> None:
    """A second registration under a taken name raises and keeps the first."""
    original = get_goal_type(name).result_model

    class Other(BaseModel):
        note: str

    with pytest.raises(ValueError, match=f"goal type '{name}' is registered twice"):
        goal_type(name, "a clash")(Other)

    assert original is get_goal_type(name).result_model


def test_a_new_type_registers_with_one_decorator(monkeypatch: pytest.MonkeyPatch) -> None:
    """A decorated model becomes a known type whose results are validated."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    @goal_type("doc_written", "A document exists at a URL.")
    class DocWritten(BaseModel):
        url: str

    goal = make_goal(goal_type="doc_written")

    assert known_goal_type("doc_written")
    assert ["doc_written", "generic", "metric_delta"] == [e.name for e in goal_types()]
    result, problems = validate_result(goal, {"url": "https://example.org/doc"})
    assert [] == problems
    assert DocWritten(url="https://example.org/doc") == result


# --- goal checks -------------------------------------------------------------------


def test_unknown_goal_type_is_a_goal_problem() -> None:
    """A goal whose type is not registered has a problem at goal_type."""
    problems = goal_type_problems(make_goal(goal_type="nope"))

    assert [FieldError(("goal_type",), "unknown goal type 'nope'")] == problems


def test_generic_goal_has_no_type_problems() -> None:
    """generic places no extra demands on the goal."""
    assert [] == goal_type_problems(make_goal())


def test_metric_delta_goal_without_targets_is_a_problem() -> None:
    """A metric_delta goal with no success_metrics has a problem at success_metrics."""
    problems = goal_type_problems(make_goal(goal_type="metric_delta"))

    assert [("success_metrics",)] == [p.loc for p in problems]


# --- generic results ---------------------------------------------------------------


def test_generic_result_with_summary_is_valid() -> None:
    """A generic result with a summary validates into GenericResult."""
    result, problems = validate_result(
        make_goal(), {"summary": "done", "success_metrics": {"coherence_delta": 0.1}}
    )

    assert [] == problems
    assert GenericResult(summary="done", success_metrics={"coherence_delta": 0.1}) == result


def test_generic_result_missing_summary_names_the_field() -> None:
    """A generic result without summary fails at ("result", "summary")."""
    result, problems = validate_result(make_goal(), {})

    assert None is result
    assert [(("result", "summary"), "missing")] == locs_and_types(problems)
    assert "Field required" == problems[0].msg


def test_generic_result_reports_every_error() -> None:
    """Every problem in a generic result is reported, each with its field path."""
    raw = {"summary": "", "success_metrics": {"m": "lots"}, "extra": 1}

    result, problems = validate_result(make_goal(), raw)

    assert None is result
    expected = {
        (("result", "summary"), "string_too_short"),
        (("result", "success_metrics", "m"), "float_parsing"),
        (("result", "extra"), "extra_forbidden"),
    }
    assert expected == set(locs_and_types(problems))
    assert 3 == len(problems)


@pytest.mark.parametrize("raw", [None, "done", ["done"], 5])
def test_generic_result_that_is_not_an_object_fails(raw: Any) -> None:
    """A result that is not an object is one error at ("result",)."""
    result, problems = validate_result(make_goal(), raw)

    assert None is result
    assert [("result",)] == [p.loc for p in problems]


def test_generic_result_rejects_non_finite_metric() -> None:
    """An achieved metric value of NaN in a generic result is rejected."""
    _, problems = validate_result(
        make_goal(), {"summary": "ok", "success_metrics": {"m": float("nan")}}
    )

    assert [("result", "success_metrics", "m")] == [p.loc for p in problems]


# --- metric_delta results ----------------------------------------------------------


def test_metric_delta_result_meeting_every_target_is_valid() -> None:
    """Achieved values at or above every target validate (equal counts as met)."""
    raw = {"achieved": {"coherence_delta": 0.05, "latency_drop": 0.3, "recall": 0.95}}

    result, problems = validate_result(METRIC_GOAL, raw)

    assert [] == problems
    assert isinstance(result, MetricDeltaResult)
    assert 0.3 == result.achieved["latency_drop"]


def test_metric_delta_reports_each_metric_below_target_or_missing() -> None:
    """Every metric below target or missing is reported at ("result", "achieved", name)."""
    raw = {"achieved": {"coherence_delta": 0.04, "recall": 0.95, "unrelated": 3.0}}

    result, problems = validate_result(METRIC_GOAL, raw)

    assert None is result
    expected = [
        (("result", "achieved", "coherence_delta"), "target_not_met"),
        (("result", "achieved", "latency_drop"), "missing"),
    ]
    assert expected == locs_and_types(problems)
    assert "0.04 does not meet the target 0.05" == problems[0].msg


def test_metric_delta_reports_all_metrics_when_all_fail() -> None:
    """With every metric short, each one is reported, in name order."""
    raw = {"achieved": {"recall": 0.1, "latency_drop": 0.0, "coherence_delta": -1.0}}

    _, problems = validate_result(METRIC_GOAL, raw)

    expected = [
        ("result", "achieved", "coherence_delta"),
        ("result", "achieved", "latency_drop"),
        ("result", "achieved", "recall"),
    ]
    assert expected == [p.loc for p in problems]


def test_metric_delta_result_without_achieved_fails_at_the_model() -> None:
    """A metric_delta result must carry `achieved`; its absence is a model error."""
    _, problems = validate_result(METRIC_GOAL, {"summary": "done"})

    assert [(("result", "achieved"), "missing")] == locs_and_types(problems)


def test_metric_delta_result_with_empty_achieved_fails() -> None:
    """An empty `achieved` map is rejected before targets are checked."""
    _, problems = validate_result(METRIC_GOAL, {"achieved": {}})

    assert [(("result", "achieved"), "too_short")] == locs_and_types(problems)


def test_field_error_as_dict_lists_the_path() -> None:
    """A FieldError renders as loc (a list), msg and type for the API body."""
    _, problems = validate_result(METRIC_GOAL, {"achieved": {"coherence_delta": 1.0}})

    assert {
        "loc": ["result", "achieved", "latency_drop"],
        "msg": "missing",
        "type": "missing",
    } == problems[0].as_dict()
