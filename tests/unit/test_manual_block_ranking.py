"""A manual block in the pure ranking (one goal and columns alike) and in what the cache
writes of it: blocked like the other rules, named with the person's reason, and the
hash's person-written text kept small enough for a listpack."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from service.cache.encoding import LISTPACK_VALUE_BYTES, encoded, fitted, related_text
from service.domain.blocks import MANUAL_BLOCK, Block
from service.domain.ranking import (
    Facts,
    Features,
    FeatureTable,
    RankingInputs,
    explain,
    features,
    rank,
    score_table,
    snapshots,
)
from service.testing import make_goal

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
INPUTS = RankingInputs(now=NOW)


def goal(goal_id: str, value: float, manual_block: str | None = None) -> Features:
    held = () if manual_block is None else (Block(MANUAL_BLOCK, ref=manual_block),)
    return Features(goal_id, value, 0.2, 0.1, None, NOW.timestamp() - 60, (), (), (), held)


def test_a_held_goal_is_blocked_with_its_reason_and_only_the_penalty_apart() -> None:
    """Held: penalty -1, score 0, the block names the reason; every other term is what the
    same goal unheld scores, and the columns agree with the one-goal explanation."""
    held, free = goal("g-held", 0.9, "legal review"), goal("g-held", 0.9)

    one, other = explain(held, INPUTS), explain(free, INPUTS)
    columns = score_table(FeatureTable.of([held, free]), INPUTS)

    assert [{"reason": "manual_block", "ref": "legal review"}] == [
        b.as_dict() for b in one.blocked_by
    ]
    assert (0.0, -1.0) == (one.score, one.terms["penalty"])
    assert {**other.terms, "penalty": -1.0} == one.terms
    assert [True, False] == columns.blocked.tolist()
    assert [one.raw, other.raw] == columns.raw.tolist()


def test_a_held_goal_ranks_after_every_unheld_one() -> None:
    """However valuable, a held goal is listed after the others, and only when asked."""
    goals = [goal("g-best", 1.0, "paused"), goal("g-low", 0.1), goal("g-mid", 0.5)]

    ranking = rank(goals, INPUTS)

    assert ["g-mid", "g-low"] == [r.goal_id for r in ranking.top(10)]
    assert ["g-mid", "g-low", "g-best"] == [r.goal_id for r in ranking.top(10, True)]


def test_a_goals_manual_block_becomes_its_feature() -> None:
    """features() takes the reason of the stored {reason, actor, at}; an empty reason still
    holds the goal."""
    by_hand = {"reason": "vendor", "actor": "alice", "at": "2026-03-01T12:00:00.000000Z"}

    assert (Block(MANUAL_BLOCK, ref="vendor"),) == features(make_goal(manual_block=by_hand)).holds
    assert () == features(make_goal()).holds
    assert features(make_goal(manual_block={**by_hand, "reason": ""})).holds


def test_a_held_goals_snapshot_row_carries_the_reason_and_the_details() -> None:
    """The row's blocked_by says `manual_block` alone and the reason travels in its own
    column, cut to a listpack's value size; assigned_to and related come after it. A batch
    with none of them sends rows of the 15 columns only."""
    long_reason = "waiting for " + "the vendor's countersigned agreement " * 3
    held = (goal("g-1", 0.5, long_reason), Facts(2, "adopted", "exploration", False,
                                                   "alice", ("g-2", "g-3")))  # fmt: skip
    plain = (goal("g-4", 0.5), Facts(2, "adopted", "exploration", False))

    row = encoded(snapshots([held], INPUTS, seq=3)).rows[0]
    bare = encoded(snapshots([plain], INPUTS, seq=3)).rows[0]

    assert ("manual_block", "alice", "g-2 g-3") == (row[14], row[15], row[16])
    assert isinstance(row[17], str) and long_reason.startswith(row[17][:-1])
    assert LISTPACK_VALUE_BYTES == len(row[17].encode())
    assert 15 == len(bare)


@given(st.text(max_size=200))
def test_fitted_text_stays_within_a_listpack_value(text: str) -> None:
    """Any text, multi-byte too: at most 64 bytes, unchanged when it fits, else a prefix
    of it and "…"."""
    out = fitted(text)

    assert len(out.encode()) <= LISTPACK_VALUE_BYTES
    assert out == text or (out.endswith("\u2026") and text.startswith(out[:-1]))


@given(st.lists(st.from_regex(r"g-[0-9a-f]{16}", fullmatch=True), max_size=12, unique=True))
def test_related_ids_fit_and_say_how_many_more(ids: list[str]) -> None:
    """As many ids as fit in 64 bytes, then `+N` for the rest: nothing is lost silently."""
    out = related_text(ids).split()

    assert len(" ".join(out).encode()) <= LISTPACK_VALUE_BYTES
    if out and out[-1].startswith("+"):
        assert ids[: len(out) - 1] == out[:-1]
        assert len(ids) - (len(out) - 1) == int(out[-1][1:])
    else:
        assert ids == out
