"""The tasks table: one row per selection of a goal (DESIGN §3.2)."""

from __future__ import annotations

from typing import Any

import orjson

from service.domain.tasks import Task, TaskState
from service.domain.timefmt import format_ts, parse_ts
from service.store.db import Connection, Read
from service.store.dialect import Dialect

_FIELDS = (
    "task_id", "goal_id", "goal_version", "attempt", "state", "superseded", "evidence",
    "reason", "trace_id", "span_id", "traceparent", "created_at", "updated_at", "version",
    "origin",
)  # fmt: skip
_COLUMNS = ", ".join(_FIELDS)


def _task(row: Any) -> Task:
    return Task(
        task_id=row["task_id"],
        goal_id=row["goal_id"],
        goal_version=row["goal_version"],
        attempt=row["attempt"],
        state=TaskState(row["state"]),
        superseded=bool(row["superseded"]),
        evidence=orjson.loads(row["evidence"]),
        reason=row["reason"],
        trace_id=row["trace_id"],
        span_id=row["span_id"],
        traceparent=row["traceparent"],
        created_at=parse_ts(row["created_at"]),
        updated_at=parse_ts(row["updated_at"]),
        version=row["version"],
        origin=row["origin"],
    )


def _values(task: Task) -> list[Any]:
    return [
        task.task_id, task.goal_id, task.goal_version, task.attempt, task.state.value,
        int(task.superseded), orjson.dumps(task.evidence).decode(), task.reason, task.trace_id,
        task.span_id, task.traceparent, format_ts(task.created_at), format_ts(task.updated_at),
        task.version, task.origin,
    ]  # fmt: skip


def insert(conn: Connection, task: Task) -> None:
    """Sent (on PostgreSQL with the next statement): the driver's IntegrityError, by the
    commit at the latest, if this goal version already has a task."""
    marks = ", ".join("?" for _ in _FIELDS)
    conn.send(f"INSERT INTO tasks ({_COLUMNS}) VALUES ({marks})", _values(task))


def save(conn: Connection, task: Task) -> None:
    assignments = ", ".join(f"{name} = ?" for name in _FIELDS[1:])
    conn.execute(
        f"UPDATE tasks SET {assignments} WHERE task_id = ?", [*_values(task)[1:], task.task_id]
    )


def fetch(conn: Connection, task_id: str) -> Task | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
    return None if row is None else _task(row)


def for_goal(conn: Connection, goal_id: str) -> list[Task]:
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM tasks WHERE goal_id = ? ORDER BY attempt", (goal_id,)
    )
    return [_task(row) for row in rows]


def attempts(dialect: Dialect, goal_ids: list[str]) -> Read:
    """How many tasks each of `goal_ids` has had (attempts_of() reads the rows): a Read,
    for many goals' in one round trip (Database.reads)."""
    return (
        "SELECT goal_id, count(*) FROM tasks"
        f" WHERE goal_id IN ({dialect.values_of()}) GROUP BY goal_id",
        (orjson.dumps(goal_ids).decode(),),
    )


def attempts_of(rows: list[Any]) -> dict[str, int]:
    return {row[0]: int(row[1]) for row in rows}


def supersede_failed(conn: Connection, goal_id: str) -> None:
    """Failed attempts of a goal stop being live once it is selected again (sent: on
    PostgreSQL it goes with the next statement, not a round trip of its own)."""
    conn.send(
        "UPDATE tasks SET superseded = 1, version = version + 1"
        " WHERE goal_id = ? AND superseded = 0 AND state IN ('failed', 'rejected')",
        (goal_id,),
    )


def open_tasks(conn: Connection, updated_before: str, limit: int = 500) -> list[Task]:
    """Queued or running tasks not touched since `updated_before` that a scheduler job runs
    (the sweep's candidates): a manual task has no job, a person reports it."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM tasks WHERE state IN ('queued', 'running')"
        " AND origin = 'selection' AND updated_at < ? ORDER BY updated_at LIMIT ?",
        (updated_before, limit),
    )
    return [_task(row) for row in rows]


def counts(conn: Connection) -> dict[str, int]:
    """Tasks per state."""
    rows = conn.execute("SELECT state, count(*) FROM tasks GROUP BY state").fetchall()
    return {str(r[0]): int(r[1]) for r in rows}
