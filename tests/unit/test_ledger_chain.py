"""Unit tests for the ledger's hash chain: sealing, verification, checkpoints, replay."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.domain.goal import LATER_FIELD_DEFAULTS
from service.domain.ledger import (
    GENESIS,
    Checkpoint,
    LedgerRow,
    canonical_json,
    replay,
    seal,
    verify_chain,
)

HEX64 = "0123456789abcdef" * 4


# --- helpers -----------------------------------------------------------------------


def build_chain(n: int, contents: list[dict[str, Any]] | None = None) -> list[LedgerRow]:
    """N sealed rows, seq 1..N, each linked to the one before (the first to GENESIS)."""
    rows: list[LedgerRow] = []
    prev = GENESIS
    for seq in range(1, n + 1):
        extra = contents[seq - 1] if contents else {}
        fields: dict[str, Any] = {
            "seq": seq,
            "ts": f"2026-01-01T12:{seq // 60:02d}:{seq % 60:02d}.000000Z",
            "event_type": "goal_updated",
            "goal_id": f"g-{seq % 3}",
            "actor": "alice",
            "trace_id": None,
            "span_id": None,
            "payload": {"set": {"version": seq}},
        }
        fields.update(extra)
        row = seal(prev, **fields)
        rows.append(row)
        prev = row.hash
    return rows


def finder(rows: list[LedgerRow]) -> Callable[[str], LedgerRow | None]:
    """find_by_hash over the rows as they now stand."""
    by_hash = {row.hash: row for row in rows}
    return by_hash.get


def verify(rows: list[LedgerRow], checkpoint: Checkpoint | None = None) -> Any:
    return verify_chain(rows, finder(rows), checkpoint)


def edit_payload(rows: list[LedgerRow], seq: int) -> list[LedgerRow]:
    """Change one row's payload in place, leaving its stored hash as it was."""
    out = list(rows)
    out[seq - 1] = replace(out[seq - 1], payload={"edited": out[seq - 1].payload})
    return out


def delete_row(rows: list[LedgerRow], seq: int) -> list[LedgerRow]:
    return [row for row in rows if row.seq != seq]


def swap_rows(rows: list[LedgerRow], a: int, b: int) -> list[LedgerRow]:
    """Exchange every field of rows a and b except seq, which stays with the position."""
    out = list(rows)
    out[a - 1] = replace(rows[b - 1], seq=a)
    out[b - 1] = replace(rows[a - 1], seq=b)
    return out


def rewrite_row(rows: list[LedgerRow], seq: int) -> list[LedgerRow]:
    """Change one row's payload and recompute its hash (the rows after it untouched)."""
    out = list(rows)
    old = out[seq - 1]
    out[seq - 1] = seal(old.prev_hash, **{**old.content(), "payload": {"rewritten": old.payload}})
    return out


def head(rows: list[LedgerRow]) -> Checkpoint:
    return Checkpoint(rows[-1].seq, rows[-1].hash)


# --- sealing -----------------------------------------------------------------------


def test_seal_hashes_prev_hash_and_canonical_content() -> None:
    """hash = sha256(prev_hash || sorted, whitespace-free JSON of the hashed fields)."""
    row = seal(
        GENESIS,
        seq=1,
        ts="2026-01-01T12:00:00.000000Z",
        event_type="goal_created",
        goal_id="g-1",
        actor="alice",
        trace_id=None,
        span_id=None,
        payload={"set": {"state": "proposed", "id": "g-1"}},
    )

    body = (
        b'{"actor":"alice","event_type":"goal_created","goal_id":"g-1",'
        b'"payload":{"set":{"id":"g-1","state":"proposed"}},"seq":1,'
        b'"span_id":null,"trace_id":null,"ts":"2026-01-01T12:00:00.000000Z"}'
    )
    expected = hashlib.sha256(b"0" * 64 + body).hexdigest()
    assert expected == row.hash
    assert "0" * 64 == row.prev_hash


def test_canonical_json_sorts_keys_without_whitespace() -> None:
    """Canonical JSON sorts keys at every level and has no spaces."""
    assert b'{"a":{"x":1,"y":[2,1]},"b":null}' == canonical_json(
        {"b": None, "a": {"y": [2, 1], "x": 1}}
    )


def test_second_row_links_to_first() -> None:
    """Each row's prev_hash is the hash of the row before it."""
    rows = build_chain(3)

    assert [GENESIS, rows[0].hash, rows[1].hash] == [row.prev_hash for row in rows]
    assert 3 == len({row.hash for row in rows})


def test_row_as_dict_holds_every_column() -> None:
    """as_dict carries the hashed fields plus prev_hash and hash."""
    row = build_chain(1)[0]

    assert {
        "seq",
        "ts",
        "event_type",
        "goal_id",
        "actor",
        "trace_id",
        "span_id",
        "payload",
        "prev_hash",
        "hash",
    } == set(row.as_dict())


# --- verify_chain: intact ------------------------------------------------------------


def test_intact_chain_is_ok() -> None:
    """An untouched chain verifies, reporting its length and head."""
    rows = build_chain(10)

    report = verify(rows)

    assert True is report.ok
    assert 10 == report.rows
    assert 10 == report.head_seq
    assert rows[-1].hash == report.head_hash
    assert None is report.first_bad_seq
    assert None is report.damage


def test_empty_chain_is_ok_at_genesis() -> None:
    """No rows verify as an empty chain whose head is GENESIS at seq 0."""
    report = verify([])

    assert {"ok": True, "rows": 0, "head_seq": 0, "head_hash": "0" * 64} == report.as_dict()


# --- verify_chain: damage ------------------------------------------------------------


@pytest.mark.parametrize("seq", [1, 5, 10])
def test_edited_payload_is_reported_as_edited_at_that_seq(seq: int) -> None:
    """A row whose payload changed but whose hash did not is 'edited' at its seq."""
    rows = edit_payload(build_chain(10), seq)

    report = verify(rows)

    assert False is report.ok
    assert "edited" == report.damage
    assert seq == report.first_bad_seq


def test_broken_report_gives_the_last_good_head() -> None:
    """A broken chain reports how many rows were good and the last good head."""
    original = build_chain(10)

    report = verify(edit_payload(original, 5))

    assert 4 == report.rows
    assert 4 == report.head_seq
    assert original[3].hash == report.head_hash
    assert "its content does not match its hash" == report.reason


@pytest.mark.parametrize("field", ["ts", "event_type", "goal_id", "actor", "trace_id", "span_id"])
def test_editing_any_hashed_field_is_detected(field: str) -> None:
    """Every hashed field is covered: changing any of them is 'edited'."""
    rows = build_chain(6)
    rows[2] = replace(rows[2], **{field: "tampered"})

    report = verify(rows)

    assert ("edited", 3) == (report.damage, report.first_bad_seq)


def test_deleted_middle_row_is_reported_and_named() -> None:
    """Deleting row 5 of 10 is 'deleted', naming row 5, the first missing one."""
    rows = delete_row(build_chain(10), 5)

    report = verify(rows)

    assert False is report.ok
    assert "deleted" == report.damage
    assert 5 == report.first_bad_seq
    assert "rows 5..5 are missing" == report.reason
    assert 4 == report.head_seq


def test_deleted_first_row_is_reported() -> None:
    """Deleting row 1 is 'deleted' with rows 1..1 missing."""
    report = verify(delete_row(build_chain(4), 1))

    assert ("deleted", 1, "rows 1..1 are missing") == (
        report.damage,
        report.first_bad_seq,
        report.reason,
    )


def test_deleted_run_of_rows_names_the_range() -> None:
    """Deleting rows 3, 4 and 5 names the whole gap."""
    rows = [row for row in build_chain(8) if row.seq not in (3, 4, 5)]

    report = verify(rows)

    assert ("deleted", 3, "rows 3..5 are missing") == (
        report.damage,
        report.first_bad_seq,
        report.reason,
    )


def test_deleted_row_with_later_rows_renumbered_is_deleted() -> None:
    """Deleting row 5 and renumbering the rest to close the gap is still 'deleted' at 5."""
    original = build_chain(8)
    rows = original[:4] + [replace(row, seq=row.seq - 1) for row in original[5:]]

    report = verify(rows)

    assert ("deleted", 5) == (report.damage, report.first_bad_seq)
    assert "the row it was chained to is gone" == report.reason


def test_swapped_rows_are_reported_as_reordered() -> None:
    """Rows 5 and 6 exchanging contents (seq staying put) is 'reordered' at 5."""
    rows = swap_rows(build_chain(10), 5, 6)

    report = verify(rows)

    assert False is report.ok
    assert "reordered" == report.damage
    assert 5 == report.first_bad_seq
    assert "this row was written as seq 6" == report.reason


def test_swapped_first_two_rows_are_reordered() -> None:
    """Swapping rows 1 and 2 is 'reordered' at 1."""
    report = verify(swap_rows(build_chain(3), 1, 2))

    assert ("reordered", 1) == (report.damage, report.first_bad_seq)


def test_swapped_distant_rows_are_reordered() -> None:
    """Swapping rows 2 and 9 is 'reordered' at 2, written as seq 9."""
    report = verify(swap_rows(build_chain(10), 2, 9))

    assert ("reordered", 2, "this row was written as seq 9") == (
        report.damage,
        report.first_bad_seq,
        report.reason,
    )


@pytest.mark.parametrize("seq", [1, 4, 9])
def test_rewritten_row_with_recomputed_hash_is_edited(seq: int) -> None:
    """A row re-hashed to look whole is caught by the next row's link: 'edited' at it."""
    rows = rewrite_row(build_chain(10), seq)

    report = verify(rows)

    assert False is report.ok
    assert "edited" == report.damage
    assert seq == report.first_bad_seq
    assert "rewritten with a recomputed hash" == report.reason


# --- checkpoints -----------------------------------------------------------------------


def test_chain_matching_its_checkpoint_is_ok() -> None:
    """A chain that still holds its checkpoint row verifies."""
    rows = build_chain(10)

    assert True is verify(rows, head(rows)).ok


def test_chain_grown_past_its_checkpoint_is_ok() -> None:
    """Rows appended after a checkpoint do not break it."""
    rows = build_chain(10)
    checkpoint = Checkpoint(6, rows[5].hash)

    report = verify(rows, checkpoint)

    assert (True, 10) == (report.ok, report.head_seq)


@pytest.mark.parametrize("keep", [0, 3, 9])
def test_truncated_tail_is_reported_against_checkpoint(keep: int) -> None:
    """Dropping rows past `keep` is 'truncated' at keep+1 when a checkpoint is later."""
    rows = build_chain(10)
    checkpoint = head(rows)

    report = verify(rows[:keep], checkpoint)

    assert False is report.ok
    assert "truncated" == report.damage
    assert keep + 1 == report.first_bad_seq
    assert f"the ledger ends at seq {keep}, before checkpoint seq 10" == report.reason


def test_truncation_is_invisible_without_checkpoint() -> None:
    """Without a checkpoint a shorter chain is just a shorter valid chain."""
    assert True is verify(build_chain(10)[:7]).ok


def test_checkpoint_with_different_hash_is_edited() -> None:
    """A checkpoint whose hash differs from the row at its seq is 'edited' at that seq."""
    rows = build_chain(10)

    report = verify(rows, Checkpoint(7, HEX64))

    assert False is report.ok
    assert "edited" == report.damage
    assert 7 == report.first_bad_seq
    assert "the chain up to the checkpoint was rewritten" == report.reason


def test_fully_rehashed_tail_is_caught_by_checkpoint() -> None:
    """Rewriting the last row (nothing after it to notice) is caught by the checkpoint."""
    original = build_chain(10)
    rows = rewrite_row(original, 10)

    assert True is verify(rows).ok
    report = verify(rows, head(original))
    assert ("edited", 10) == (report.damage, report.first_bad_seq)


def test_checkpoint_parse_round_trip() -> None:
    """A checkpoint printed as SEQ:HASH parses back to the same seq and hash."""
    text = f"42:{HEX64}"

    checkpoint = Checkpoint.parse(text)

    assert Checkpoint(42, HEX64) == checkpoint
    assert text == str(checkpoint)


def test_checkpoint_parse_lowercases_the_hash() -> None:
    """An upper-case hash is read as the same (lower-case) hash."""
    assert Checkpoint(7, HEX64) == Checkpoint.parse(f"7:{HEX64.upper()}")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "42",
        "42:",
        f":{HEX64}",
        f"-1:{HEX64}",
        f"4.2:{HEX64}",
        f"abc:{HEX64}",
        f" 42:{HEX64}",
        f"42:{HEX64[:63]}",
        f"42:{HEX64}0",
        f"42 {HEX64}",
    ],
)
def test_checkpoint_parse_rejects_malformed_text(text: str) -> None:
    """Anything but SEQ:64-char-hash is rejected with a ValueError saying the form."""
    with pytest.raises(ValueError, match="a checkpoint is SEQ:HASH"):
        Checkpoint.parse(text)


@pytest.mark.parametrize(
    "digest",
    ["z" * 64, "0" * 63 + "g", "0" * 63 + "-", " " * 64],
    ids=["all-z", "trailing-g", "trailing-dash", "spaces"],
)
def test_checkpoint_parse_rejects_a_hash_that_is_not_hex(digest: str) -> None:
    """A 64-character hash with non-hex characters is not a sha256 and is rejected."""
    with pytest.raises(ValueError, match="a checkpoint is SEQ:HASH"):
        Checkpoint.parse(f"42:{digest}")


# --- property: every single tamper is found -------------------------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=8),
)
row_contents = st.fixed_dictionaries(
    {
        "event_type": st.sampled_from(["goal_created", "goal_updated", "goal_adopted"]),
        "goal_id": st.one_of(st.none(), st.sampled_from(["g-a", "g-b", "g-c"])),
        "actor": st.sampled_from(["alice", "ops", "scheduler"]),
        "payload": st.dictionaries(
            st.text(alphabet="abcxyz", min_size=1, max_size=4), json_scalars, max_size=4
        ),
    }
)
chains = st.lists(row_contents, min_size=1, max_size=40)


@settings(max_examples=100, deadline=None, database=None)
@given(contents=chains)
def test_untampered_random_chains_verify(contents: list[dict[str, Any]]) -> None:
    """Any untouched chain verifies, with or without its head checkpoint."""
    rows = build_chain(len(contents), contents)

    report = verify(rows, head(rows))

    assert True is report.ok
    assert len(rows) == report.rows
    assert len(rows) == report.head_seq
    assert rows[-1].hash == report.head_hash
    assert True is verify(rows).ok


@settings(max_examples=100, deadline=None, database=None)
@given(
    contents=chains,
    kind=st.sampled_from(["edit", "delete", "swap", "rewrite", "truncate"]),
    data=st.data(),
)
def test_any_single_tamper_is_detected_at_the_right_seq(
    contents: list[dict[str, Any]], kind: str, data: st.DataObject
) -> None:
    """A single edit, deletion, swap, rewrite or truncation is never reported ok,
    and first_bad_seq points at the tampered row (or the one after a deletion)."""
    original = build_chain(len(contents), contents)
    n = len(original)
    checkpoint = head(original)

    if kind == "swap":
        if n < 2:
            kind = "edit"
        else:
            a = data.draw(st.integers(1, n - 1), label="a")
            b = data.draw(st.integers(a + 1, n), label="b")
            report = verify(swap_rows(original, a, b), checkpoint)
            assert (False, "reordered", a) == (report.ok, report.damage, report.first_bad_seq)
            return

    if kind == "truncate":
        keep = data.draw(st.integers(0, n - 1), label="keep")
        report = verify(original[:keep], checkpoint)
        assert (False, "truncated", keep + 1) == (report.ok, report.damage, report.first_bad_seq)
        return

    k = data.draw(st.integers(1, n), label="k")
    if kind == "edit":
        report = verify(edit_payload(original, k), checkpoint)
        assert (False, "edited", k) == (report.ok, report.damage, report.first_bad_seq)
    elif kind == "rewrite":
        report = verify(rewrite_row(original, k), checkpoint)
        assert (False, "edited", k) == (report.ok, report.damage, report.first_bad_seq)
    else:  # delete
        report = verify(delete_row(original, k), checkpoint)
        assert False is report.ok
        assert report.first_bad_seq is not None
        assert k <= report.first_bad_seq <= k + 1
        expected_damage = "truncated" if k == n else "deleted"
        assert expected_damage == report.damage


# --- replay ---------------------------------------------------------------------------


def test_replay_folds_set_payloads_into_last_state_per_goal() -> None:
    """Replaying goal events gives each goal's record as the last `set`s left it."""
    contents = [
        {"goal_id": "g-a", "payload": {"set": {"id": "g-a", "state": "proposed", "version": 1}}},
        {"goal_id": "g-b", "payload": {"set": {"id": "g-b", "state": "proposed", "version": 1}}},
        {
            "goal_id": "g-a",
            "payload": {"action": "adopt", "set": {"state": "adopted", "version": 2}},
        },
        {"goal_id": "g-a", "payload": {"set": {"value": 0.9, "version": 3}}},
        {"goal_id": "g-b", "payload": {"set": {"state": "abandoned", "version": 2}}},
    ]

    records = replay(build_chain(len(contents), contents))

    # Fields added after a goal's creation event start at their column defaults.
    later = {"assigned_to": None, "related": [], "criteria": [], "manual_block": None,
             "links": [], "result": None, "last_failure": None, "progress": 0.0,
             "parent_id": None, "completion_policy": "all", "tree_block": None}  # fmt: skip
    assert later == LATER_FIELD_DEFAULTS
    assert {
        "g-a": {**later, "id": "g-a", "state": "adopted", "version": 3, "value": 0.9},
        "g-b": {**later, "id": "g-b", "state": "abandoned", "version": 2},
    } == records


def test_replay_ignores_events_without_set() -> None:
    """Events with no `set`, an empty `set`, or no goal leave the records alone."""
    contents = [
        {"goal_id": "g-a", "payload": {"set": {"id": "g-a", "version": 1}}},
        {"goal_id": "g-a", "event_type": "goal_blocked_by_belief", "payload": {"beliefs": ["b"]}},
        {"goal_id": "g-a", "payload": {"set": {}}},
        {"goal_id": None, "event_type": "weights_changed", "payload": {"set": {"wv": 0.6}}},
        {"goal_id": "g-b", "event_type": "goal_conflict_detected", "payload": {"expected": 1}},
    ]

    records = replay(build_chain(len(contents), contents))

    assert {"g-a": {**LATER_FIELD_DEFAULTS, "id": "g-a", "version": 1}} == records


def test_replay_of_no_rows_is_empty() -> None:
    """An empty ledger replays to no goals."""
    assert {} == replay([])
