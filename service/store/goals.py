"""The goals table: goal records in, goal records out."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from service.domain.goal import DERIVED_FIELDS, RECORD_FIELDS
from service.domain.ledger import canonical_json
from service.store.db import Connection, Read, insert_rows
from service.store.dialect import Dialect

_JSON_COLUMNS = frozenset({
    "aligns_with", "contradicts", "depends_on", "success_metrics", "metadata", "related",
    "criteria", "manual_block", "links", "result", "last_failure", "tree_block",
})  # fmt: skip
_COLUMNS = ", ".join(RECORD_FIELDS)


def _to_sql(name: str, value: Any) -> Any:
    return canonical_json(value).decode() if name in _JSON_COLUMNS else value


def _record(row: Any) -> dict[str, Any]:
    return {
        name: orjson.loads(row[name]) if name in _JSON_COLUMNS else row[name]
        for name in RECORD_FIELDS
    }


def fetch(conn: Connection, goal_id: str) -> dict[str, Any] | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM goals WHERE id = ?", (goal_id,)).fetchone()
    return None if row is None else _record(row)


def id_taken(goal_id: str) -> Read:
    """A read whose one row says `goal_id` is taken (by any goal, deleted or not)."""
    return ("SELECT 1 FROM goals WHERE id = ?", (goal_id,))


def insert(conn: Connection, *records: dict[str, Any]) -> None:
    rows = [[_to_sql(name, record[name]) for name in RECORD_FIELDS] for record in records]
    insert_rows(conn, f"goals ({_COLUMNS})", len(RECORD_FIELDS), rows)


def update(conn: Connection, goal_id: str, changes: dict[str, Any], expected_version: int) -> None:
    """Apply `changes` to the goal at `expected_version`; the caller holds the write lock."""
    assignments = ", ".join(f"{name} = ?" for name in changes)
    values = [_to_sql(name, value) for name, value in changes.items()]
    cursor = conn.execute(
        f"UPDATE goals SET {assignments} WHERE id = ? AND version = ?",
        (*values, goal_id, expected_version),
    )
    if cursor.rowcount != 1:  # the write lock makes this unreachable unless the schema is off
        raise RuntimeError(f"goal {goal_id!r} at version {expected_version} was not updated")


def set_derived(conn: Connection, goal_id: str, changes: dict[str, Any]) -> None:
    """Write fields the service derives (DERIVED_FIELDS: progress, last_failure) at any
    version and without bumping it: they follow tasks and failures, not the owner's edits."""
    if not DERIVED_FIELDS.issuperset(changes):
        raise ValueError(f"not derived fields: {sorted(set(changes) - DERIVED_FIELDS)}")
    assignments = ", ".join(f"{name} = ?" for name in changes)
    values = [_to_sql(name, value) for name, value in changes.items()]
    # nothing to read back: sent with the next statement (one round trip on PostgreSQL)
    conn.send(f"UPDATE goals SET {assignments} WHERE id = ?", (*values, goal_id))


def _filters(
    state: str | None, category: str | None, include_deleted: bool,
    assigned_to: str | None = None, parent_id: str | None = None,
) -> tuple[str, list[Any]]:  # fmt: skip
    clauses, params = [], []
    if assigned_to is not None:
        clauses.append("assigned_to = ?")
        params.append(assigned_to)
    if parent_id is not None:
        clauses.append("parent_id = ?")
        params.append(parent_id)
    if state is not None:
        clauses.append("state = ?")
        params.append(state)
    if category is not None:
        clauses.append("category = ?")
        params.append(category)
    if not include_deleted:
        clauses.append("deleted_at IS NULL")
    return (" AND ".join(clauses) or "TRUE"), params


def page(
    conn: Connection,
    *,
    state: str | None,
    category: str | None,
    include_deleted: bool,
    after: int,
    limit: int,
    assigned_to: str | None = None,
    parent_id: str | None = None,
) -> tuple[list[dict[str, Any]], int | None]:
    """Up to `limit` records created after cursor `after`, and the cursor of the next page."""
    where, params = _filters(state, category, include_deleted, assigned_to, parent_id)
    rows = conn.execute(
        f"SELECT pk, {_COLUMNS} FROM goals WHERE {where} AND pk > ? ORDER BY pk LIMIT ?",
        (*params, after, limit + 1),
    ).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    return [_record(row) for row in rows], (rows[-1]["pk"] if more else None)


def count(
    conn: Connection, *, state: str | None, category: str | None, include_deleted: bool,
    assigned_to: str | None = None, parent_id: str | None = None,
) -> int:  # fmt: skip
    where, params = _filters(state, category, include_deleted, assigned_to, parent_id)
    return int(conn.execute(f"SELECT count(*) FROM goals WHERE {where}", params).fetchone()[0])


def all_records(conn: Connection) -> dict[str, dict[str, Any]]:
    return {
        row["id"]: _record(row) for row in conn.execute(f"SELECT {_COLUMNS} FROM goals ORDER BY pk")
    }


RANKING_FIELDS = (
    "id", "value", "effort", "risk", "created_at", "horizon_max_min",
    "aligns_with", "contradicts", "depends_on", "version", "state", "category", "deleted_at",
    "manual_block", "assigned_to", "related", "parent_id", "progress", "tree_block",
)  # fmt: skip


def ranking_rows(conn: Connection, goal_ids: list[str] | None = None) -> list[Any]:
    """What ranking reads of every goal (or of those of `goal_ids`), one row each with the
    columns of RANKING_FIELDS; the id lists are left as JSON text. A rebuild reads
    this instead of whole records: far less to decode."""
    if goal_ids is None:
        cursor = _ranking_cursor(conn, "", ())
    else:
        where = f"WHERE id IN ({conn.dialect.values_of()})"
        cursor = _ranking_cursor(conn, where, (canonical_json(goal_ids).decode(),))
    rows: list[Any] = cursor.fetchall()
    return rows


def ranking_rows_in_state(conn: Connection, state: str, category: str | None = None) -> list[Any]:
    """ranking_rows() of the live goals in `state`, optionally of one category: what the
    ranking read from the store (Redis's fallback) scores."""
    where, params = _filters(state, category, include_deleted=False)
    rows: list[Any] = _ranking_cursor(conn, f"WHERE {where}", tuple(params)).fetchall()
    return rows


def ranking_chunks(conn: Connection, size: int) -> Iterator[list[Any]]:
    """ranking_rows() of every goal, `size` rows at a time, from one cursor: a rebuild
    scores and sends each chunk while SQLite has not yet read the next."""
    cursor = _ranking_cursor(conn, "", ())
    while rows := cursor.fetchmany(size):
        yield rows


def _ranking_cursor(conn: Connection, where: str, params: tuple[Any, ...]) -> Any:
    # plain tuples: columns are read by position
    return conn.tuples(f"SELECT {', '.join(RANKING_FIELDS)} FROM goals {where} ORDER BY pk", params)


def live_in_state(
    conn: Connection, state: str, category: str | None = None
) -> list[dict[str, Any]]:
    """Every live (not deleted) goal in `state`, optionally of one category."""
    where, params = _filters(state, category, include_deleted=False)
    return [
        _record(row)
        for row in conn.execute(f"SELECT {_COLUMNS} FROM goals WHERE {where} ORDER BY pk", params)
    ]


def satisfied_ids(conn: Connection) -> frozenset[str]:
    return frozenset(
        row[0] for row in conn.execute("SELECT id FROM goals WHERE state = 'satisfied'")
    )


def missing(conn: Connection, goal_ids: list[str]) -> list[str]:
    """Which of `goal_ids` are not live goals."""
    found = {
        row[0]
        for row in conn.execute(
            f"SELECT id FROM goals WHERE deleted_at IS NULL AND id IN ({conn.dialect.values_of()})",
            (canonical_json(goal_ids).decode(),),
        )
    }
    return [goal_id for goal_id in goal_ids if goal_id not in found]


def depends_transitively(conn: Connection, start: list[str], goal_id: str) -> bool:
    """Whether any goal in `start`, or anything it depends on, depends on `goal_id`."""
    dialect = conn.dialect
    row = conn.execute(
        f"""
        WITH RECURSIVE reach(id) AS (
            {dialect.values_of()}
            UNION
            SELECT dep.value FROM reach JOIN goals ON goals.id = reach.id,
                 {dialect.each("goals.depends_on", "dep")}
        )
        SELECT 1 FROM reach WHERE id = ? LIMIT 1
        """,
        (canonical_json(start).decode(), goal_id),
    ).fetchone()
    return row is not None


_REFERENCE_COLUMNS = frozenset({"aligns_with", "contradicts", "depends_on"})


def referencing(conn: Connection, columns: tuple[str, ...], ids: list[str]) -> set[str]:
    """Goals whose `columns` (JSON id lists) name any of `ids`."""
    if not ids or not columns:
        return set()
    if not _REFERENCE_COLUMNS.issuperset(columns):
        raise ValueError(f"not a reference column: {columns}")
    wanted = canonical_json(sorted(ids)).decode()
    union = " UNION ".join(
        f"SELECT g.id FROM goals g, {conn.dialect.each(f'g.{column}', 'ref')}"
        f" WHERE g.{column} != '[]' AND ref.value IN ({conn.dialect.values_of()})"
        for column in columns
    )
    return {row[0] for row in conn.execute(union, [wanted] * len(columns))}


def fetch_many(conn: Connection, goal_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The records of those of `goal_ids` that exist, in one query."""
    return records_of(conn.execute(*many(conn.dialect, goal_ids)))


def many(dialect: Dialect, goal_ids: list[str]) -> Read:
    """fetch_many() as a Read (records_of() reads its rows), to go in one round trip with
    others (Database.reads)."""
    return (
        f"SELECT {_COLUMNS} FROM goals WHERE id IN ({dialect.values_of()})",
        (canonical_json(goal_ids).decode(),),
    )


def records_of(rows: Iterable[Any]) -> dict[str, dict[str, Any]]:
    return {row["id"]: _record(row) for row in rows}


def counts(conn: Connection) -> list[tuple[str, str, int]]:
    """(category, state, goals) of the goals not deleted."""
    rows = conn.execute(
        "SELECT category, state, count(*) FROM goals WHERE deleted_at IS NULL"
        " GROUP BY category, state"
    ).fetchall()
    return [(str(r[0]), str(r[1]), int(r[2])) for r in rows]
