"""The ledger table: append a sealed row, read rows back in order."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from service.domain.ledger import (
    GENESIS,
    ChainReport,
    Checkpoint,
    LedgerRow,
    canonical_json,
    seal,
    verify_chain,
)  # fmt: skip
from service.store.db import Connection, insert_rows

_COLUMNS = "seq, ts, event_type, goal_id, actor, trace_id, span_id, payload, prev_hash, hash"


def _row(row: Any) -> LedgerRow:
    return LedgerRow(
        seq=row["seq"],
        ts=row["ts"],
        event_type=row["event_type"],
        goal_id=row["goal_id"],
        actor=row["actor"],
        trace_id=row["trace_id"],
        span_id=row["span_id"],
        payload=orjson.loads(row["payload"]),
        prev_hash=row["prev_hash"],
        hash=row["hash"],
    )


HEAD_SQL = "SELECT seq, hash FROM ledger ORDER BY seq DESC LIMIT 1"


def head_of(row: Any) -> tuple[int, str]:
    """The (seq, hash) of a HEAD_SQL row; GENESIS when the ledger is empty."""
    return (int(row[0]), str(row[1])) if row else (0, GENESIS)


def head(conn: Connection) -> tuple[int, str]:
    """The chain's head: as the write transaction last saw it (its begin, on PostgreSQL,
    or its own last append), else read."""
    if conn.ledger_head is not None:
        return conn.ledger_head
    return head_of(conn.execute(HEAD_SQL).fetchone())


@dataclass(frozen=True)
class Entry:
    """A ledger event to append: what the caller says; the chain adds seq and hashes."""

    ts: str
    event_type: str
    goal_id: str | None
    actor: str
    trace_id: str | None
    span_id: str | None
    payload: dict[str, Any]


def append(conn: Connection, *entries: Entry) -> list[LedgerRow]:
    """Chain new rows onto the head, in order, written by one statement; the caller's
    write transaction makes this race-free."""
    seq, prev_hash = head(conn)
    sealed: list[LedgerRow] = []
    for entry in entries:
        row = seal(prev_hash, seq=seq + 1, ts=entry.ts, event_type=entry.event_type,
                   goal_id=entry.goal_id, actor=entry.actor, trace_id=entry.trace_id,
                   span_id=entry.span_id, payload=entry.payload)  # fmt: skip
        sealed.append(row)
        seq, prev_hash = row.seq, row.hash
    insert_rows(conn, f"ledger ({_COLUMNS})", 10, [
        [r.seq, r.ts, r.event_type, r.goal_id, r.actor, r.trace_id, r.span_id,
         canonical_json(r.payload).decode(), r.prev_hash, r.hash] for r in sealed
    ])  # fmt: skip
    conn.ledger_head = (seq, prev_hash)  # the write lock is held: nobody else appends
    return sealed


def rows(conn: Connection, batch: int = 5_000) -> Iterator[LedgerRow]:
    """Every row in seq order, read in batches so a long ledger is never held at once."""
    after = -1
    while True:
        chunk = conn.execute(
            f"SELECT {_COLUMNS} FROM ledger WHERE seq > ? ORDER BY seq LIMIT ?", (after, batch)
        ).fetchall()
        if not chunk:
            return
        yield from (_row(row) for row in chunk)
        after = chunk[-1]["seq"]


def verify(conn: Connection, checkpoint: Checkpoint | None = None) -> ChainReport:
    """The chain walked from GENESIS over `conn`'s view (`goalstore ledger verify`)."""
    return verify_chain(rows(conn), lambda digest: find_by_hash(conn, digest), checkpoint)


def find_by_hash(conn: Connection, digest: str) -> LedgerRow | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM ledger WHERE hash = ?", (digest,)).fetchone()
    return None if row is None else _row(row)


def for_goal(conn: Connection, goal_id: str, after: int = 0, limit: int = 1_000) -> list[LedgerRow]:
    return [
        _row(row)
        for row in conn.execute(
            f"SELECT {_COLUMNS} FROM ledger WHERE goal_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (goal_id, after, limit),
        )
    ]


def links_at(conn: Connection, seqs: list[int]) -> dict[int, tuple[str, str]]:
    """(prev_hash, hash) of each row of `seqs` that exists, by seq, in one query."""
    if not seqs:
        return {}
    rows = conn.execute(
        "SELECT seq, prev_hash, hash FROM ledger"
        f" WHERE seq IN ({conn.dialect.values_of(integers=True)})",
        (canonical_json(seqs).decode(),),
    )
    return {int(row[0]): (str(row[1]), str(row[2])) for row in rows}


def newest_for_goal(conn: Connection, goal_id: str, limit: int) -> list[LedgerRow]:
    """The goal's newest `limit` events, oldest first."""
    found = conn.execute(
        f"SELECT {_COLUMNS} FROM ledger WHERE goal_id = ? ORDER BY seq DESC LIMIT ?",
        (goal_id, limit),
    )
    return [_row(row) for row in reversed(found.fetchall())]


def payloads_of(conn: Connection, goal_ids: list[str], event_type: str) -> list[tuple[str, Any]]:
    """(goal id, payload) of every `event_type` event of `goal_ids`, in one query on the
    (goal_id, seq) index."""
    if not goal_ids:
        return []
    rows = conn.execute(
        f"SELECT goal_id, payload FROM ledger WHERE goal_id IN ({conn.dialect.values_of()})"
        " AND event_type = ? ORDER BY seq",
        (canonical_json(goal_ids).decode(), event_type),
    )
    return [(row[0], orjson.loads(row[1])) for row in rows]


def matching(
    conn: Connection, *, goal_id: str | None = None, trace_id: str | None = None,
    task_id: str | None = None, after: int = 0, limit: int = 1_000,
) -> list[LedgerRow]:  # fmt: skip
    """The rows after seq `after` that match every filter given, oldest first: a goal's,
    a trace's, a task's (the events whose payload names it as `task.task_id`: its
    selection or manual start, reports, progress and reviews; or as `task_id`: the
    goal's progress it moved)."""
    where: list[str] = ["seq > ?"]
    params: list[Any] = [after]
    for column, value in (("goal_id", goal_id), ("trace_id", trace_id)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if task_id is not None:
        d = conn.dialect
        task = d.field("payload", "task")
        # CASE: only an object's task_id is read, so no other kind of `task` is parsed.
        where.append(f"(CASE WHEN {task} LIKE '{{%' THEN {d.field(task, 'task_id')} END = ?"
                     f" OR {d.field('payload', 'task_id')} = ?)")  # fmt: skip
        params += [task_id, task_id]
    sql = f"SELECT {_COLUMNS} FROM ledger WHERE {' AND '.join(where)} ORDER BY seq LIMIT ?"
    return [_row(row) for row in conn.execute(sql, (*params, limit))]
