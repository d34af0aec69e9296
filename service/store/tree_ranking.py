"""What ranking reads of goal trees (domain/ranking/trees.py): the lineage of the goals it
scores, the first open child of each, and which goals an event's fan-out reaches through
a tree.

A store of flat goals answers every one of these from the partial index goals_by_parent
(`parent_id IS NOT NULL`) without a row: a rebuild of 100k flat goals pays one query that
finds nothing. Rows are plain tuples, the JSON columns left as text, as ranking_rows()
leaves them.
"""

from __future__ import annotations

from typing import Any

from service.domain.ledger import canonical_json
from service.store.db import Connection, Read

# What a goal passes down to its children, and its parent to climb on.
LINEAGE_FIELDS = (
    "id", "parent_id", "created_at", "horizon_max_min", "manual_block", "contradicts",
    "depends_on",
)  # fmt: skip
_LINEAGE = ", ".join(LINEAGE_FIELDS)
_OPEN = "state NOT IN ('satisfied', 'abandoned') AND deleted_at IS NULL"  # trees.is_open()


def _ids(goal_ids: list[str]) -> str:
    return canonical_json(goal_ids).decode()


def lineage(conn: Connection, goal_ids: list[str] | None) -> list[Any]:
    """LINEAGE_FIELDS of those of `goal_ids` that have a parent and of all their
    ancestors (None: of every goal in a tree), one row each, in no particular order."""
    if goal_ids is None:
        rows: list[Any] = conn.tuples(
            f"SELECT {_LINEAGE} FROM goals WHERE parent_id IS NOT NULL"
        ).fetchall()
        if not rows:  # no goal has a parent: a flat store stops here
            return rows
        roots = sorted({row[1] for row in rows} - {row[0] for row in rows})
        return rows + _by_id(conn, roots)
    if not goal_ids:
        return []
    # UNION, not UNION ALL: siblings climb to the same ancestors once.
    climbed: list[Any] = conn.tuples(
        f"""
        WITH RECURSIVE up({_LINEAGE}) AS (
            SELECT {_LINEAGE} FROM goals
            WHERE id IN ({conn.dialect.values_of()}) AND parent_id IS NOT NULL
            UNION
            SELECT {", ".join(f"g.{name}" for name in LINEAGE_FIELDS)}
            FROM goals g JOIN up ON g.id = up.parent_id
        )
        SELECT {_LINEAGE} FROM up
        """,
        (_ids(goal_ids),),
    ).fetchall()
    return climbed


def _by_id(conn: Connection, goal_ids: list[str]) -> list[Any]:
    rows: list[Any] = conn.tuples(
        f"SELECT {_LINEAGE} FROM goals WHERE id IN ({conn.dialect.values_of()})",
        (_ids(goal_ids),),
    ).fetchall()
    return rows


def open_children(conn: Connection, parent_ids: list[str] | None) -> dict[str, str]:
    """The first open child (oldest: not satisfied, abandoned or deleted) of each of
    `parent_ids` that has one (None: of every goal)."""
    params: tuple[str, ...] = ()
    if parent_ids is None:
        where = "parent_id IS NOT NULL"
    elif not parent_ids:
        return {}
    else:
        where, params = f"parent_id IN ({conn.dialect.values_of()})", (_ids(parent_ids),)
    first: dict[str, str] = {}
    rows = conn.tuples(f"SELECT parent_id, id FROM goals WHERE {where} AND {_OPEN} ORDER BY pk",
                       params)  # fmt: skip
    for parent_id, child_id in rows:
        first.setdefault(parent_id, child_id)
    return first


def descendants(conn: Connection, goal_ids: list[str]) -> set[str]:
    """Every goal below any of `goal_ids` (deleted ones too: their snapshots follow)."""
    if not goal_ids:
        return set()
    rows = conn.tuples(
        f"""
        WITH RECURSIVE down(id) AS (
            SELECT id FROM goals WHERE parent_id IN ({conn.dialect.values_of()})
            UNION
            SELECT g.id FROM goals g JOIN down ON g.parent_id = down.id
        )
        SELECT id FROM down
        """,
        (_ids(goal_ids),),
    )
    return {row[0] for row in rows}


def in_use(conn: Connection) -> bool:
    """Whether any goal has a parent (one row of the partial index goals_by_parent, or
    none): a store of flat goals skips every other query here."""
    return bool(conn.execute(*IN_USE).fetchall())


# in_use() as a Read (a row, or none), to go in one round trip with others (Database.reads).
# ORDER BY the index's column: the planner walks goals_by_parent for its first entry even
# without statistics (for a table never analyzed it guesses that nearly every row has a
# parent, and would scan them all to find none).
IN_USE: Read = (
    "SELECT parent_id FROM goals WHERE parent_id IS NOT NULL ORDER BY parent_id LIMIT 1",
    (),
)


def parents(conn: Connection, goal_ids: list[str]) -> set[str]:
    """The parents of those of `goal_ids` that have one."""
    if not goal_ids:
        return set()
    rows = conn.tuples(
        f"SELECT parent_id FROM goals WHERE id IN ({conn.dialect.values_of()})"
        " AND parent_id IS NOT NULL",
        (_ids(goal_ids),),
    )
    return {row[0] for row in rows}
