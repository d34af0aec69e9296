"""What every command shares: who acts (Context), what it returns, how it records events."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from service.domain.authz import ensure_may_change
from service.domain.errors import GoalNotFound
from service.domain.goal import Goal, from_record, record_changes, to_record
from service.domain.ledger import LedgerRow
from service.domain.timefmt import format_ts
from service.store import goals as goal_table
from service.store import ledger as ledger_table
from service.store import outbox
from service.store.db import Connection
from service.store.ledger import Entry
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
    return stored_goal(goal_table.fetch(conn, goal_id), goal_id, include_deleted=include_deleted)


def stored_goal(
    record: dict[str, Any] | None, goal_id: str, *, include_deleted: bool = False
) -> Goal:
    """live_goal() of a record read already (None: there was none)."""
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
    return record_events(conn, ctx, now, [(event_type, goal_id, payload)])[0]


def record_events(
    conn: Connection, ctx: Context, now: datetime,
    events: list[tuple[str, str | None, dict[str, Any]]],
) -> list[LedgerRow]:  # fmt: skip
    """Ledger events (event type, goal id, payload) and their outbox rows, in order,
    inside the caller's transaction: two statements however many there are."""
    ts, actor, trace = format_ts(now), ctx.actor, ctx.trace
    rows = ledger_table.append(conn, *(
        Entry(ts, event_type, goal_id, actor, trace.trace_id, trace.span_id, payload)
        for event_type, goal_id, payload in events
    ))  # fmt: skip
    outbox.add(conn, *rows)
    return rows


def save_change(
    conn: Connection, ctx: Context, now: datetime, goal: Goal, changed: Goal,
    action: str, event_type: str, extra: dict[str, Any] | None = None,
) -> None:  # fmt: skip
    """Write a goal's change inside the caller's transaction: the row (at the version it
    had), the ledger event with the changed fields, and the outbox row."""
    changes = record_changes(to_record(goal), to_record(changed))
    goal_table.update(conn, goal.id, changes, goal.version)
    payload = {"action": action, "from_version": goal.version, "set": changes, **(extra or {})}
    record_event(conn, ctx, now, event_type, goal.id, payload)


def record_derived(
    conn: Connection, ctx: Context, now: datetime, goal_id: str, event_type: str,
    changes: dict[str, Any], extra: dict[str, Any],
) -> None:  # fmt: skip
    """Write derived fields (DERIVED_FIELDS: no version bump) and their ledger event, in
    the caller's transaction: `{"set": changes, **extra}`, which replay folds like any
    change."""
    goal_table.set_derived(conn, goal_id, changes)
    record_event(conn, ctx, now, event_type, goal_id, {"set": changes, **extra})
