"""Unit tests for the goal model: lifecycle, deadline, record form, ids."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from service.domain.errors import IllegalTransition
from service.domain.goal import (
    Criterion,
    GoalCategory,
    GoalState,
    from_record,
    mint_goal_id,
    record_changes,
    to_record,
    transition,
)
from service.testing import START, make_goal

CREATED = START  # when make_goal's goals were created
LATER = datetime(2026, 1, 1, 12, 5, 30, 250, tzinfo=UTC)


# --- allowed transitions -------------------------------------------------------

ALLOWED = [
    (GoalState.PROPOSED, "adopt", GoalState.ADOPTED),
    (GoalState.ADOPTED, "start", GoalState.EXECUTING),
    (GoalState.EXECUTING, "retry", GoalState.ADOPTED),
    (GoalState.EXECUTING, "satisfy", GoalState.SATISFIED),
    (GoalState.PROPOSED, "abandon", GoalState.ABANDONED),
    (GoalState.ADOPTED, "abandon", GoalState.ABANDONED),
    (GoalState.EXECUTING, "abandon", GoalState.ABANDONED),
]

ILLEGAL = [
    (GoalState.PROPOSED, "start"),
    (GoalState.PROPOSED, "retry"),
    (GoalState.PROPOSED, "satisfy"),
    (GoalState.ADOPTED, "adopt"),
    (GoalState.ADOPTED, "retry"),
    (GoalState.ADOPTED, "satisfy"),
    (GoalState.EXECUTING, "adopt"),
    (GoalState.EXECUTING, "start"),
    (GoalState.SATISFIED, "adopt"),
    (GoalState.SATISFIED, "start"),
    (GoalState.SATISFIED, "retry"),
    (GoalState.SATISFIED, "satisfy"),
    (GoalState.SATISFIED, "abandon"),
    (GoalState.ABANDONED, "adopt"),
    (GoalState.ABANDONED, "start"),
    (GoalState.ABANDONED, "retry"),
    (GoalState.ABANDONED, "satisfy"),
    (GoalState.ABANDONED, "abandon"),
]


@pytest.mark.parametrize(("source", "action", "target"), ALLOWED)
def test_allowed_transition_moves_to_target_state(
    source: GoalState, action: str, target: GoalState
) -> None:
    """An allowed action moves the goal from its source state to the action's target."""
    goal = make_goal(state=source)

    after = transition(goal, action, LATER)

    assert target == after.state


@pytest.mark.parametrize(("source", "action"), ILLEGAL)
def test_illegal_transition_names_current_state_and_action(source: GoalState, action: str) -> None:
    """An action not allowed from the current state raises IllegalTransition naming both."""
    goal = make_goal(state=source)

    with pytest.raises(IllegalTransition) as caught:
        transition(goal, action, LATER)

    assert "goal_001" == caught.value.goal_id
    assert source.value == caught.value.current_state
    assert action == caught.value.action


def test_illegal_transition_message_reads_naturally() -> None:
    """IllegalTransition's message says which action failed on which goal in which state."""
    goal = make_goal(state=GoalState.SATISFIED)

    with pytest.raises(IllegalTransition) as caught:
        transition(goal, "adopt", LATER)

    assert "cannot adopt goal 'goal_001': it is satisfied" == str(caught.value)


def test_illegal_transition_leaves_goal_unchanged() -> None:
    """A refused transition leaves the (frozen) goal exactly as it was."""
    goal = make_goal(state=GoalState.PROPOSED)

    with pytest.raises(IllegalTransition):
        transition(goal, "satisfy", LATER)

    assert GoalState.PROPOSED == goal.state
    assert 1 == goal.version
    assert CREATED == goal.updated_at


@pytest.mark.parametrize(
    ("state", "terminal"),
    [
        (GoalState.PROPOSED, False),
        (GoalState.ADOPTED, False),
        (GoalState.EXECUTING, False),
        (GoalState.SATISFIED, True),
        (GoalState.ABANDONED, True),
    ],
)
def test_only_satisfied_and_abandoned_are_terminal(state: GoalState, terminal: bool) -> None:
    """is_terminal is true exactly for satisfied and abandoned."""
    assert terminal == make_goal(state=state).is_terminal


@pytest.mark.parametrize("state", [GoalState.SATISFIED, GoalState.ABANDONED])
@pytest.mark.parametrize("action", ["adopt", "start", "retry", "satisfy", "abandon"])
def test_terminal_states_allow_no_action(state: GoalState, action: str) -> None:
    """No lifecycle action leaves a terminal state."""
    with pytest.raises(IllegalTransition):
        transition(make_goal(state=state), action, LATER)


def test_full_path_to_satisfied_with_a_retry() -> None:
    """adopt, start, retry, start, satisfy reaches satisfied at version 6."""
    goal = make_goal()
    for action in ("adopt", "start", "retry", "start", "satisfy"):
        goal = transition(goal, action, LATER)

    assert GoalState.SATISFIED == goal.state
    assert 6 == goal.version


# --- version and update time ---------------------------------------------------


@pytest.mark.parametrize(("source", "action", "target"), ALLOWED)
def test_transition_bumps_version_and_updated_at(
    source: GoalState, action: str, target: GoalState
) -> None:
    """Every transition advances the version by one and sets updated_at to now."""
    goal = make_goal(state=source, version=4)

    after = transition(goal, action, LATER)

    assert 5 == after.version
    assert LATER == after.updated_at


def test_transition_keeps_identity_and_creation_time() -> None:
    """A transition changes only state, version and updated_at."""
    goal = make_goal(horizon_max_min=60, depends_on=("goal_000",), metadata={"k": 1})

    after = transition(goal, "adopt", LATER)

    assert "goal_001" == after.id
    assert CREATED == after.created_at
    assert "alice" == after.owner
    assert 60 == after.horizon_max_min
    assert ("goal_000",) == after.depends_on
    assert {"k": 1} == after.metadata


# --- deadline ------------------------------------------------------------------


def test_deadline_is_created_at_plus_horizon_max() -> None:
    """deadline = created_at + horizon_max_min minutes (10080 min = 7 days)."""
    goal = make_goal(horizon_max_min=10080)

    assert datetime(2026, 1, 8, 12, 0, tzinfo=UTC) == goal.deadline


def test_deadline_is_none_without_horizon_max() -> None:
    """A goal without horizon_max_min has no deadline."""
    assert None is make_goal(horizon_max_min=None).deadline


def test_deadline_of_zero_minutes_is_creation_time() -> None:
    """horizon_max_min 0 puts the deadline at creation, not 'no deadline'."""
    assert CREATED == make_goal(horizon_max_min=0).deadline


def test_deadline_does_not_move_with_updates() -> None:
    """The deadline is anchored to created_at, so updates do not push it back."""
    goal = make_goal(horizon_max_min=90)

    after = transition(goal, "adopt", CREATED + timedelta(hours=5))

    assert datetime(2026, 1, 1, 13, 30, tzinfo=UTC) == after.deadline


# --- record form ---------------------------------------------------------------


def test_to_record_gives_plain_json_values() -> None:
    """to_record turns enums into strings, tuples into lists and instants into Z strings."""
    goal = make_goal(
        horizon_max_min=10080,
        aligns_with=("core.ontological.consciousness",),
        depends_on=("goal_000",),
        success_metrics={"coherence_delta": 0.05},
        metadata={"source": "seed"},
        updated_at=LATER,
        related=("goal_002",),
        criteria=(Criterion("c1", "the report is filed"),),
        links=({"kind": "session", "ref": "s-1", "url": None, "actor": "a", "at": "t"},),
    )

    expected = {
        "id": "goal_001",
        "text": "Summarise yesterday's failed tasks",
        "category": "maintenance",
        "goal_type": "generic",
        "value": 0.6,
        "effort": 0.4,
        "risk": 0.2,
        "horizon_min_min": 0,
        "horizon_max_min": 10080,
        "aligns_with": ["core.ontological.consciousness"],
        "contradicts": [],
        "depends_on": ["goal_000"],
        "success_metrics": {"coherence_delta": 0.05},
        "metadata": {"source": "seed"},
        "state": "proposed",
        "version": 1,
        "owner": "alice",
        "created_at": "2026-01-01T12:00:00.000000Z",
        "updated_at": "2026-01-01T12:05:30.000250Z",
        "deleted_at": None,
        "assigned_to": None,
        "related": ["goal_002"],
        "criteria": [
            {
                "id": "c1",
                "text": "the report is filed",
                "met": None,
                "evidence": None,
                "reviewed_by": None,
                "reviewed_at": None,
            }
        ],
        "links": [{"kind": "session", "ref": "s-1", "url": None, "actor": "a", "at": "t"}],
        "manual_block": None,
        "result": None,
        "last_failure": None,
        "progress": 0.0,
        "parent_id": None,
        "completion_policy": "all",
        "tree_block": None,
    }
    assert expected == to_record(goal)
    assert from_record(expected) == goal


def test_to_record_writes_instants_in_utc() -> None:
    """An instant in another offset is stored as the same moment in UTC."""
    plus_two = timezone(timedelta(hours=2))
    goal = make_goal(created_at=datetime(2026, 1, 1, 14, 0, tzinfo=plus_two))

    assert "2026-01-01T12:00:00.000000Z" == to_record(goal)["created_at"]


def test_record_round_trip_gives_an_equal_goal() -> None:
    """from_record(to_record(goal)) equals the goal, every field included."""
    goal = make_goal(
        goal_type="metric_delta",
        state=GoalState.EXECUTING,
        version=7,
        horizon_min_min=5,
        horizon_max_min=120,
        aligns_with=("b1", "b2"),
        contradicts=("b3",),
        depends_on=("goal_000",),
        success_metrics={"coherence_delta": 0.05},
        metadata={"nested": {"list": [1, "two", None]}},
        updated_at=LATER,
        deleted_at=LATER + timedelta(days=1),
    )

    assert goal == from_record(to_record(goal))


def test_record_round_trip_restores_types() -> None:
    """A record read back has enums, tuples and aware UTC datetimes, not strings and lists."""
    back = from_record(to_record(make_goal(aligns_with=("b1",))))

    assert GoalCategory.MAINTENANCE is back.category
    assert GoalState.PROPOSED is back.state
    assert ("b1",) == back.aligns_with
    assert UTC == back.created_at.tzinfo
    assert None is back.deleted_at


def test_from_record_without_deleted_at_is_not_deleted() -> None:
    """A record lacking the deleted_at key reads as a live goal."""
    record = to_record(make_goal())
    del record["deleted_at"]

    assert False is from_record(record).is_deleted


def test_record_changes_lists_only_changed_fields() -> None:
    """record_changes carries exactly the fields whose stored value differs."""
    before = to_record(make_goal())
    after = to_record(transition(make_goal(), "adopt", LATER))

    expected = {"state": "adopted", "version": 2, "updated_at": "2026-01-01T12:05:30.000250Z"}
    assert expected == record_changes(before, after)


def test_record_changes_of_identical_records_is_empty() -> None:
    """Two equal records have no changes."""
    record = to_record(make_goal())

    assert {} == record_changes(record, dict(record))


def test_record_changes_includes_a_field_cleared_to_none() -> None:
    """Clearing horizon_max_min to None is a change, carried as None."""
    before = to_record(make_goal(horizon_max_min=60))
    after = to_record(make_goal(horizon_max_min=None))

    assert {"horizon_max_min": None} == record_changes(before, after)


# --- ids -----------------------------------------------------------------------


def test_mint_goal_id_is_g_dash_16_hex() -> None:
    """A minted id is `g-` followed by 16 lowercase hex characters."""
    minted = mint_goal_id()

    assert re.fullmatch(r"g-[0-9a-f]{16}", minted) is not None, minted


def test_mint_goal_id_differs_each_time() -> None:
    """Minted ids are random: a hundred of them are all different."""
    minted = {mint_goal_id() for _ in range(100)}

    assert 100 == len(minted)
