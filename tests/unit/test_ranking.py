"""The prioritizer: the seed's seven ranking invariants, the clamp, the order, explanations."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from service.domain.goal import Goal, GoalCategory, GoalState
from service.domain.ranking import (
    Features,
    FeatureTable,
    RankingInputs,
    Weights,
    explain,
    facts,
    features,
    rank,
    snapshots,
)
from service.domain.timefmt import epoch_us, format_ts

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
weight = st.floats(min_value=0.01, max_value=1.0, allow_nan=False)  # > 0: every term counts
weights = st.builds(Weights, value=weight, effort=weight, risk=weight, urgency=weight,
                    alignment=weight)  # fmt: skip
beliefs = st.sampled_from(["b.one", "b.two", "b.three", "b.four"])


def make_goal(goal_id: str = "g-1", **fields: object) -> Goal:
    base: dict[str, object] = {
        "id": goal_id,
        "text": "a goal",
        "category": GoalCategory.EXPLORATION,
        "value": 0.5,
        "effort": 0.5,
        "risk": 0.5,
        "owner": "tester",
        "created_at": NOW - timedelta(hours=1),
        "updated_at": NOW,
        "state": GoalState.ADOPTED,
    }
    base.update(fields)
    return Goal(**base)  # type: ignore[arg-type]


@st.composite
def goals(draw: st.DrawFn, goal_id: str = "g-1") -> Goal:
    created = NOW - timedelta(minutes=draw(st.integers(0, 10_000)))
    return make_goal(
        goal_id,
        value=draw(unit),
        effort=draw(unit),
        risk=draw(unit),
        created_at=created,
        horizon_max_min=draw(st.none() | st.integers(0, 20_000)),
        aligns_with=tuple(draw(st.lists(beliefs, max_size=3))),
    )


def position(goal_id: str, ranked: list[Goal], inputs: RankingInputs) -> int:
    order = [r.goal_id for r in rank([features(g) for g in ranked], inputs)]
    return order.index(goal_id)


def seed_formula(goal: Goal, inputs: RankingInputs) -> float:
    """The seed's formula written out again, independently of the code under test."""
    w = inputs.weights
    if goal.horizon_max_min is None:
        urgency = 0.0
    else:
        elapsed_min = (inputs.now - goal.created_at).total_seconds() / 60
        remaining_min = goal.horizon_max_min - elapsed_min
        if remaining_min > 0:
            hours_remaining = remaining_min / 60
            urgency = 0.0 if hours_remaining > 24 else 1.0 - hours_remaining / 24
        else:
            urgency = -1.0
    active = [b for b in goal.aligns_with if b in inputs.active_beliefs]
    alignment = len(active) / len(goal.aligns_with) if goal.aligns_with else 0.0
    contradiction = any(b in inputs.active_beliefs for b in goal.contradicts)
    penalty = -1.0 if contradiction or (urgency == -1.0) else 0.0
    total = (
        w.value * goal.value
        + w.effort * (1 - goal.effort)
        + w.risk * (1 - goal.risk)
        + w.urgency * urgency
        + w.alignment * alignment
        + penalty
    )
    return min(1.0, max(0.0, total))


@settings(max_examples=200)
@given(goals(), weights, st.frozensets(beliefs))
def test_scores_equal_an_independent_computation_of_the_seed_formula(
    goal: Goal, w: Weights, active: frozenset[str]
) -> None:
    """explain() and rank() both give the seed formula's clamped value."""
    inputs = RankingInputs(now=NOW, weights=w, active_beliefs=active)

    expected = seed_formula(goal, inputs)

    assert expected == pytest.approx(explain(goal, inputs).score, abs=1e-12)
    assert expected == pytest.approx(rank([features(goal)], inputs)[0].score, abs=1e-12)


@given(goals(), st.floats(0.0, 0.99), st.floats(0.001, 1.0), weights)
def test_1_higher_value_ranks_higher(goal: Goal, low: float, gap: float, w: Weights) -> None:
    """Invariant 1: all else equal, more value ranks first."""
    high = min(1.0, low + gap)
    a, b = replace(goal, id="g-high", value=high), replace(goal, id="g-low", value=low)
    inputs = RankingInputs(now=NOW, weights=w)

    assert position("g-high", [b, a], inputs) < position("g-low", [b, a], inputs)


@given(goals(), st.floats(0.0, 0.99), st.floats(0.001, 1.0), weights)
def test_2_higher_effort_ranks_lower(goal: Goal, low: float, gap: float, w: Weights) -> None:
    """Invariant 2: all else equal, more effort ranks later."""
    a, b = (
        replace(goal, id="g-easy", effort=low),
        replace(goal, id="g-hard", effort=min(1, low + gap)),
    )
    inputs = RankingInputs(now=NOW, weights=w)

    assert position("g-easy", [b, a], inputs) < position("g-hard", [b, a], inputs)


@given(goals(), st.floats(0.0, 0.99), st.floats(0.001, 1.0), weights)
def test_3_higher_risk_ranks_lower(goal: Goal, low: float, gap: float, w: Weights) -> None:
    """Invariant 3: all else equal, more risk ranks later."""
    a, b = replace(goal, id="g-safe", risk=low), replace(goal, id="g-risky", risk=min(1, low + gap))
    inputs = RankingInputs(now=NOW, weights=w)

    assert position("g-safe", [b, a], inputs) < position("g-risky", [b, a], inputs)


@given(goals(), st.integers(1, 24 * 60 - 1), weights)
def test_4_a_near_deadline_ranks_higher(goal: Goal, minutes_left: int, w: Weights) -> None:
    """Invariant 4: a deadline inside 24 h raises a goal above its twin without one."""
    created = NOW - timedelta(hours=1)
    near = replace(goal, id="g-near", created_at=created, horizon_max_min=60 + minutes_left)
    none = replace(goal, id="g-none", created_at=created, horizon_max_min=None)
    inputs = RankingInputs(now=NOW, weights=w)

    assert 0 < explain(near, inputs).urgency <= 1
    assert position("g-near", [none, near], inputs) < position("g-none", [none, near], inputs)


@given(goals(), beliefs, weights)
def test_5_alignment_with_an_active_belief_is_a_bonus(goal: Goal, belief: str, w: Weights) -> None:
    """Invariant 5: aligning with an active belief ranks above aligning with an inactive one."""
    on = replace(goal, id="g-on", aligns_with=(belief,))
    off = replace(goal, id="g-off", aligns_with=("b.inactive",))
    inputs = RankingInputs(now=NOW, weights=w, active_beliefs=frozenset({belief}))

    assert 1.0 == explain(on, inputs).alignment
    assert position("g-on", [off, on], inputs) < position("g-off", [off, on], inputs)


@given(goals(), beliefs, weights)
def test_6_contradicting_an_active_belief_blocks(goal: Goal, belief: str, w: Weights) -> None:
    """Invariant 6: contradicting an active belief takes the -1 penalty and names the belief."""
    goal = replace(goal, contradicts=(belief,), horizon_max_min=None)
    inputs = RankingInputs(now=NOW, weights=w, active_beliefs=frozenset({belief}))

    explained = explain(goal, inputs)
    twin = explain(replace(goal, contradicts=()), inputs)

    assert -1.0 == explained.terms["penalty"]
    assert twin.raw - 1.0 == pytest.approx(explained.raw)
    assert [{"reason": "contradicts_belief", "ref": belief}] == [
        b.as_dict() for b in explained.blocked_by
    ]


@given(st.lists(goals(), min_size=2, max_size=30), weights, st.frozensets(beliefs), st.randoms())
def test_7_ranking_is_deterministic_and_independent_of_input_order(
    many: list[Goal], w: Weights, active: frozenset[str], rnd: random.Random
) -> None:
    """Invariant 7: the same inputs in any order give the same ranking."""
    many = [replace(g, id=f"g-{i}") for i, g in enumerate(many)]
    inputs = RankingInputs(now=NOW, weights=w, active_beliefs=active)
    shuffled = many[:]
    rnd.shuffle(shuffled)

    first = rank([features(g) for g in many], inputs)
    again = rank([features(g) for g in shuffled], inputs)

    assert list(first) == list(again)


@given(st.lists(goals(), min_size=1, max_size=30), weights, st.frozensets(beliefs))
def test_scores_are_clamped_and_blocked_goals_never_outrank_unblocked_ones(
    many: list[Goal], w: Weights, active: frozenset[str]
) -> None:
    """Every score is in [0, 1]; every unblocked goal precedes every blocked one."""
    many = [
        replace(g, id=f"g-{i}", contradicts=("b.one",) if i % 3 == 0 else ())
        for i, g in enumerate(many)
    ]
    ranked = rank([features(g) for g in many], RankingInputs(now=NOW, weights=w,
                                                               active_beliefs=active))  # fmt: skip

    assert all(0.0 <= r.score <= 1.0 for r in ranked)
    blocked = [r.blocked for r in ranked]
    assert blocked == sorted(blocked)


def entangled(many: list[Goal], rnd: random.Random) -> list[Goal]:
    """Goals that contradict beliefs and depend on one another, some of them."""
    ids = [f"g-{i}" for i in range(len(many))]
    return [
        replace(
            g, id=ids[i],
            contradicts=tuple(rnd.sample(["b.one", "b.two", "b.three"], rnd.randint(0, 2))),
            depends_on=tuple(rnd.sample(ids, rnd.randint(0, min(2, len(ids))))),
        )
        for i, g in enumerate(many)
    ]  # fmt: skip


def documented_order(
    g: Goal, inputs: RankingInputs
) -> tuple[bool, float, float, float, float, str]:
    """The documented total order, from the one-goal explanation."""
    e = explain(g, inputs)
    deadline = g.deadline.timestamp() if g.deadline else float("inf")
    return (e.blocked, -e.score, -e.raw, deadline, g.created_at.timestamp(), g.id)


@settings(max_examples=200)
@given(
    st.lists(goals(), min_size=1, max_size=40), weights, st.frozensets(beliefs), st.randoms(),
    st.integers(0, 3),
)  # fmt: skip
def test_rank_and_explain_agree(
    many: list[Goal], w: Weights, active: frozenset[str], rnd: random.Random, twins: int
) -> None:
    """The column-wise ranking and the one-goal explanation give each goal the same score
    and block, and the ranking is the documented total order of those explanations, ties
    broken by id included (twins: goals equal in all but id)."""
    many = entangled(many + [many[0]] * twins, rnd)
    rnd.shuffle(many)
    satisfied = frozenset(g.id for g in many if rnd.random() < 0.5)
    inputs = RankingInputs(now=NOW, weights=w, active_beliefs=active, satisfied_goals=satisfied)

    ranked = rank([features(g) for g in many], inputs)

    assert sorted(g.id for g in many) == sorted(r.goal_id for r in ranked)
    assert [g.id for g in sorted(many, key=lambda g: documented_order(g, inputs))] == [
        r.goal_id for r in ranked
    ]

    for ranked in rank([features(g) for g in many], inputs):
        explained = explain(next(g for g in many if g.id == ranked.goal_id), inputs)
        assert (explained.score, explained.raw, explained.blocked) == (
            ranked.score, ranked.raw, ranked.blocked
        )  # fmt: skip


@given(st.lists(goals(), min_size=1, max_size=30), st.frozensets(beliefs), st.randoms())
def test_snapshots_carry_the_explanation_of_every_adopted_goal(
    many: list[Goal], active: frozenset[str], rnd: random.Random
) -> None:
    """Snapshots scored as columns equal each goal's explanation; goals that are not
    adopted, or are deleted, get no score and are placed nowhere."""
    many = [
        replace(
            g, state=rnd.choice([GoalState.ADOPTED, GoalState.PROPOSED, GoalState.EXECUTING]),
            deleted_at=NOW if rnd.random() < 0.2 else None,
        )
        for g in entangled(many, rnd)
    ]  # fmt: skip
    inputs = RankingInputs(now=NOW, active_beliefs=active)

    made = snapshots([(features(g), facts(g)) for g in many], inputs, seq=7)

    assert [g.id for g in many] == [s.goal_id for s in made]
    for goal, snap in zip(many, made, strict=True):
        assert (7, NOW.timestamp(), goal.version) == (snap.seq, snap.computed_at, snap.version)
        if goal.state != GoalState.ADOPTED or goal.deleted_at is not None:
            assert (None, "none") == (snap.score, snap.placement)
        else:
            assert explain(goal, inputs) == snap.score
            assert ("blocked" if snap.score.blocked else "ranked") == snap.placement


def test_top_stops_before_blocked_goals_unless_asked() -> None:
    goals_in = [
        make_goal("g-ok", value=0.9),
        make_goal("g-blocked", value=1.0, contradicts=("b.one",)),
        make_goal("g-ok-2", value=0.1),
    ]
    inputs = RankingInputs(now=NOW, active_beliefs=frozenset({"b.one"}))
    ranked = rank(FeatureTable.of([features(g) for g in goals_in]), inputs)

    assert ["g-ok", "g-ok-2"] == [r.goal_id for r in ranked.top(10)]
    assert ["g-ok"] == [r.goal_id for r in ranked.top(1)]
    assert ["g-ok", "g-ok-2", "g-blocked"] == [r.goal_id for r in ranked.top(10, True)]
    assert ["g-ok", "g-ok-2"] == [r.goal_id for r in ranked[0:2]]
    assert (2, 3) == (ranked.unblocked, len(ranked))


def test_an_empty_ranking() -> None:
    assert [] == list(rank([], RankingInputs(now=NOW)))


def test_ties_break_by_deadline_then_creation_then_id() -> None:
    """Equal scores order by earlier deadline, then earlier creation, then id."""
    twin = make_goal(horizon_max_min=None)
    goals_in = [
        replace(twin, id="g-c", created_at=NOW - timedelta(hours=2)),
        replace(twin, id="g-b", created_at=NOW - timedelta(hours=3)),
        replace(twin, id="g-a", created_at=NOW - timedelta(hours=3)),
        replace(twin, id="g-z", horizon_max_min=10 * 24 * 60),  # a deadline, but far off
    ]

    order = [r.goal_id for r in rank([features(g) for g in goals_in], RankingInputs(now=NOW))]

    assert ["g-z", "g-a", "g-b", "g-c"] == order


def test_explanations_name_every_block() -> None:
    """A blocked goal's explanation says which belief, which dependency and which deadline."""
    goal = make_goal(
        contradicts=("b.safety", "b.idle"),
        depends_on=("g-done", "g-pending"),
        created_at=NOW - timedelta(hours=2),
        horizon_max_min=60,
    )
    inputs = RankingInputs(
        now=NOW, active_beliefs=frozenset({"b.safety"}), satisfied_goals=frozenset({"g-done"})
    )

    explained = explain(goal, inputs)

    assert [
        {"reason": "contradicts_belief", "ref": "b.safety"},
        {"reason": "dependency_unsatisfied", "ref": "g-pending"},
        {"reason": "deadline_passed", "ref": "2026-03-01T11:00:00+00:00"},
    ] == [b.as_dict() for b in explained.blocked_by]
    assert (0.0, -1.0, -1.0) == (explained.score, explained.urgency, explained.terms["penalty"])


def test_default_weights_are_the_seeds() -> None:
    """0.5 / 0.25 / 0.15 / 0.05 / 0.05, as the seed registers goal_selected."""
    assert (0.5, 0.25, 0.15, 0.05, 0.05) == (
        Weights().value, Weights().effort, Weights().risk, Weights().urgency, Weights().alignment
    )  # fmt: skip


def test_a_worked_example() -> None:
    """The seed's example goal, 12 hours before its deadline, one of one belief active."""
    goal = make_goal(
        value=0.8, effort=0.3, risk=0.1, aligns_with=("core.ontological.consciousness",),
        created_at=NOW - timedelta(minutes=10080 - 12 * 60), horizon_max_min=10080,
    )  # fmt: skip
    inputs = RankingInputs(now=NOW, active_beliefs=frozenset({"core.ontological.consciousness"}))

    explained = explain(goal, inputs)

    # 0.5*0.8 + 0.25*0.7 + 0.15*0.9 + 0.05*0.5 + 0.05*1 = 0.4 + 0.175 + 0.135 + 0.025 + 0.05
    assert 0.785 == pytest.approx(explained.score)
    assert 0.5 == pytest.approx(explained.urgency)


def test_features_of_a_goal() -> None:
    """Features carry the deadline as created_at + horizon_max_min, in epoch seconds."""
    goal = make_goal(created_at=NOW, horizon_max_min=90)

    f = features(goal)

    assert isinstance(f, Features)
    assert NOW.timestamp() + 90 * 60 == f.deadline


@given(
    st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
    ),
    st.none() | st.integers(0, 10**7),
    unit,
)
# Adding the horizon in float seconds instead rounds differently here (across 2**31 s):
@example(datetime(2033, 8, 28, 0, 20, 43, 42876, tzinfo=UTC), 8_312_021, 0.5)
def test_columns_from_storage_equal_each_goals_features(
    created_at: datetime, horizon: int | None, value: float
) -> None:
    """FeatureTable.stored() (created_at parsed by NumPy, deadline in integer
    microseconds) gives exactly the floats features() computes one goal at a time."""
    goal = make_goal(created_at=created_at, horizon_max_min=horizon, value=value)

    stored = FeatureTable.stored(
        [goal.id], [goal.value], [goal.effort], [goal.risk],
        epoch_us([format_ts(goal.created_at)]), [goal.horizon_max_min],
        [goal.aligns_with], [goal.contradicts], [goal.depends_on],
    )  # fmt: skip

    assert features(goal) == stored.features(0)
