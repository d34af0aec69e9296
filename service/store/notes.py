"""A goal's notes: its `goal_note_added` ledger events, newest first (no table of their own).

Read through the ledger's (goal_id, seq) index, walked backwards from the cursor.
"""

from __future__ import annotations

import orjson

from service.domain.annotations import NOTE_EVENT, Note
from service.store.db import Connection

_NEWEST_FIRST = (
    "SELECT seq, ts, actor, trace_id, payload FROM ledger"
    " WHERE goal_id = ? AND event_type = ? AND seq < ? ORDER BY seq DESC LIMIT ?"
)
_NO_CURSOR = 2**62  # above every seq: start at the newest


def page(
    conn: Connection, goal_id: str, *, before: int | None, limit: int
) -> tuple[list[Note], int | None]:
    """Up to `limit` notes older than seq `before` (None: from the newest), and the cursor
    of the next page (None when this one reaches the oldest)."""
    rows = conn.execute(
        _NEWEST_FIRST, (goal_id, NOTE_EVENT, _NO_CURSOR if before is None else before, limit + 1)
    ).fetchall()
    notes = [
        Note.of(row["seq"], goal_id, row["ts"], row["actor"], row["trace_id"],
                orjson.loads(row["payload"]))
        for row in rows[:limit]
    ]  # fmt: skip
    return notes, notes[-1].seq if len(rows) > limit else None
