"""The beliefs table."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from service.domain.beliefs import Belief
from service.domain.timefmt import format_ts, parse_ts
from service.store.db import Connection, Read

_COLUMNS = "id, statement, active, version, created_at, updated_at"
# Every belief, as listing() reads them: a Read a write may declare (Database.write(first=…))
EVERY: Read = (f"SELECT {_COLUMNS} FROM beliefs ORDER BY id", ())


def _belief(row: Any) -> Belief:
    return Belief(
        id=row["id"],
        statement=row["statement"],
        active=bool(row["active"]),
        version=row["version"],
        created_at=parse_ts(row["created_at"]),
        updated_at=parse_ts(row["updated_at"]),
    )


def fetch(conn: Connection, belief_id: str) -> Belief | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM beliefs WHERE id = ?", (belief_id,)).fetchone()
    return None if row is None else _belief(row)


def upsert(conn: Connection, belief: Belief) -> None:
    conn.execute(
        f"INSERT INTO beliefs ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (id) DO UPDATE SET statement = excluded.statement,"
        " active = excluded.active, version = excluded.version, updated_at = excluded.updated_at",
        (
            belief.id, belief.statement, int(belief.active), belief.version,
            format_ts(belief.created_at), format_ts(belief.updated_at),
        ),
    )  # fmt: skip


def listing(conn: Connection, active: bool | None = None) -> list[Belief]:
    if active is None:
        rows = conn.execute(*EVERY)
    else:
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM beliefs WHERE active = ? ORDER BY id", (int(active),)
        )
    return beliefs_of(rows)


def beliefs_of(rows: Iterable[Any]) -> list[Belief]:
    """Rows of the beliefs table (EVERY's, say) as beliefs."""
    return [_belief(row) for row in rows]


def active_ids(conn: Connection) -> frozenset[str]:
    return frozenset(row[0] for row in conn.execute("SELECT id FROM beliefs WHERE active = 1"))
