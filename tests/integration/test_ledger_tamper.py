"""Tampering with the ledger behind GoalStore's back, and `ledger verify` catching it, on
each engine.

The tamper connection (service.testing.tampering) turns the append-only triggers and
the foreign keys off first: someone with write access to the file or the database.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import orjson
import pytest

from service import commands
from service.commands import Context
from service.domain.errors import VersionConflict
from service.domain.inputs import GoalUpdate
from service.domain.ledger import Checkpoint
from service.store.db import Connection, Database
from service.testing import FrozenClock, default_vetting, new_goal, tampering
from tests.integration.conftest import CliRunner

EVENTS = 30  # what build_ledger writes, counted by hand below
GENESIS = "0" * 64


def build_ledger(db: Database, ctx: Context, clock: FrozenClock) -> None:
    """30 events: 8 creates, 6 updates, 6 adopts, 3 abandons, 3 conflicts, 4 deletes."""
    ids = [f"g-{n}" for n in range(1, 9)]
    for goal_id in ids:  # 8 goal_created
        clock.advance(seconds=1)
        new_goal(db, ctx, id=goal_id)
    for goal_id in ids[:6]:  # 6 goal_updated: each goes to version 2
        clock.advance(seconds=1)
        commands.update_goal(db, ctx, goal_id, GoalUpdate(value=0.9, text=f"{goal_id} v2"), 1)
    for goal_id in ids[:6]:  # 6 goal_adopted: version 3
        clock.advance(seconds=1)
        commands.adopt_goal(db, ctx, goal_id, 2, vetting=default_vetting())
    for goal_id in ids[:3]:  # 3 goal_abandoned: version 4
        clock.advance(seconds=1)
        commands.abandon_goal(db, ctx, goal_id, 3)
    for goal_id in ids[3:6]:  # 3 goal_conflict_detected
        clock.advance(seconds=1)
        with pytest.raises(VersionConflict):
            commands.update_goal(db, ctx, goal_id, GoalUpdate(value=0.1), 1)
    for goal_id in (ids[0], ids[3], ids[6], ids[7]):  # 4 goal_deleted
        clock.advance(seconds=1)
        commands.delete_goal(db, ctx, goal_id)


@pytest.fixture
def ledger_db(db: Database, ctx: Context, clock: FrozenClock) -> Database:
    build_ledger(db, ctx, clock)
    return db


tamper = tampering


def report_of(db: Database, checkpoint: Checkpoint | None = None) -> tuple[Any, ...]:
    report = commands.verify_ledger(db, checkpoint)
    return report.ok, report.damage, report.first_bad_seq


def swap_rows(conn: Connection, first: int, second: int) -> None:
    """Exchange every column but seq between two rows (hash is UNIQUE, so via a placeholder)."""
    columns = ("ts", "event_type", "goal_id", "actor", "trace_id", "span_id", "payload",
               "prev_hash", "hash")  # fmt: skip
    select = f"SELECT {', '.join(columns)} FROM ledger WHERE seq = ?"
    row_a = tuple(conn.execute(select, (first,)).fetchone())
    row_b = tuple(conn.execute(select, (second,)).fetchone())
    assignments = ", ".join(f"{c} = ?" for c in columns)
    conn.execute("UPDATE ledger SET hash = 'placeholder' WHERE seq = ?", (first,))
    conn.execute(f"UPDATE ledger SET {assignments} WHERE seq = ?", (*row_a, second))
    conn.execute(f"UPDATE ledger SET {assignments} WHERE seq = ?", (*row_b, first))


def hashed_content(row: Any) -> dict[str, Any]:
    """The fields the chain hashes, as DESIGN.md §5 lists them."""
    names = ("seq", "ts", "event_type", "goal_id", "actor", "trace_id", "span_id")
    return {name: row[name] for name in names} | {"payload": orjson.loads(row["payload"])}


def independent_hash(prev_hash: str, content: dict[str, Any]) -> str:
    """The documented formula, computed here: sha256(prev_hash || sorted-key compact JSON)."""
    body = orjson.dumps(content, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(prev_hash.encode() + body).hexdigest()


# --- an untouched ledger --------------------------------------------------------------


def test_untouched_ledger_verifies(ledger_db: Database) -> None:
    """The ledger written by 30 commands verifies whole, with 30 rows and head seq 30."""
    report = commands.verify_ledger(ledger_db)

    assert (True, EVENTS, EVENTS, None) == (
        report.ok, report.rows, report.head_seq, report.damage
    )  # fmt: skip


def test_our_hash_formula_matches_the_stored_chain(ledger_db: Database) -> None:
    """Every stored row's hash is sha256(prev_hash || canonical JSON), chained from GENESIS."""
    rows = ledger_db.connection().execute("SELECT * FROM ledger ORDER BY seq").fetchall()
    prev = GENESIS
    for row in rows:
        content = hashed_content(row)
        assert (prev, independent_hash(prev, content)) == (row["prev_hash"], row["hash"])
        prev = row["hash"]
    assert EVENTS == len(rows)


# --- edits, deletions, reorderings ----------------------------------------------------


@pytest.mark.parametrize("seq", [1, 12, EVENTS])
def test_edited_payload_is_found_at_its_seq(ledger_db: Database, seq: int) -> None:
    """Changing one row's payload is reported as edited, at that row's seq."""
    with tamper(ledger_db) as conn:
        (payload,) = conn.execute("SELECT payload FROM ledger WHERE seq = ?", (seq,)).fetchone()
        edited = orjson.dumps(orjson.loads(payload) | {"tampered": 1}).decode()
        conn.execute("UPDATE ledger SET payload = ? WHERE seq = ?", (edited, seq))

    assert (False, "edited", seq) == report_of(ledger_db)


@pytest.mark.parametrize("column", ["actor", "ts", "goal_id", "event_type", "trace_id"])
def test_edited_metadata_column_is_found(ledger_db: Database, column: str) -> None:
    """Every hashed column is covered: rewriting any of them on seq 17 is reported as edited."""
    with tamper(ledger_db) as conn:
        conn.execute(f"UPDATE ledger SET {column} = 'forged' WHERE seq = 17")

    assert (False, "edited", 17) == report_of(ledger_db)


def test_rewritten_row_with_recomputed_hash_is_found(ledger_db: Database) -> None:
    """Re-hashing an edited row does not hide it: the next row no longer links to it."""
    with tamper(ledger_db) as conn:
        row = conn.execute("SELECT * FROM ledger WHERE seq = 20").fetchone()
        content = hashed_content(row)
        content["payload"] = {"set": {"value": 1.0}}
        forged = independent_hash(row["prev_hash"], content)
        conn.execute(
            "UPDATE ledger SET payload = ?, hash = ? WHERE seq = 20",
            (orjson.dumps(content["payload"]).decode(), forged),
        )

    assert (False, "edited", 20) == report_of(ledger_db)


@pytest.mark.parametrize("seq", [15, 2, 1])
def test_deleted_row_is_reported_deleted(ledger_db: Database, seq: int) -> None:
    """Deleting one row is reported as deleted, and the reason names the missing seq."""
    with tamper(ledger_db) as conn:
        conn.execute("DELETE FROM ledger WHERE seq = ?", (seq,))

    report = commands.verify_ledger(ledger_db)

    assert (False, "deleted") == (report.ok, report.damage)
    assert re.search(rf"\b{seq}\b", report.reason or ""), report.reason


def test_deleted_row_is_the_first_bad_seq(ledger_db: Database) -> None:
    """first_bad_seq of a deleted middle row is the seq that is missing, as for truncation."""
    with tamper(ledger_db) as conn:
        conn.execute("DELETE FROM ledger WHERE seq = 15")

    assert (False, "deleted", 15) == report_of(ledger_db)


@pytest.mark.parametrize("first", [10, 1, EVENTS - 1])
def test_swapped_adjacent_rows_are_reported_reordered(ledger_db: Database, first: int) -> None:
    """Swapping two adjacent rows (all but seq) is reported as reordered, at the first of them."""
    with tamper(ledger_db) as conn:
        swap_rows(conn, first, first + 1)

    assert (False, "reordered", first) == report_of(ledger_db)


# --- truncation and checkpoints -------------------------------------------------------


def test_truncated_tail_is_found_only_with_a_checkpoint(ledger_db: Database) -> None:
    """Deleting the last rows passes a plain verify but fails one against an earlier checkpoint."""
    checkpoint = commands.ledger_checkpoint(ledger_db)
    assert EVENTS == checkpoint.seq

    with tamper(ledger_db) as conn:
        conn.execute("DELETE FROM ledger WHERE seq > ?", (EVENTS - 3,))

    assert (False, "truncated", EVENTS - 2) == report_of(ledger_db, checkpoint)
    plain = commands.verify_ledger(ledger_db)
    assert (True, EVENTS - 3, EVENTS - 3) == (plain.ok, plain.rows, plain.head_seq)


def test_checkpoint_still_verifies_after_more_appends(ledger_db: Database, ctx: Context) -> None:
    """A checkpoint stays valid as the ledger grows past it."""
    checkpoint = commands.ledger_checkpoint(ledger_db)
    new_goal(ledger_db, ctx, id="g-late")

    assert (True, None, None) == report_of(ledger_db, checkpoint)


def test_checkpoint_detects_a_rewritten_tail(ledger_db: Database) -> None:
    """Re-hashing the checkpointed row hides it from a plain verify, not from the checkpoint."""
    checkpoint = commands.ledger_checkpoint(ledger_db)
    with tamper(ledger_db) as conn:
        row = conn.execute("SELECT * FROM ledger WHERE seq = ?", (EVENTS,)).fetchone()
        content = hashed_content(row)
        content["payload"] = {"set": {"deleted_at": None}}
        conn.execute(
            "UPDATE ledger SET payload = ?, hash = ? WHERE seq = ?",
            (
                orjson.dumps(content["payload"]).decode(),
                independent_hash(row["prev_hash"], content),
                EVENTS,
            ),
        )

    assert (True, None, None) == report_of(ledger_db)
    assert (False, "edited", EVENTS) == report_of(ledger_db, checkpoint)


def test_checkpoint_of_an_empty_ledger_verifies_later(db: Database, ctx: Context) -> None:
    """A checkpoint taken before the first event (0:GENESIS) accepts any whole ledger."""
    checkpoint = commands.ledger_checkpoint(db)
    assert Checkpoint(0, GENESIS) == checkpoint
    new_goal(db, ctx, id="g-1")

    assert (True, None, None) == report_of(db, checkpoint)


# --- the CLI --------------------------------------------------------------------------


def test_cli_verify_exits_0_on_a_whole_ledger(ledger_db: Database, run_cli: CliRunner) -> None:
    """`goalstore ledger verify` prints ok and exits 0 on an untouched ledger."""
    code, out = run_cli(ledger_db.location, "ledger", "verify")

    assert (0, True, EVENTS, EVENTS) == (code, out["ok"], out["rows"], out["head_seq"])
    assert "first_bad_seq" not in out


def test_cli_verify_exits_1_and_names_the_bad_seq(ledger_db: Database, run_cli: CliRunner) -> None:
    """After an edit, `ledger verify` exits 1 and its JSON names first_bad_seq and the damage."""
    with tamper(ledger_db) as conn:
        conn.execute("UPDATE ledger SET actor = 'mallory' WHERE seq = 7")

    code, out = run_cli(ledger_db.location, "ledger", "verify")

    assert (1, False, 7, "edited") == (code, out["ok"], out["first_bad_seq"], out["damage"])


def test_cli_verify_with_checkpoint_reports_truncation(
    ledger_db: Database, run_cli: CliRunner
) -> None:
    """`ledger verify --checkpoint SEQ:HASH` exits 1 after the tail was cut off."""
    checkpoint = str(commands.ledger_checkpoint(ledger_db))
    with tamper(ledger_db) as conn:
        conn.execute("DELETE FROM ledger WHERE seq = ?", (EVENTS,))

    plain_code, _ = run_cli(ledger_db.location, "ledger", "verify")
    code, out = run_cli(ledger_db.location, "ledger", "verify", "--checkpoint", checkpoint)

    assert 0 == plain_code
    assert (1, "truncated", EVENTS) == (code, out["damage"], out["first_bad_seq"])


def test_cli_verify_rejects_a_malformed_checkpoint(ledger_db: Database, run_cli: CliRunner) -> None:
    """A checkpoint that is not SEQ:HASH is invalid input (exit 5)."""
    code, out = run_cli(ledger_db.location, "ledger", "verify", "--checkpoint", "30:nothex")

    assert (5, "invalid") == (code, out["error"])
