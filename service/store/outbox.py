"""The outbox: the events committed with each change, on their way to the ranking worker.

A row is written in the same transaction as its ledger event, so an event can be
delivered late but never lost. Delivery is at-least-once:

- the relay *claims* pending rows (sets `relayed_at`) and puts them on the queue;
  if that fails it releases them;
- the ranking worker sets `applied_at` once their effect is in Redis;
- rows claimed long ago and still not applied (a lost job, a killed worker, an
  emptied Redis) are released again, so the relay sends them once more;
- a rebuild of the ranking covers every event up to the ledger seq it read: it moves
  the watermark (`outbox_watermark.applied_through`) instead of marking each row, and
  rows at or below it count as applied everywhere here. The worker moves it too, to
  just below the oldest event still unapplied, each time it marks events applied.
"""

from __future__ import annotations

from typing import Any

from service.domain.events import EventRef
from service.domain.ledger import LedgerRow
from service.store.db import Connection, insert_rows

# Rows a rebuild has not covered (the scalar subquery is read once per statement, and the
# partial indexes on ledger_seq start their range there).
_ABOVE = "ledger_seq > (SELECT applied_through FROM outbox_watermark)"


def add(conn: Connection, *events: LedgerRow) -> None:
    rows = [[e.seq, e.event_type, e.goal_id, e.ts] for e in events]
    insert_rows(conn, "outbox (ledger_seq, event_type, goal_id, created_at)", 4, rows)


def has_pending(conn: Connection) -> bool:
    """Cheap enough to poll many times a second (a partial index answers it)."""
    # ORDER BY the index's column: the planner walks outbox_pending from the watermark.
    # Without it, once the table has statistics (every row below the watermark still has
    # relayed_at NULL), PostgreSQL scans the whole table to find none.
    row = conn.execute(
        f"SELECT 1 FROM outbox WHERE relayed_at IS NULL AND {_ABOVE} ORDER BY ledger_seq LIMIT 1"
    ).fetchone()
    return row is not None


def claim(conn: Connection, now: str, limit: int) -> list[EventRef]:
    """The oldest pending events, marked relayed; the caller holds the write lock."""
    # Each event's ledger row is looked up by its key (a subquery per row claimed), not
    # joined: PostgreSQL cannot know how few rows lie above the watermark, and with the
    # tables' statistics it joined the ledger by walking its whole primary key from seq 1
    # (or scanning it), tens of milliseconds at 100k goals under the write lock.
    ledger_row = "FROM ledger l WHERE l.seq = o.ledger_seq"
    rows = conn.execute(
        f"""
        SELECT o.ledger_seq, o.event_type, o.goal_id,
               (SELECT l.trace_id {ledger_row}) AS trace_id,
               (SELECT {conn.dialect.field("l.payload", "belief_id")} {ledger_row}) AS belief_id
        FROM outbox o
        WHERE o.relayed_at IS NULL AND o.{_ABOVE}
        ORDER BY o.ledger_seq
        LIMIT ?
        """,
        (limit,),
    ).fetchall()
    if rows:
        conn.execute(
            "UPDATE outbox SET relayed_at = ?"
            " WHERE ledger_seq BETWEEN ? AND ? AND relayed_at IS NULL",
            (now, rows[0]["ledger_seq"], rows[-1]["ledger_seq"]),
        )
    return [
        EventRef(r["ledger_seq"], r["event_type"], r["goal_id"], r["belief_id"], r["trace_id"])
        for r in rows
    ]


def release(conn: Connection, seqs: list[int]) -> None:
    """Undo a claim whose events never reached the queue."""
    conn.execute(
        "UPDATE outbox SET relayed_at = NULL WHERE applied_at IS NULL"
        f" AND ledger_seq IN ({conn.dialect.values_of(integers=True)})",
        (_json_ints(seqs),),
    )


def mark_applied(conn: Connection, seqs: list[int], now: str) -> int:
    """Mark these events applied; how many were not already (a redelivery, or an event a
    rebuild covered, counts 0). The watermark then moves to just below the oldest event
    still unapplied: every query here starts its walk of the outbox at the watermark,
    and the rows applied above it (with, until a vacuum, their index entries from
    before) would otherwise lengthen that walk with every event until the next rebuild.
    It is written only when it moves."""
    applied = conn.execute(
        "UPDATE outbox SET applied_at = ?, relayed_at = coalesce(relayed_at, ?)"
        f" WHERE applied_at IS NULL AND {_ABOVE}"
        f" AND ledger_seq IN ({conn.dialect.values_of(integers=True)})",
        (now, now, _json_ints(seqs)),
    ).rowcount
    # Writes go one at a time (the write lock) and commit in ledger order: every event
    # below the highest seen here is committed, and applied unless read as unapplied.
    conn.send(
        "UPDATE outbox_watermark SET applied_through = moved.through FROM (SELECT coalesce("
        " (SELECT min(ledger_seq) - 1 FROM outbox WHERE applied_at IS NULL"
        "  AND ledger_seq > w.applied_through),"
        " (SELECT max(ledger_seq) FROM outbox WHERE ledger_seq > w.applied_through)"
        ") AS through FROM outbox_watermark w) AS moved"
        " WHERE moved.through > outbox_watermark.applied_through",
        (),
    )
    return applied


def mark_applied_through(conn: Connection, seq: int) -> int:
    """Every event up to `seq` is applied (a rebuild read SQLite at that ledger head): the
    watermark moves, no row is written. How many events that covers, not counting those
    already applied."""
    (through,) = conn.execute("SELECT applied_through FROM outbox_watermark").fetchone()
    if seq <= through:
        return 0
    (covered,) = conn.execute(
        "SELECT count(*) FROM outbox"
        " WHERE applied_at IS NULL AND ledger_seq > ? AND ledger_seq <= ?",
        (through, seq),
    ).fetchone()
    conn.execute("UPDATE outbox_watermark SET applied_through = ?", (seq,))
    return int(covered)


def redeliver(conn: Connection, claimed_before: str) -> int:
    """Release claims older than `claimed_before` that were never applied."""
    return conn.execute(
        "UPDATE outbox SET relayed_at = NULL"
        f" WHERE applied_at IS NULL AND relayed_at IS NOT NULL AND relayed_at < ? AND {_ABOVE}",
        (claimed_before,),
    ).rowcount


def prune(conn: Connection, applied_before: str) -> int:
    """Drop rows applied before `applied_before`, and rows a rebuild covered (never
    marked applied) that were written before it (the ledger keeps the events
    themselves)."""
    return conn.execute(
        "DELETE FROM outbox WHERE (applied_at IS NOT NULL AND applied_at < ?)"
        f" OR (applied_at IS NULL AND NOT {_ABOVE} AND created_at < ?)",
        (applied_before, applied_before),
    ).rowcount


def backlog(conn: Connection) -> dict[str, Any]:
    """How far the ranking cache is behind: unapplied events and the oldest one's time."""
    row = conn.execute(
        "SELECT count(*) AS n, min(created_at) AS oldest FROM outbox"
        f" WHERE applied_at IS NULL AND {_ABOVE}"
    ).fetchone()
    return {"unapplied": int(row["n"]), "oldest_unapplied_at": row["oldest"]}


def _json_ints(values: list[int]) -> str:
    return "[" + ",".join(str(int(v)) for v in values) + "]"


def oldest_unapplied(conn: Connection) -> str | None:
    """When the oldest event the ranking worker has not applied was written (None: none)."""
    row = conn.execute(
        f"SELECT created_at FROM outbox WHERE applied_at IS NULL AND {_ABOVE}"
        " ORDER BY ledger_seq LIMIT 1"
    ).fetchone()
    return None if row is None else str(row[0])
