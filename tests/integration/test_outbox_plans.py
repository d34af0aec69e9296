"""The outbox queries stay indexed on PostgreSQL once the tables have statistics, and
the watermark they start from follows the events applied.

Selection regressed on PostgreSQL (one goal per call at 100k goals: 345 -> 135 goals/s)
when `store copy` began to ANALYZE what it filled: with statistics, the planner
answered the relay's poll (has_pending, every 25 ms) with a scan of the whole outbox,
and its claim with a merge join walking the ledger's primary key from seq 1, under the
write lock that every start waits on. A rebuild covers events with the watermark,
leaving every row below it with relayed_at NULL, so both read the whole history to
find the few rows above it.

Each query is explained as the relay runs it (the SQL recorded from the store
functions, not copied here); no plan node may read more rows than a few times those
pending. The same calls then say what they said before, on both engines.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from service.domain.events import EventRef
from service.store import outbox
from service.store.db import Connection, Database
from service.testing import migrated_database

HISTORY = 20_000  # events a rebuild covered (below the watermark), never relayed
PENDING = 5  # events above it


class _Undo(Exception):
    """Raised to roll a write transaction back."""


class _Recording:
    """A Connection that records the statements it runs (and runs them)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.statements: list[tuple[str, Any]] = []

    def execute(self, sql: str, parameters: Any = (), /) -> Any:
        self.statements.append((sql, parameters))
        return self.conn.execute(sql, parameters)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)


def _fill(db: Database, history: int, pending: int) -> None:
    """`history + pending` ledger events with their outbox rows, the first `history`
    covered by the watermark (as a rebuild leaves them), and the planner's statistics."""
    total = history + pending
    with db.write() as conn:
        conn.execute(
            "INSERT INTO ledger (seq, ts, event_type, goal_id, actor, trace_id, span_id,"
            " payload, prev_hash, hash)"
            " SELECT s, '2026-01-01T00:00:00Z', 'goal_created', 'g' || s, 'test', 't' || s,"
            " NULL, '{}', 'p' || s, 'h' || s FROM generate_series(1, ?) AS s",
            (total,),
        )
        conn.execute(
            "INSERT INTO outbox (ledger_seq, event_type, goal_id, created_at)"
            " SELECT s, 'goal_created', 'g' || s, '2026-01-01T00:00:00Z'"
            " FROM generate_series(1, ?) AS s",
            (total,),
        )
        conn.execute("UPDATE outbox_watermark SET applied_through = ?", (history,))
    db.connection().execute("ANALYZE")


def _pages(plan: dict[str, Any]) -> int:
    """The shared buffers an EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) plan touched."""
    return int(plan.get("Shared Hit Blocks", 0) + plan.get("Shared Read Blocks", 0))


def _rows_read(plan: dict[str, Any]) -> list[tuple[str, int]]:
    """Each node of an EXPLAIN (ANALYZE, FORMAT JSON) plan with the rows it read."""
    read = plan.get("Actual Rows", 0) * plan.get("Actual Loops", 1)
    read += plan.get("Rows Removed by Filter", 0) + plan.get("Rows Removed by Index Recheck", 0)
    nodes = [(f"{plan['Node Type']} {plan.get('Index Name', plan.get('Relation Name', ''))}", read)]
    for child in plan.get("Plans", []):
        nodes += _rows_read(child)
    return nodes


def _widest_reads(db: Database, recorded: list[tuple[str, Any]]) -> list[tuple[str, int]]:
    """The node reading the most rows in the plan of each SELECT recorded."""
    widest = []
    with db.read() as conn:
        for sql, parameters in recorded:
            if not sql.lstrip().upper().startswith("SELECT"):
                continue
            (document,) = conn.execute(
                f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", parameters
            ).fetchone()
            plan = (json.loads(document) if isinstance(document, str) else document)[0]["Plan"]
            widest.append(max(_rows_read(plan), key=lambda node: node[1]))
    return widest


def test_the_relay_reads_the_pending_events_not_the_history(postgres_url: str) -> None:
    db = migrated_database(postgres_url)
    try:
        _fill(db, HISTORY, PENDING)
        with contextlib.suppress(_Undo), db.write() as conn:
            recording = _Recording(conn)
            assert outbox.has_pending(recording)
            claimed = outbox.claim(recording, "2026-01-01T00:00:01Z", 2_000)
            raise _Undo  # the rows stay pending for the plans below
        assert [e.seq for e in claimed] == list(range(HISTORY + 1, HISTORY + PENDING + 1))
        widest = _widest_reads(db, recording.statements)
    finally:
        db.close()
    assert len(widest) == 2  # has_pending's SELECT and claim's
    for node, read in widest:
        assert read <= 4 * PENDING, f"{node} read {read} rows for {PENDING} pending events"


def _events(db: Database, count: int, belief_at: int = 0) -> None:
    """Ledger events 1…count with their outbox rows (event `belief_at` names belief b1)."""
    with db.write() as conn:
        for seq in range(1, count + 1):
            payload = '{"belief_id": "b1"}' if seq == belief_at else "{}"
            conn.execute(
                "INSERT INTO ledger (seq, ts, event_type, goal_id, actor, trace_id, span_id,"
                " payload, prev_hash, hash) VALUES (?, 'ts', 'e', ?, 'a', ?, NULL, ?, ?, ?)",
                (seq, f"g{seq}", f"t{seq}", payload, f"p{seq}", f"h{seq}"),
            )
            conn.execute(
                "INSERT INTO outbox (ledger_seq, event_type, goal_id, created_at)"
                " VALUES (?, 'e', ?, 'ts')",
                (seq, f"g{seq}"),
            )


def test_has_pending_and_claim_mean_what_they_did(db: Database) -> None:
    """Rows at or below the watermark are not pending; the oldest pending events are
    claimed first, at most `limit`, with their trace and belief ids from the ledger, and
    claimed rows are pending no more."""
    _events(db, 7, belief_at=6)
    with db.write() as conn:
        conn.execute("UPDATE outbox_watermark SET applied_through = 4")
    assert outbox.has_pending(db.connection())
    with db.write() as conn:
        first = outbox.claim(conn, "now", 2)
        rest = outbox.claim(conn, "now", 10)
    assert first == [EventRef(5, "e", "g5", None, "t5"), EventRef(6, "e", "g6", "b1", "t6")]
    assert rest == [EventRef(7, "e", "g7", None, "t7")]
    assert not outbox.has_pending(db.connection())
    with db.write() as conn:
        assert outbox.claim(conn, "now", 10) == []


def _watermark(db: Database) -> int:
    (through,) = db.connection().execute("SELECT applied_through FROM outbox_watermark").fetchone()
    return int(through)


def test_applied_events_move_the_watermark_up_to_the_oldest_unapplied(db: Database) -> None:
    """The worker marks events applied, in any order: the watermark follows every event
    applied below the oldest one that is not, and a repeated mark moves nothing."""
    _events(db, 10)
    now = "2026-01-01T00:00:01Z"
    marks = []
    for seqs in ([1, 2, 3, 5, 6], [4], [8, 9], [7, 10], [10]):
        with db.write() as conn:
            applied = outbox.mark_applied(conn, seqs, now)
        marks.append((applied, _watermark(db), outbox.backlog(db.connection())["unapplied"]))
    assert marks == [(5, 3, 5), (1, 6, 4), (2, 6, 2), (2, 10, 0), (0, 10, 0)]
    assert outbox.oldest_unapplied(db.connection()) is None


def test_the_lag_check_reads_the_unapplied_events_not_those_applied(postgres_url: str) -> None:
    """The ranking's freshness check (oldest_unapplied, on every selection and ranked read)
    after the worker applied many events since the last rebuild: it starts at the
    watermark the worker moved, not at the rebuild's."""
    db = migrated_database(postgres_url)
    try:
        _fill(db, 0, HISTORY + PENDING)
        with db.write() as conn:
            outbox.mark_applied(conn, list(range(1, HISTORY + 1)), "2026-01-01T00:00:01Z")
        db.connection().execute("ANALYZE")
        recording = _Recording(db.connection())
        oldest = outbox.oldest_unapplied(recording)
        ((sql, parameters),) = recording.statements
        (document,) = (
            db.connection()
            .execute(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}", parameters)
            .fetchone()
        )
    finally:
        db.close()
    assert oldest == "2026-01-01T00:00:00Z"
    plan = (json.loads(document) if isinstance(document, str) else document)[0]["Plan"]
    # The rows applied since were rewritten, and their old index entries stay until a
    # vacuum: walked from the rebuild's watermark, 58 pages here, more with every event.
    assert _pages(plan) <= 10, plan


def test_an_event_applied_late_is_kept_for_the_retention_from_when_it_was_applied(
    db: Database,
) -> None:
    """The worker's watermark covers what it applied, but retention still counts from
    when a row was applied; only rows a rebuild covered, never marked, go by their age."""
    _events(db, 3)
    with db.write() as conn:
        conn.execute("UPDATE outbox SET created_at = '2026-01-01T00:00:00Z'")
        outbox.mark_applied(conn, [1, 2], "2026-01-01T02:00:00Z")  # two hours late
        outbox.mark_applied_through(conn, 3)  # a rebuild covers 3, never marked
    pruned = []
    for cutoff in ("2026-01-01T01:00:00Z", "2026-01-01T03:00:00Z"):
        with db.write() as conn:
            pruned.append(outbox.prune(conn, cutoff))
    assert pruned == [1, 2]  # 3 by its age; 1 and 2 only an hour after being applied
