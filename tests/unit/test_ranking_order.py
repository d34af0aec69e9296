"""The documented total order, written once (order_keys): the ranking of many goals and
the cache's reads sort by it alike."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from service.cache.encoding import encoded
from service.cache.reads import ordered, placed
from service.domain.ranking import (
    Facts,
    Features,
    RankingInputs,
    explain,
    order_key,
    rank,
    snapshots,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
BELIEFS = ["b.one", "b.two"]

unit = st.floats(min_value=0.0, max_value=1.0)
few = st.sampled_from([0.0, 0.25, 0.5, 1.0])  # so that ties happen


@st.composite
def goal_features(draw: st.DrawFn, goal_id: str) -> Features:
    hours = draw(st.none() | st.sampled_from([-1.0, 2.0, 12.0, 48.0]))
    return Features(
        goal_id, draw(few | unit), draw(few), draw(few),
        None if hours is None else NOW.timestamp() + hours * 3600,
        NOW.timestamp() - draw(st.sampled_from([0.0, 60.0, 3600.0])),
        tuple(draw(st.lists(st.sampled_from(BELIEFS), max_size=2))),
        tuple(draw(st.lists(st.sampled_from(BELIEFS), max_size=1))), (),
    )  # fmt: skip


@st.composite
def goal_sets(draw: st.DrawFn) -> list[Features]:
    n = draw(st.integers(1, 25))
    return [draw(goal_features(f"g-{n - i:02d}")) for i in range(n)]


inputs = st.builds(
    RankingInputs, now=st.just(NOW), active_beliefs=st.frozensets(st.sampled_from(BELIEFS))
)


def key_of(f: Features, given_inputs: RankingInputs) -> tuple[object, ...]:
    e = explain(f, given_inputs)
    return order_key(e.blocked, e.score, e.raw, f.deadline, f.created, f.goal_id)


@settings(max_examples=200)
@given(goal_sets(), inputs)
def test_the_ranking_is_the_order_of_order_key(
    goals: list[Features], given_inputs: RankingInputs
) -> None:
    """rank() (columns sorted by order_keys, ties by id) puts goals in the order
    order_key() gives each one, blocked goals and ties included."""
    expected = [f.goal_id for f in sorted(goals, key=lambda f: key_of(f, given_inputs))]

    assert expected == [r.goal_id for r in rank(goals, given_inputs)]


@settings(max_examples=200)
@given(goal_sets(), inputs)
def test_the_cache_reads_goals_in_the_rankings_order(
    goals: list[Features], given_inputs: RankingInputs
) -> None:
    """Snapshots as the cache holds them (numbers as text), read back and ordered by the
    cache, come in the order rank() gives."""
    batch = snapshots([(f, Facts(1, "adopted", "exploration", False)) for f in goals],
                      given_inputs, seq=1)  # fmt: skip
    rows = encoded(batch).rows
    held = [
        (str(r[0]), [r[10], r[11], r[3], r[4] or "", r[8], r[5], r[6]]) for r in rows
    ]  # PLACED_FIELDS: score, raw, placement, deadline, created, category, version

    assert [r.goal_id for r in rank(goals, given_inputs)] == [
        s["id"] for s in ordered(placed(held))
    ]


def test_blocked_goals_a_hair_apart_order_by_their_sum() -> None:
    """Two blocked goals whose sums differ in the last digits: the higher sum first, even
    when the other has the earlier deadline (both far off: no urgency)."""
    inputs = RankingInputs(now=NOW, active_beliefs=frozenset({"b.one"}))
    base = Features("g-high", 0.5, 0.5, 0.5, NOW.timestamp() + 49 * 3600, NOW.timestamp(), (),
                    ("b.one",), ())  # fmt: skip
    low = base._replace(goal_id="g-low", value=math.nextafter(0.5, 0.0) - 1e-15,
                        deadline=NOW.timestamp() + 48 * 3600)  # fmt: skip
    assert explain(low, inputs).raw < explain(base, inputs).raw

    assert ["g-high", "g-low"] == [r.goal_id for r in rank([low, base], inputs)]
