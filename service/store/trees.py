"""Goal trees in the goals table: children, ancestors, subtrees, what a goal waits on.

Every query walks `parent_id` (indexed: goals_by_parent) with a recursive CTE, the same
SQL on both engines. Records are goal records, as store/goals.py returns them.
"""

from __future__ import annotations

from typing import Any

from service.domain.goal import RECORD_FIELDS
from service.domain.ledger import canonical_json
from service.store.db import Connection
from service.store.goals import _COLUMNS, _record


def _ids(goal_ids: list[str]) -> str:
    return canonical_json(goal_ids).decode()


def children(conn: Connection, parent_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """The live (not deleted) children of each of `parent_ids`, oldest first; a goal with
    none is absent."""
    found: dict[str, list[dict[str, Any]]] = {}
    if not parent_ids:
        return found
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM goals WHERE parent_id IN ({conn.dialect.values_of()})"
        " AND deleted_at IS NULL ORDER BY pk",
        (_ids(parent_ids),),
    )
    for row in rows:
        record = _record(row)
        found.setdefault(record["parent_id"], []).append(record)
    return found


def child_count(conn: Connection, parent_id: str) -> int:
    """How many live (not deleted) children the goal has."""
    row = conn.execute(
        "SELECT count(*) FROM goals WHERE parent_id = ? AND deleted_at IS NULL", (parent_id,)
    ).fetchone()
    return int(row[0])


def ancestors(conn: Connection, goal_id: str) -> list[str]:
    """The goal's parent, its parent's parent, ... up to the root (nearest first)."""
    rows = conn.execute(
        """
        WITH RECURSIVE up(id, parent_id, level) AS (
            SELECT id, parent_id, 0 FROM goals WHERE id = ?
            UNION ALL
            SELECT g.id, g.parent_id, up.level + 1 FROM goals g JOIN up ON g.id = up.parent_id
            WHERE up.level < 64
        )
        SELECT id FROM up WHERE level > 0 ORDER BY level
        """,
        (goal_id,),
    ).fetchall()
    return [row[0] for row in rows]


def chain(conn: Connection, goal_id: str) -> list[dict[str, Any]]:
    """The goal's record and its ancestors', nearest first, in one query (deleted ones
    included: the climb of a change that deleted a goal starts from it)."""
    columns = ", ".join(f"goals.{name}" for name in RECORD_FIELDS)
    rows = conn.execute(
        f"""
        WITH RECURSIVE up(id, parent_id, level) AS (
            SELECT id, parent_id, 0 FROM goals WHERE id = ?
            UNION ALL
            SELECT g.id, g.parent_id, up.level + 1 FROM goals g JOIN up ON g.id = up.parent_id
            WHERE up.level < 64
        )
        SELECT {columns} FROM up JOIN goals ON goals.id = up.id ORDER BY up.level
        """,
        (goal_id,),
    ).fetchall()
    return [_record(row) for row in rows]


def height(conn: Connection, goal_id: str) -> int:
    """How many levels the goal's subtree spans, itself included (1: no live child)."""
    row = conn.execute(
        """
        WITH RECURSIVE down(id, level) AS (
            SELECT id, 1 FROM goals WHERE id = ?
            UNION ALL
            SELECT g.id, down.level + 1 FROM goals g JOIN down ON g.parent_id = down.id
            WHERE g.deleted_at IS NULL AND down.level < 64
        )
        SELECT max(level) FROM down
        """,
        (goal_id,),
    ).fetchone()
    return int(row[0] or 1)


def subtree(
    conn: Connection, root_ids: list[str], max_depth: int | None = None, *, only_open: bool = False
) -> list[tuple[int, dict[str, Any]]]:
    """The live descendants of `root_ids` (the roots not included) as (level, record),
    level 1 being the roots' children, parents before their children; at most
    `max_depth` levels; with `only_open`, only goals not yet satisfied or abandoned (and
    nothing below a closed one)."""
    if not root_ids:
        return []
    limit = 64 if max_depth is None else max_depth
    keep = "g.deleted_at IS NULL"
    if only_open:
        keep += " AND g.state NOT IN ('satisfied', 'abandoned')"
    columns = ", ".join(f"goals.{name}" for name in RECORD_FIELDS)
    rows = conn.execute(
        f"""
        WITH RECURSIVE down(id, level) AS (
            SELECT id, 0 FROM goals WHERE id IN ({conn.dialect.values_of()})
            UNION ALL
            SELECT g.id, down.level + 1 FROM goals g JOIN down ON g.parent_id = down.id
            WHERE {keep} AND down.level < ?
        )
        SELECT down.level, {columns}
        FROM down JOIN goals ON goals.id = down.id WHERE down.level > 0
        ORDER BY down.level, goals.pk
        """,
        (_ids(root_ids), limit),
    ).fetchall()
    return [(int(row[0]), _record(row)) for row in rows]
