"""What the cache sends snapshot.lua, and the hash it writes from it: every number as
text that reads back as the same float, instants as whole microseconds, only the fields
that say something, and the hash read back (reads.decode) as the snapshot it came from."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from service.cache.encoding import Row, encoded, instants
from service.cache.reads import decode, instant
from service.domain.blocks import (
    ANCESTOR_BLOCKED,
    CHILD_ABANDONED,
    MANUAL_BLOCK,
    OPEN_CHILDREN,
    Block,
)
from service.domain.ranking import Facts, Features, RankingInputs, Snapshot, snapshots

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
# Subnormal and tiny values too: the text must read back as the same float.
unit = st.floats(min_value=0.0, max_value=1.0)
# Epoch seconds up to the year 2198: whole microseconds (as GoalStore's times are), or any
# float (written as seconds, then).
whole_us = st.integers(0, 7_200_000_000_000_000).map(lambda us: us / 1e6)
instant_s = whole_us | st.floats(min_value=0.0, max_value=7.2e9)


# What a goal may be held by whatever the inputs: a person (the reason, spaces and all),
# its tree (a goal id each).
holds = st.sampled_from(["waiting on legal", "x" * 40]).map(lambda r: Block(MANUAL_BLOCK, ref=r))
holds |= st.builds(Block, st.sampled_from([OPEN_CHILDREN, ANCESTOR_BLOCKED, CHILD_ABANDONED]),
                   ref=st.sampled_from(["g-child", "g.parent:1"]))  # fmt: skip


@st.composite
def goal_rows(draw: st.DrawFn) -> tuple[Features, Facts]:
    n = draw(st.integers(0, 10**6))
    deadline = draw(st.none() | instant_s | st.just(NOW.timestamp() - 60))  # passed too
    beliefs = ("b.x", "b.y")
    features = Features(
        f"g{n}", draw(unit), draw(unit), draw(unit), deadline, draw(instant_s),
        tuple(draw(st.lists(st.sampled_from(beliefs), max_size=2))),
        tuple(draw(st.lists(st.sampled_from(beliefs), max_size=1))),
        tuple(draw(st.lists(st.sampled_from(["g:dep", "g.other"]), max_size=2))),
        tuple(draw(st.lists(holds, max_size=3, unique_by=lambda b: b.reason))),
    )  # fmt: skip
    state = draw(st.sampled_from(["adopted", "proposed", "executing"]))
    assigned_to = draw(st.none() | st.sampled_from(["alice", "bob"]))
    related = tuple(draw(st.lists(st.sampled_from(["g-a", "g-b"]), max_size=2, unique=True)))
    parent_id = draw(st.none() | st.sampled_from(["g-parent", "g:" + "p" * 70]))  # long too
    return features, Facts(draw(st.integers(1, 99)), state, "maintenance", draw(st.booleans()),
                           assigned_to, related, parent_id, draw(unit))  # fmt: skip


def hash_of(row: Row) -> dict[str, str]:
    """The hash snapshot.lua's fields() makes of a row, in the same order (a row may leave
    out its last five columns: none)."""
    (_, seq, computed_at, placement, _, category, version, state, created, deleted, score,
     raw, deadline, alignment, blocked_by) = row[:15]  # fmt: skip
    assigned_to, related, manual_block, parent_id, progress = (*row[15:], *[False] * 5)[:5]
    pairs = [("state", state), ("placement", placement), ("score", score), ("raw", raw),
             ("category", category), ("version", version), ("deadline", deadline),
             ("created", created), ("alignment", alignment), ("blocked_by", blocked_by),
             ("manual_block", manual_block), ("assigned_to", assigned_to),
             ("related", related), ("parent_id", parent_id), ("progress", progress),
             ("deleted", deleted), ("seq", seq), ("computed_at", computed_at)]  # fmt: skip
    return {name: str(value) for name, value in pairs if value is not False}


def expected(snap: Snapshot) -> dict[str, Any]:
    """What a read of the cache (RankingCache.snapshot) says of a snapshot."""
    out: dict[str, Any] = {
        "id": snap.goal_id, "state": snap.state, "placement": snap.placement,
        "category": snap.category, "version": snap.version,
        "score": snap.score.score if snap.score else None,
        "raw": snap.score.raw if snap.score else None, "blocked": snap.placement == "blocked",
        "deadline": snap.deadline, "created": snap.created, "deleted": snap.deleted,
        "seq": snap.seq, "computed_at": snap.computed_at, "assigned_to": snap.assigned_to,
        "related": list(snap.related), "parent_id": snap.parent_id, "progress": snap.progress,
    }  # fmt: skip
    if snap.score is not None:
        out["urgency"] = snap.score.urgency
        out["alignment"] = snap.score.alignment
        out["blocked_by"] = [b.as_dict() for b in snap.score.blocked_by]
    return out


@given(st.lists(goal_rows(), max_size=20, unique_by=lambda g: g[0].goal_id))
def test_every_snapshot_reads_back_from_its_hash(goals: list[tuple[Features, Facts]]) -> None:
    """Each snapshot's row carries its sorted sets' scores as text that reads back as the
    same float, and its hash, read back, says everything the snapshot does: the urgency
    derived, the blocks rebuilt, each number the same float."""
    inputs = RankingInputs(now=NOW, active_beliefs=frozenset({"b.x"}))
    batch = snapshots(goals, inputs, seq=7)

    rows = encoded(batch).rows

    assert len(goals) == len(rows)
    for snap, row in zip(batch, rows, strict=True):
        goal_id, placement, deadline, score, raw = row[0], row[3], row[4], row[10], row[11]
        assert (snap.goal_id, snap.placement) == (goal_id, placement)
        assert snap.deadline == (None if deadline is False else float(str(deadline)))
        if snap.score is None:
            assert (False, False) == (score, raw)
        else:
            assert snap.score.score == float(str(score))
            assert snap.score.raw == float(str(raw or score))  # no raw: it is the score
        held = hash_of(row)
        assert expected(snap) == decode(snap.goal_id, held)
        # A listpack's values (hash-max-listpack-value); only a goal blocked for several
        # reasons may hold a longer blocked_by, and a goal whose parent has a long id a
        # longer parent_id (that one hash is then a hashtable: an id is never cut).
        assert all(len(v) <= 64 for name, v in held.items()
                   if name not in ("blocked_by", "parent_id"))  # fmt: skip


def test_a_ranked_goal_holds_only_what_says_something() -> None:
    """An adopted goal, ranked: no state (its placement says it), no raw (its score is
    it), no explanation but what is not zero; instants in microseconds."""
    created = datetime(2026, 3, 1, 11, 0, 0, 250_001, tzinfo=UTC).timestamp()
    features = Features("g-1", 0.5, 0.5, 0.5, None, created, (), (), ())
    batch = snapshots([(features, Facts(3, "adopted", "exploration", False))],
                      RankingInputs(now=NOW), seq=41)  # fmt: skip

    held = hash_of(encoded(batch).rows[0])

    assert ["placement", "score", "category", "version", "created", "seq",
            "computed_at"] == list(held)  # fmt: skip
    assert ("ranked", "3", "1772362800250001", "41", "1772366400000000") == (
        held["placement"], held["version"], held["created"], held["seq"], held["computed_at"]
    )  # fmt: skip


def test_a_blocked_goal_holds_its_raw_sum_and_why() -> None:
    """Blocked by a belief and by its passed deadline: raw (below its score of 0), the
    blocks (the deadline's ref is the deadline, which the hash holds)."""
    deadline = NOW.timestamp() - 90
    features = Features("g-2", 0.5, 0.5, 0.5, deadline, deadline - 3600, (), ("b.x",),
                        ("g:dep",))  # fmt: skip
    inputs = RankingInputs(now=NOW, active_beliefs=frozenset({"b.x"}))
    batch = snapshots([(features, Facts(2, "adopted", "maintenance", False))], inputs, seq=9)

    held = hash_of(encoded(batch).rows[0])

    assert ("blocked", "0.0") == (held["placement"], held["score"])
    assert float(held["raw"]) < 0
    why = "contradicts_belief:b.x dependency_unsatisfied:g:dep deadline_passed"
    assert why == held["blocked_by"]
    assert [
        {"reason": "contradicts_belief", "ref": "b.x"},
        {"reason": "dependency_unsatisfied", "ref": "g:dep"},
        {"reason": "deadline_passed", "ref": "2026-03-01T11:58:30+00:00"},
    ] == decode("g-2", held)["blocked_by"]


def test_an_unplaced_goal_holds_its_state_and_no_score() -> None:
    features = Features("g-3", 0.5, 0.5, 0.5, None, NOW.timestamp(), (), (), ())
    batch = snapshots([(features, Facts(4, "executing", "maintenance", True))],
                      RankingInputs(now=NOW), seq=9)  # fmt: skip

    held = hash_of(encoded(batch).rows[0])

    assert ["state", "placement", "category", "version", "created", "deleted", "seq",
            "computed_at"] == list(held)  # fmt: skip
    assert ("executing", "none", "1") == (held["state"], held["placement"], held["deleted"])


@given(st.lists(instant_s | st.just(float("inf")), max_size=30))
def test_instants_read_back_as_the_same_float(seconds: list[float]) -> None:
    """Whole microseconds as an integer, any other float as seconds; inf (no deadline) as
    False."""
    for value, held in zip(seconds, instants(np.array(seconds, dtype=np.float64)), strict=True):
        if value == float("inf"):
            assert held is False
        else:
            assert isinstance(held, str) and value == instant(held)
            if round(value * 1e6) / 1e6 == value:
                assert held.lstrip("-").isdigit()
