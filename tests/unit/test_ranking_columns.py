"""One goal scored alone (explain) and scored as a row of the columns (score_table,
Snapshots) give exactly the same numbers: every term, urgency, alignment, the sum, the
clamped score, whether it is blocked, and the explanation with its reasons."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import example, given, settings
from hypothesis import strategies as st

from service.domain.ranking import (
    TERM_NAMES,
    URGENCY_WINDOW_S,
    Facts,
    Features,
    FeatureTable,
    RankingInputs,
    Weights,
    explain,
    score_table,
    snapshots,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
W = float(URGENCY_WINDOW_S)
BELIEFS = ["b.one", "b.two", "b.three"]
IDS = [f"g-{i}" for i in range(8)]

unit = st.floats(min_value=0.0, max_value=1.0)
# Seconds from now to the deadline: the edges of the urgency window, and anywhere.
to_deadline = st.sampled_from([0.0, -1.0, 1.0, W, W - 1e-6, W + 1e-6, 0.5 * W]) | st.floats(
    -2 * W, 3 * W
)


@st.composite
def goal_features(draw: st.DrawFn, goal_id: str) -> Features:
    seconds = draw(st.none() | to_deadline)
    return Features(
        goal_id, draw(unit), draw(unit), draw(unit),
        None if seconds is None else NOW.timestamp() + seconds,
        NOW.timestamp() - draw(st.floats(0, 30 * 86400)),
        tuple(draw(st.lists(st.sampled_from(BELIEFS), max_size=3))),
        tuple(draw(st.lists(st.sampled_from(BELIEFS), max_size=2, unique=True))),
        tuple(draw(st.lists(st.sampled_from(IDS), max_size=2, unique=True))),
    )  # fmt: skip


@st.composite
def tables(draw: st.DrawFn) -> list[Features]:
    n = draw(st.integers(1, len(IDS)))
    return [draw(goal_features(IDS[i])) for i in range(n)]


weights = st.builds(Weights, value=unit, effort=unit, risk=unit, urgency=unit, alignment=unit)
inputs = st.builds(
    RankingInputs,
    now=st.just(NOW),
    weights=weights,
    active_beliefs=st.frozensets(st.sampled_from(BELIEFS)),
    satisfied_goals=st.frozensets(st.sampled_from(IDS)),
)


@settings(max_examples=300)
@given(tables(), inputs)
@example(  # a deadline exactly now: passed, urgency -1, blocked
    [Features("g-0", 0.5, 0.5, 0.5, NOW.timestamp(), NOW.timestamp(), (), (), ())],
    RankingInputs(now=NOW),
)
def test_one_goal_scores_as_its_row_of_the_columns(
    rows: list[Features], given_inputs: RankingInputs
) -> None:
    """explain() of each goal equals score_table()'s values at its row, exactly."""
    scores = score_table(FeatureTable.of(rows), given_inputs)

    for i, row in enumerate(rows):
        one = explain(row, given_inputs)
        assert (one.urgency, one.alignment, one.blocked) == (
            scores.urgency[i], scores.alignment[i], scores.blocked[i]
        )  # fmt: skip
        assert dict(zip(TERM_NAMES, (float(t[i]) for t in scores.terms), strict=True)) == one.terms
        assert (one.raw, one.score) == (scores.raw[i], scores.score[i])


@settings(max_examples=200)
@given(tables(), inputs)
def test_one_goal_explains_as_its_snapshot_in_a_batch(
    rows: list[Features], given_inputs: RankingInputs
) -> None:
    """A snapshot's explanation (made from the columns) equals explain() of the goal:
    terms, score, sum, urgency, alignment and every reason it is blocked."""
    facts = Facts(1, "adopted", "exploration", False)

    made = snapshots([(row, facts) for row in rows], given_inputs, seq=3)

    assert [explain(row, given_inputs) for row in rows] == [s.score for s in made]
