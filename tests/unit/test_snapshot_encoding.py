"""What the cache sends snapshot.lua: every number as text that reads back as the same
float, explanations as JSON equal to each goal's Score."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
from hypothesis import given
from hypothesis import strategies as st

from service.cache.encoding import encoded
from service.domain.ranking import Facts, Features, RankingInputs, snapshots

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
# Subnormal and tiny values too: the text must read back as the same float.
unit = st.floats(min_value=0.0, max_value=1.0)
instant = st.floats(min_value=0.0, max_value=7.2e9)  # epoch seconds up to the year 2198


@st.composite
def goal_rows(draw: st.DrawFn) -> tuple[Features, Facts]:
    n = draw(st.integers(0, 10**6))
    deadline = draw(st.none() | instant)
    features = Features(f"g{n}", draw(unit), draw(unit), draw(unit), deadline, draw(instant),
                        (), ("b.x",) if draw(st.booleans()) else (), ())  # fmt: skip
    state = draw(st.sampled_from(["adopted", "proposed", "executing"]))
    return features, Facts(draw(st.integers(1, 99)), state, "maintenance", draw(st.booleans()))


@given(st.lists(goal_rows(), max_size=20, unique_by=lambda g: g[0].goal_id))
def test_every_number_reads_back_as_the_same_float(goals: list[tuple[Features, Facts]]) -> None:
    """Every field of every snapshot is encoded as text that reads back as the same value,
    and each explanation as JSON equal to the goal's Score."""
    inputs = RankingInputs(now=NOW, active_beliefs=frozenset({"b.x"}))
    batch = snapshots(goals, inputs, seq=7)

    rows, explained = encoded(batch)[:2]

    assert len(goals) == len(rows) == len(explained)
    for snap, row, explanation in zip(batch, rows, explained, strict=True):
        (goal_id, seq, _, placement, deadline, category, version, state, created, deleted,
         score, raw) = row  # fmt: skip
        assert (snap.goal_id, str(snap.seq), snap.placement) == (goal_id, seq, placement)
        assert (snap.category, str(snap.version), snap.state) == (category, version, state)
        assert ("1" if snap.deleted else "0") == deleted
        assert snap.created == float(str(created))
        assert snap.deadline == (None if deadline is False else float(str(deadline)))
        if snap.score is None:
            assert (False, False, b"") == (score, raw, explanation)
            continue
        assert (snap.score.score, snap.score.raw) == (float(str(score)), float(str(raw)))
        assert {
            "urgency": snap.score.urgency, "alignment": snap.score.alignment,
            "terms": snap.score.terms,
            "blocked_by": [b.as_dict() for b in snap.score.blocked_by],
        } == orjson.loads(explanation)  # fmt: skip
