"""Decision commands: read and tune goal_selected's weights, record outcomes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from service.commands.base import Context, live_goal, record_event
from service.domain.decisions import Decision, DecisionChange, OutcomeCreate
from service.domain.errors import DecisionNotFound, InvalidInput
from service.domain.timefmt import format_ts
from service.store import decisions as decision_table
from service.store.db import Connection, Database


def _fetch(conn: Any, decision_id: str) -> Decision:
    decision = decision_table.fetch(conn, decision_id)
    if decision is None:
        raise DecisionNotFound(decision_id)
    return decision


def get_decision(db: Database, decision_id: str) -> Decision:
    return _fetch(db.connection(), decision_id)


def change_decision(
    db: Database, ctx: Context, decision_id: str, change: DecisionChange
) -> tuple[Decision, bool]:
    """New current values (each in range and on its step); a change re-ranks every goal."""
    with db.write() as conn:
        now = ctx.clock()
        current = _fetch(conn, decision_id)
        updated = current.with_values(change.parameters)
        if updated is current:
            return current, False
        decision_table.save(conn, updated, format_ts(now))
        record_event(
            conn, ctx, now, "decision_updated", None,
            {"decision_id": decision_id, "from_version": current.version,
             "version": updated.version, "set": updated.current_values()},
        )  # fmt: skip
    return updated, True


def record_outcome(
    db: Database, ctx: Context, decision_id: str, outcome: OutcomeCreate
) -> dict[str, Any]:
    """Store what a decision led to, with the parameter values in force when it was taken."""
    with db.write() as conn:
        if outcome.goal_id is not None:
            live_goal(conn, outcome.goal_id, include_deleted=True)
        return add_outcome(conn, ctx, ctx.clock(), decision_id, outcome.goal_id, outcome.metrics)


def add_outcome(
    conn: Connection, ctx: Context, now: datetime, decision_id: str,
    goal_id: str | None, metrics: dict[str, float],
) -> dict[str, Any]:  # fmt: skip
    """record_outcome() inside the caller's transaction."""
    decision = _fetch(conn, decision_id)
    problems = decision.outcome_problems(metrics)
    if problems:
        raise InvalidInput(problems)
    stored: dict[str, Any] = {
        "decision_id": decision_id,
        "goal_id": goal_id,
        "metrics": metrics,
        "parameters": decision.current_values(),
        "actor": ctx.actor,
        "trace_id": ctx.trace.trace_id,
        "recorded_at": format_ts(now),
    }
    stored["id"] = decision_table.add_outcome(conn, stored)
    record_event(conn, ctx, now, "decision_outcome_recorded", goal_id, dict(stored))
    return stored


def list_outcomes(
    db: Database, decision_id: str, *, after: int = 0, limit: int = 100
) -> list[dict[str, Any]]:
    conn = db.connection()
    _fetch(conn, decision_id)
    return decision_table.outcomes(conn, decision_id, after, limit)
