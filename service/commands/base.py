"""What every command shares: who acts (Context), what it returns, how it records events."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from service.domain.authz import ensure_may_change
from service.domain.errors import GoalNotFound
from service.domain.goal import Goal, from_record
from service.domain.ledger import LedgerRow
from service.domain.timefmt import format_ts
from service.store import goals as goal_table
from service.store import ledger as ledger_table
from service.store import outbox
from service.store.db import Connection
from service.tracing import TraceContext, new_trace

MAX_PAGE = 500


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Context:
    """Who is acting, with which rights, in which trace, and the clock to read.

    `admin`: the actor may change goals it does not own (service/domain/authz.py). Off
    unless the entry point building the Context grants it: an `admin` API key or the
    keyless mode (REST), the operator's CLI and scenarios, the workers (the system)."""

    actor: str
    trace: TraceContext = field(default_factory=new_trace)
    clock: Callable[[], datetime] = utcnow
    admin: bool = False


@dataclass(frozen=True)
class Change:
    """A command's result: the goal as it now is, and whether this call changed it."""

    goal: Goal
    changed: bool
    warnings: tuple[str, ...] = ()  # e.g. adoption: aligns_with names an unknown belief


def live_goal(conn: Connection, goal_id: str, *, include_deleted: bool = False) -> Goal:
    """The goal as stored; GoalNotFound if it does not exist or, unless `include_deleted`
    (its history, the steps after its tasks), if it is soft-deleted."""
    record = goal_table.fetch(conn, goal_id)
    if record is None or (record["deleted_at"] is not None and not include_deleted):
        raise GoalNotFound(goal_id)
    return from_record(record)


def authorize(ctx: Context, goal: Goal, action: str) -> None:
    """NotPermitted unless the context's actor may change the goal (owner or admin)."""
    ensure_may_change(goal, ctx.actor, admin=ctx.admin, action=action)


def record_event(
    conn: Connection,
    ctx: Context,
    now: datetime,
    event_type: str,
    goal_id: str | None,
    payload: dict[str, Any],
) -> LedgerRow:
    """The ledger event and its outbox row, inside the caller's transaction."""
    event = ledger_table.append(
        conn,
        ts=format_ts(now),
        event_type=event_type,
        goal_id=goal_id,
        actor=ctx.actor,
        trace_id=ctx.trace.trace_id,
        span_id=ctx.trace.span_id,
        payload=payload,
    )
    outbox.add(conn, event)
    return event
