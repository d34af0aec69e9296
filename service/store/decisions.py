"""The decision registry and its outcomes."""

from __future__ import annotations

from typing import Any

import orjson

from service.domain.decisions import Decision, decision_from_record
from service.domain.ledger import canonical_json
from service.store.db import Connection


def fetch(conn: Connection, decision_id: str) -> Decision | None:
    row = conn.execute(
        "SELECT decision_id, subsystem, parameters, success_metrics, version"
        " FROM decisions WHERE decision_id = ?",
        (decision_id,),
    ).fetchone()
    if row is None:
        return None
    record = dict(row)
    record["parameters"] = orjson.loads(record["parameters"])
    record["success_metrics"] = orjson.loads(record["success_metrics"])
    return decision_from_record(record)


def save(conn: Connection, decision: Decision, updated_at: str) -> None:
    parameters = {name: p.as_dict() for name, p in decision.parameters.items()}
    conn.execute(
        "UPDATE decisions SET parameters = ?, version = ?, updated_at = ? WHERE decision_id = ?",
        (canonical_json(parameters).decode(), decision.version, updated_at, decision.decision_id),
    )


def add_outcome(conn: Connection, outcome: dict[str, Any]) -> int:
    cursor = conn.execute(
        "INSERT INTO decision_outcomes"
        " (decision_id, goal_id, metrics, parameters, actor, trace_id, recorded_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (
            outcome["decision_id"], outcome["goal_id"],
            canonical_json(outcome["metrics"]).decode(),
            canonical_json(outcome["parameters"]).decode(),
            outcome["actor"], outcome["trace_id"], outcome["recorded_at"],
        ),
    )  # fmt: skip
    return int(cursor.fetchone()[0])


def outcomes(conn: Connection, decision_id: str, after: int, limit: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT id, decision_id, goal_id, metrics, parameters, actor, trace_id, recorded_at"
        " FROM decision_outcomes WHERE decision_id = ? AND id > ? ORDER BY id LIMIT ?",
        (decision_id, after, limit),
    )
    return [
        {**dict(row), "metrics": orjson.loads(row["metrics"]),
         "parameters": orjson.loads(row["parameters"])}
        for row in rows
    ]  # fmt: skip
