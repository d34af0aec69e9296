"""A store's schema as its engine reports it: tables, columns, row counts, and
PostgreSQL's identity sequences (what `store copy` checks and moves)."""

from __future__ import annotations

from collections.abc import Collection

from service.store.db import Connection


def tables(conn: Connection) -> set[str]:
    return {str(row[0]) for row in conn.execute(conn.dialect.tables)}


def columns(conn: Connection, table: str) -> list[str]:
    return [str(row[0]) for row in conn.execute(conn.dialect.columns, (table,))]


def count(conn: Connection, table: str) -> int:
    return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def move_identities(conn: Connection, of_tables: Collection[str]) -> dict[str, int]:
    """PostgreSQL: each identity column's sequence of `of_tables` moved past the keys the
    table holds (its next value is max + 1), so new rows do not collide with copied ones.
    SQLite needs nothing: an INTEGER PRIMARY KEY goes on from the largest key."""
    if conn.dialect.name != "postgresql":
        return {}
    identities = conn.execute(
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND is_identity = 'YES'"
        " ORDER BY table_name, column_name"
    ).fetchall()
    moved: dict[str, int] = {}
    for table, column in ((str(r[0]), str(r[1])) for r in identities):
        if table not in of_tables:
            continue
        (next_value,) = conn.execute(
            f"SELECT COALESCE(MAX({column}), 0) + 1 FROM {table}"
        ).fetchone()
        conn.execute(
            "SELECT setval(pg_get_serial_sequence(?, ?), ?, false)",
            (table, column, int(next_value)),
        )
        moved[f"{table}.{column}"] = int(next_value)
    return moved
