"""The outbox: the events committed with each change, waiting to be queued.

A row is written in the same transaction as its ledger event, so an event can
be queued late but never lost; the relay marks rows once they are on the queue.
"""

from __future__ import annotations

import sqlite3

from service.domain.ledger import LedgerRow


def add(conn: sqlite3.Connection, event: LedgerRow) -> None:
    conn.execute(
        "INSERT INTO outbox (ledger_seq, event_type, goal_id, created_at) VALUES (?, ?, ?, ?)",
        (event.seq, event.event_type, event.goal_id, event.ts),
    )


def pending_count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM outbox WHERE relayed_at IS NULL").fetchone()[0])
