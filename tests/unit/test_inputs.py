"""Unit tests for what clients may send: GoalCreate and GoalUpdate."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from service.domain.errors import FieldError, IllegalTransition, InvalidGoal
from service.domain.goal import GoalCategory, GoalState
from service.domain.inputs import EXAMPLE_GOAL, GoalCreate, GoalUpdate
from service.testing import START, goal_spec, make_goal
from tests.seed import SEED_EXAMPLE_JSON

NOW = START  # when make_goal's goals were created
LATER = datetime(2026, 1, 1, 13, 0, tzinfo=UTC)


def error_locs(exc: ValidationError) -> list[tuple[str | int, ...]]:
    return [tuple(err["loc"]) for err in exc.errors()]


# --- the seed example -------------------------------------------------------------


def test_seed_example_is_accepted_as_written() -> None:
    """The seed's example goal, as JSON, is a valid create body."""
    body = GoalCreate.model_validate_json(SEED_EXAMPLE_JSON)

    assert "goal_001" == body.id
    assert GoalCategory.INTROSPECTION == body.category
    assert 10080 == body.horizon_max_min
    assert ["core.ontological.consciousness"] == body.aligns_with
    assert {"coherence_delta": 0.05} == body.success_metrics


def test_seed_example_builds_with_server_timestamps() -> None:
    """Building the seed example ignores its timestamps: the server's clock sets them."""
    goal = GoalCreate.model_validate_json(SEED_EXAMPLE_JSON).build("alice", NOW)

    assert NOW == goal.created_at
    assert NOW == goal.updated_at
    assert GoalState.PROPOSED == goal.state
    assert 1 == goal.version
    assert "alice" == goal.owner
    assert datetime(2026, 1, 8, 12, 0, tzinfo=UTC) == goal.deadline


def test_example_goal_constant_matches_the_seed() -> None:
    """EXAMPLE_GOAL (shown in the OpenAPI docs) is the seed's example, unchanged."""
    assert json.loads(SEED_EXAMPLE_JSON) == EXAMPLE_GOAL


def test_build_mints_an_id_when_absent() -> None:
    """A body without an id gets a minted `g-` + 16 hex id."""
    goal = GoalCreate.model_validate(goal_spec()).build("alice", NOW)

    assert goal.id.startswith("g-")
    assert 18 == len(goal.id)


def test_text_is_stripped() -> None:
    """Surrounding whitespace is stripped from the text."""
    body = GoalCreate.model_validate(goal_spec(text="  tidy the logs \n"))

    assert "tidy the logs" == body.text


# --- rejected single fields -------------------------------------------------------


@pytest.mark.parametrize("field", ["value", "effort", "risk"])
@pytest.mark.parametrize("bad", [-0.01, 1.01, -1, 2, 1e308])
def test_scores_outside_unit_interval_are_rejected(field: str, bad: float) -> None:
    """value, effort and risk must lie in [0, 1]."""
    with pytest.raises(ValidationError) as caught:
        GoalCreate.model_validate(goal_spec(**{field: bad}))

    assert [(field,)] == error_locs(caught.value)


@pytest.mark.parametrize("field", ["value", "effort", "risk"])
@pytest.mark.parametrize("edge", [0.0, 1.0])
def test_scores_at_the_bounds_are_accepted(field: str, edge: float) -> None:
    """0 and 1 themselves are valid scores."""
    body = GoalCreate.model_validate(goal_spec(**{field: edge}))

    assert edge == getattr(body, field)


@pytest.mark.parametrize("field", ["value", "effort", "risk"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_scores_are_rejected(field: str, bad: float) -> None:
    """NaN and infinities are not scores."""
    with pytest.raises(ValidationError) as caught:
        GoalCreate.model_validate(goal_spec(**{field: bad}))

    assert [(field,)] == error_locs(caught.value)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_scores_in_json_are_rejected(literal: str) -> None:
    """NaN/Infinity written in a JSON body are rejected too."""
    raw = json.dumps(goal_spec()).replace('"value": 0.6', f'"value": {literal}')

    with pytest.raises(ValidationError) as caught:
        GoalCreate.model_validate_json(raw)

    assert [("value",)] == error_locs(caught.value)


@pytest.mark.parametrize(
    ("field", "bad"),
    [
        ("value", "high"),
        ("value", None),
        ("value", [0.5]),
        ("effort", {"amount": 0.5}),
        ("text", 5),
        ("text", ["a list"]),
        ("category", 3),
        ("aligns_with", "core.belief"),
        ("depends_on", [1]),
        ("horizon_min_min", 1.5),
        ("horizon_max_min", "soon"),
        ("success_metrics", ["coherence_delta"]),
        ("success_metrics", {"coherence_delta": "a lot"}),
        ("metadata", ["not", "an", "object"]),
        ("created_at", "yesterday"),
    ],
)
def test_wrong_types_are_rejected(field: str, bad: Any) -> None:
    """A field of the wrong JSON type is a validation error at that field."""
    with pytest.raises(ValidationError) as caught:
        GoalCreate.model_validate(goal_spec(**{field: bad}))

    assert field == error_locs(caught.value)[0][0]


def test_naive_timestamps_are_rejected() -> None:
    """created_at without an offset is rejected (instants must be aware)."""
    with pytest.raises(ValidationError) as caught:
        GoalCreate.model_validate(goal_spec(created_at="2025-11-08T12:00:00"))

    assert [("created_at",)] == error_locs(caught.value)


@pytest.mark.parametrize("category", ["fun", "INTROSPECTION", ""])
def test_unknown_category_is_rejected(category: str) -> None:
    """Only the four categories are accepted."""
    with pytest.raises(ValidationError) as caught:
        GoalCreate.model_validate(goal_spec(category=category))

    assert [("category",)] == error_locs(caught.value)


@pytest.mark.parametrize(
    "category", ["introspection", "exploration", "maintenance", "user_requested"]
)
def test_each_known_category_is_accepted(category: str) -> None:
    """Each of the four categories is accepted."""
    assert category == GoalCreate.model_validate(goal_spec(category=category)).category.value


@pytest.mark.parametrize("goal_type", ["doc_written", "Generic", ""])
def test_unknown_goal_type_is_rejected(goal_type: str) -> None:
    """A goal_type that is not registered is rejected at creation."""
    with pytest.raises(ValidationError) as caught:
        GoalCreate.model_validate(goal_spec(goal_type=goal_type))

    assert [("goal_type",)] == error_locs(caught.value)


@pytest.mark.parametrize("state", ["adopted", "executing", "satisfied", "abandoned", "PROPOSED"])
def test_state_other_than_proposed_is_rejected(state: str) -> None:
    """Goals are created proposed; any other state in the body is rejected."""
    with pytest.raises(ValidationError) as caught:
        GoalCreate.model_validate(goal_spec(state=state))

    assert [("state",)] == error_locs(caught.value)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("version", 3),
        ("owner", "mallory"),
        ("deleted_at", "2025-11-08T12:00:00Z"),
        ("score", 0.9),
        ("prev_hash", "0" * 64),
        ("Text", "capitalised"),
    ],
)
def test_unknown_fields_are_rejected(field: str, value: Any) -> None:
    """Fields clients may not set (version, owner, scores, ...) are rejected, not ignored."""
    with pytest.raises(ValidationError) as caught:
        GoalCreate.model_validate(goal_spec(**{field: value}))

    assert [(field,)] == error_locs(caught.value)
    assert "extra_forbidden" == caught.value.errors()[0]["type"]


def test_text_at_limit_is_accepted_and_beyond_is_rejected() -> None:
    """text may be 4000 characters, not 4001."""
    assert 4000 == len(GoalCreate.model_validate(goal_spec(text="x" * 4000)).text)

    with pytest.raises(ValidationError) as caught:
        GoalCreate.model_validate(goal_spec(text="x" * 4001))

    assert [("text",)] == error_locs(caught.value)


def test_text_limit_counts_the_text_as_sent() -> None:
    """The limit holds before stripping, as the JSON Schema's maxLength says: 4,000
    characters of text plus a leading NEL (whitespace to str.strip()) are too many."""
    with pytest.raises(ValidationError) as caught:
        GoalCreate.model_validate(goal_spec(text="\u0085" + "x" * 4000))

    assert [("text",)] == error_locs(caught.value)
    assert "x" * 4000 == GoalCreate.model_validate(goal_spec(text="x" * 4000)).text


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_text_is_rejected(text: str) -> None:
    """Text that is empty once stripped is rejected."""
    with pytest.raises(ValidationError) as caught:
        GoalCreate.model_validate(goal_spec(text=text))

    assert [("text",)] == error_locs(caught.value)


@pytest.mark.parametrize("field", ["aligns_with", "contradicts", "depends_on"])
def test_id_lists_allow_64_items_and_reject_65(field: str) -> None:
    """Id lists hold at most 64 items."""
    ids = [f"b{i}" for i in range(65)]
    assert 64 == len(getattr(GoalCreate.model_validate(goal_spec(**{field: ids[:64]})), field))

    with pytest.raises(ValidationError) as caught:
        GoalCreate.model_validate(goal_spec(**{field: ids}))

    assert [(field,)] == error_locs(caught.value)


def test_too_many_success_metrics_are_rejected() -> None:
    """success_metrics holds at most 64 entries."""
    metrics = {f"m{i}": 0.1 for i in range(65)}

    with pytest.raises(ValidationError) as caught:
        GoalCreate.model_validate(goal_spec(success_metrics=metrics))

    assert [("success_metrics",)] == error_locs(caught.value)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_success_metric_is_rejected(bad: float) -> None:
    """A metric target must be a finite number."""
    with pytest.raises(ValidationError) as caught:
        GoalCreate.model_validate(goal_spec(success_metrics={"coherence_delta": bad}))

    assert [("success_metrics", "coherence_delta")] == error_locs(caught.value)


@pytest.mark.parametrize(
    "bad_id",
    ["", "-leading-dash", ".dot", "has space", "semi;colon", "new\nline", "é", "x" * 129],
)
def test_bad_ids_are_rejected(bad_id: str) -> None:
    """Ids must match the id pattern and length limit."""
    with pytest.raises(ValidationError) as caught:
        GoalCreate.model_validate(goal_spec(id=bad_id))

    assert [("id",)] == error_locs(caught.value)


@pytest.mark.parametrize(
    "good_id", ["goal_001", "g-0123456789abcdef", "a", "team.goal:1@v2.x", "x" * 128]
)
def test_good_ids_are_accepted(good_id: str) -> None:
    """Ids of letters, digits and . _ : @ - (not leading) up to 128 chars are accepted."""
    assert good_id == GoalCreate.model_validate(goal_spec(id=good_id)).id


def test_bad_id_in_a_list_is_reported_at_its_index() -> None:
    """A malformed belief id inside aligns_with is reported with its list index."""
    with pytest.raises(ValidationError) as caught:
        GoalCreate.model_validate(goal_spec(aligns_with=["ok.one", "not ok"]))

    assert [("aligns_with", 1)] == error_locs(caught.value)


@pytest.mark.parametrize("field", ["horizon_min_min", "horizon_max_min"])
@pytest.mark.parametrize("bad", [-1, 10 * 365 * 24 * 60 + 1])
def test_horizons_out_of_range_are_rejected(field: str, bad: int) -> None:
    """Horizons are whole minutes from 0 to ten years."""
    with pytest.raises(ValidationError) as caught:
        GoalCreate.model_validate(goal_spec(**{field: bad}))

    assert [(field,)] == error_locs(caught.value)


def nested(depth: int) -> dict[str, Any]:
    """A chain of `depth` single-key objects ending in a number."""
    value: Any = 1
    for _ in range(depth):
        value = {"k": value}
    return value


def test_shallow_metadata_is_accepted() -> None:
    """Metadata a few levels deep, with lists and finite numbers, is accepted."""
    metadata = {"source": "seed", "tags": ["a", "b"], "limits": {"max": 1.5, "n": [1, 2]}}

    assert metadata == GoalCreate.model_validate(goal_spec(metadata=metadata)).metadata


def test_metadata_nested_too_deep_is_rejected() -> None:
    """Metadata nested far past the depth limit is rejected."""
    with pytest.raises(ValidationError) as caught:
        GoalCreate.model_validate(goal_spec(metadata=nested(20)))

    assert [("metadata",)] == error_locs(caught.value)
    assert "nested deeper than 8 levels" in caught.value.errors()[0]["msg"]


def test_metadata_nested_in_lists_too_deep_is_rejected() -> None:
    """Depth counts lists as well as objects."""
    value: Any = 1
    for _ in range(20):
        value = [value]

    with pytest.raises(ValidationError) as caught:
        GoalCreate.model_validate(goal_spec(metadata={"k": value}))

    assert [("metadata",)] == error_locs(caught.value)


@pytest.mark.parametrize(
    "metadata",
    [
        {"x": float("nan")},
        {"x": float("inf")},
        {"x": [1.0, float("-inf")]},
        {"x": {"y": {"z": float("nan")}}},
    ],
)
def test_non_finite_number_inside_metadata_is_rejected(metadata: dict[str, Any]) -> None:
    """A NaN or infinity anywhere inside metadata is rejected."""
    with pytest.raises(ValidationError) as caught:
        GoalCreate.model_validate(goal_spec(metadata=metadata))

    assert [("metadata",)] == error_locs(caught.value)
    assert "numbers must be finite" in caught.value.errors()[0]["msg"]


@pytest.mark.parametrize("literal", ["NaN", "Infinity"])
def test_non_finite_number_inside_json_metadata_is_rejected(literal: str) -> None:
    """NaN/Infinity inside a JSON body's metadata is rejected."""
    raw = json.dumps(goal_spec(metadata={"x": 0})).replace('"x": 0', f'"x": {literal}')

    with pytest.raises(ValidationError) as caught:
        GoalCreate.model_validate_json(raw)

    assert [("metadata",)] == error_locs(caught.value)


@pytest.mark.parametrize(
    "metadata",
    [
        {"s": "x" * 4001},
        {f"k{i}": i for i in range(65)},
        {"k" * 129: 1},
        {"big": list(range(2001))},
    ],
    ids=["long-string", "too-many-keys", "long-key", "too-many-values"],
)
def test_oversized_metadata_is_rejected(metadata: dict[str, Any]) -> None:
    """Metadata strings, keys, key counts and total size are bounded."""
    with pytest.raises(ValidationError) as caught:
        GoalCreate.model_validate(goal_spec(metadata=metadata))

    assert [("metadata",)] == error_locs(caught.value)


def test_every_bad_field_is_reported_at_once() -> None:
    """Several bad fields give one error each, not just the first."""
    with pytest.raises(ValidationError) as caught:
        GoalCreate.model_validate(goal_spec(value=2, risk=-1, category="fun", version=9))

    assert {("value",), ("risk",), ("category",), ("version",)} == set(error_locs(caught.value))


# --- cross-field rules (build) ------------------------------------------------------


def test_horizon_max_below_min_is_invalid_goal() -> None:
    """horizon_max_min < horizon_min_min raises InvalidGoal at horizon_max_min."""
    body = GoalCreate.model_validate(goal_spec(horizon_min_min=60, horizon_max_min=30))

    with pytest.raises(InvalidGoal) as caught:
        body.build("alice", NOW)

    assert [("horizon_max_min",)] == [e.loc for e in caught.value.errors]
    assert "must be at least horizon_min_min (60)" == caught.value.errors[0].msg


def test_horizon_max_equal_to_min_is_valid() -> None:
    """horizon_max_min == horizon_min_min is allowed."""
    goal = GoalCreate.model_validate(goal_spec(horizon_min_min=60, horizon_max_min=60)).build(
        "alice", NOW
    )

    assert 60 == goal.horizon_max_min


def test_self_dependency_is_invalid_goal() -> None:
    """A goal may not list its own id in depends_on."""
    body = GoalCreate.model_validate(goal_spec(id="goal_001", depends_on=["goal_000", "goal_001"]))

    with pytest.raises(InvalidGoal) as caught:
        body.build("alice", NOW)

    assert [FieldError(("depends_on",), "a goal cannot depend on itself")] == caught.value.errors


def test_metric_delta_without_success_metrics_is_invalid_goal() -> None:
    """A metric_delta goal needs at least one success metric target."""
    body = GoalCreate.model_validate(goal_spec(goal_type="metric_delta"))

    with pytest.raises(InvalidGoal) as caught:
        body.build("alice", NOW)

    assert [("success_metrics",)] == [e.loc for e in caught.value.errors]


def test_metric_delta_with_success_metrics_builds() -> None:
    """A metric_delta goal with a target builds."""
    body = GoalCreate.model_validate(
        goal_spec(goal_type="metric_delta", success_metrics={"coherence_delta": 0.05})
    )

    assert "metric_delta" == body.build("alice", NOW).goal_type


def test_invalid_goal_reports_every_cross_field_problem() -> None:
    """All cross-field problems are reported together, each at its field."""
    body = GoalCreate.model_validate(
        goal_spec(
            id="goal_001",
            goal_type="metric_delta",
            horizon_min_min=10,
            horizon_max_min=5,
            depends_on=["goal_001"],
        )
    )

    with pytest.raises(InvalidGoal) as caught:
        body.build("alice", NOW)

    expected = [("horizon_max_min",), ("depends_on",), ("success_metrics",)]
    assert expected == [e.loc for e in caught.value.errors]


# --- GoalUpdate ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "field",
    [
        "text",
        "category",
        "goal_type",
        "value",
        "effort",
        "risk",
        "horizon_min_min",
        "aligns_with",
        "contradicts",
        "depends_on",
        "success_metrics",
        "metadata",
    ],
)
def test_update_rejects_explicit_null(field: str) -> None:
    """An explicit null is rejected for every updatable field but horizon_max_min."""
    with pytest.raises(ValidationError) as caught:
        GoalUpdate.model_validate({field: None})

    assert [(field,)] == error_locs(caught.value)


def test_update_null_horizon_max_removes_the_deadline() -> None:
    """horizon_max_min: null is accepted and clears the deadline."""
    goal = make_goal(horizon_max_min=60)

    after = GoalUpdate.model_validate({"horizon_max_min": None}).apply(goal, LATER)

    assert None is after.horizon_max_min
    assert None is after.deadline
    assert 2 == after.version


def test_update_rejects_unknown_fields() -> None:
    """An update may not set state, version or owner."""
    with pytest.raises(ValidationError) as caught:
        GoalUpdate.model_validate({"state": "adopted", "version": 5, "owner": "mallory"})

    assert {("state",), ("version",), ("owner",)} == set(error_locs(caught.value))


def test_update_validates_fields_like_create() -> None:
    """An update's fields obey the same limits as a create body's."""
    with pytest.raises(ValidationError) as caught:
        GoalUpdate.model_validate({"value": 1.5, "goal_type": "nope", "category": "fun"})

    assert {("value",), ("goal_type",), ("category",)} == set(error_locs(caught.value))


def test_update_changes_only_lists_fields_present() -> None:
    """changes() holds the fields the client sent, not expected_version or absent ones."""
    update = GoalUpdate.model_validate({"value": 0.9, "expected_version": 3})

    assert {"value": 0.9} == update.changes()


def test_update_with_no_change_returns_the_same_object() -> None:
    """apply() returns the very goal when the update changes nothing."""
    goal = make_goal(aligns_with=("b1",), horizon_max_min=60)
    update = GoalUpdate.model_validate(
        {"value": 0.6, "aligns_with": ["b1"], "horizon_max_min": 60, "text": "  " + goal.text}
    )

    assert goal is update.apply(goal, LATER)


def test_empty_update_returns_the_same_object() -> None:
    """An update with no fields returns the goal itself, version unchanged."""
    goal = make_goal()

    assert goal is GoalUpdate.model_validate({}).apply(goal, LATER)


def test_update_applies_and_bumps_version() -> None:
    """A real change replaces the fields, advances the version and sets updated_at."""
    goal = make_goal(version=3)
    update = GoalUpdate.model_validate({"value": 0.9, "depends_on": ["goal_000"]})

    after = update.apply(goal, LATER)

    assert 0.9 == after.value
    assert ("goal_000",) == after.depends_on
    assert 4 == after.version
    assert LATER == after.updated_at
    assert NOW == after.created_at
    assert 0.4 == after.effort


@pytest.mark.parametrize("state", [GoalState.SATISFIED, GoalState.ABANDONED])
def test_update_of_terminal_goal_is_illegal(state: GoalState) -> None:
    """Updating a satisfied or abandoned goal raises IllegalTransition for 'update'."""
    goal = make_goal(state=state)

    with pytest.raises(IllegalTransition) as caught:
        GoalUpdate.model_validate({"value": 0.9}).apply(goal, LATER)

    assert state.value == caught.value.current_state
    assert "update" == caught.value.action


def test_update_breaking_a_cross_field_rule_is_invalid_goal() -> None:
    """An update that leaves horizon_max_min below horizon_min_min raises InvalidGoal."""
    goal = make_goal(horizon_max_min=30)

    with pytest.raises(InvalidGoal) as caught:
        GoalUpdate.model_validate({"horizon_min_min": 45}).apply(goal, LATER)

    assert [("horizon_max_min",)] == [e.loc for e in caught.value.errors]


def test_update_to_self_dependency_is_invalid_goal() -> None:
    """An update may not make a goal depend on itself."""
    with pytest.raises(InvalidGoal) as caught:
        GoalUpdate.model_validate({"depends_on": ["goal_001"]}).apply(make_goal(), LATER)

    assert [("depends_on",)] == [e.loc for e in caught.value.errors]


def test_update_to_metric_delta_needs_targets() -> None:
    """Switching a goal without metrics to metric_delta raises InvalidGoal."""
    with pytest.raises(InvalidGoal) as caught:
        GoalUpdate.model_validate({"goal_type": "metric_delta"}).apply(make_goal(), LATER)

    assert [("success_metrics",)] == [e.loc for e in caught.value.errors]


def test_update_expected_version_must_be_positive() -> None:
    """expected_version is a version number: 1 or more."""
    with pytest.raises(ValidationError) as caught:
        GoalUpdate.model_validate({"expected_version": 0})

    assert [("expected_version",)] == error_locs(caught.value)


@pytest.mark.parametrize("sent", [True, False, "2", 2.0])
def test_expected_version_is_an_integer_as_json_writes_it(sent: object) -> None:
    """A boolean (an int to Python), a string or a float names no version: JSON Schema
    says integer, and the schema tier's fuzzer sent `true`."""
    with pytest.raises(ValidationError) as caught:
        GoalUpdate.model_validate({"value": 0.5, "expected_version": sent})

    assert [("expected_version",)] == error_locs(caught.value)
    assert 2 == GoalUpdate.model_validate({"value": 0.5, "expected_version": 2}).expected_version
