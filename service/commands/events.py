"""The change-event loop: outbox -> queue -> ranking cache, at least once, applied idempotently.

- `relay_outbox` claims pending outbox rows and hands them, in batches, to `send`
  (the worker passes an RQ enqueue); on failure it releases what it did not send.
- `apply_events` re-scores every goal a batch reaches and writes the snapshots to
  Redis under the version guard, then marks the events applied. Applying a batch
  twice writes the same snapshots (or is refused by the guard): delivery may repeat.
- `refresh_cache` is the periodic pass: a cold Redis (restarted empty) is rebuilt
  whole; otherwise goals whose urgency moved with time are re-scored. Either way it
  records each passed deadline once (`goal_deadline_passed`).
- `redeliver_stale` releases claims never applied (a lost job, a killed worker).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from service.cache.ranking import RankingCache
from service.commands.base import Context, record_event, utcnow
from service.commands.ranking import ranking_state, rebuild_cache, state_in
from service.domain.events import EventRef, Reach, reach
from service.domain.goal import Goal, GoalState, from_record
from service.domain.ledger import LedgerRow
from service.domain.ranking import URGENCY_WINDOW_S
from service.domain.timefmt import format_ts
from service.metrics import EVENTS_APPLIED, RECORDER
from service.store import goals as goal_table
from service.store import ledger as ledger_table
from service.store import outbox
from service.store import tree_ranking as tree_table
from service.store.db import Connection, Database
from service.tracing import new_trace


def relay_outbox(
    db: Database,
    send: Callable[[list[EventRef]], None],
    *,
    limit: int,
    batch: int,
) -> int:
    """Move pending outbox events to the queue; how many were sent."""
    if not outbox.has_pending(db.connection()):
        return 0
    with db.write() as conn:
        events = outbox.claim(conn, format_ts(utcnow()), limit)
    sent = 0
    try:
        for start in range(0, len(events), batch):
            chunk = events[start : start + batch]
            send(chunk)
            sent += len(chunk)
    finally:
        if sent < len(events):
            with db.write() as conn:
                outbox.release(conn, [e.seq for e in events[sent:]])
    return sent


def apply_events(
    db: Database, cache: RankingCache, events: Sequence[EventRef], now: datetime | None = None
) -> dict[str, Any]:
    """Re-score what the events reach, write it to Redis, mark the events applied."""
    now = now or utcnow()
    if not cache.is_warm():
        # Redis lost its data (or never had it): only a whole rebuild makes it right.
        summary = rebuild_cache(db, cache, now)
        return {"events": len(events), "rebuilt": True, "goals": summary["goals"]}
    plan = reach(events)
    # Where a moved goal was: read before the snapshots that say where it is now.
    left = cache.held_parents(sorted(plan.moved)) if plan.moved and not plan.everything else set()
    with db.read() as conn:
        flat = not tree_table.in_use(conn)  # one query, rather than the tree's three
        goal_ids = None if plan.everything else _reached(conn, plan, left, flat)
        state = state_in(conn, None if goal_ids is None else sorted(goal_ids), now, flat=flat)
    pipe = cache.redis.pipeline(transaction=False)
    cache.write([state.snapshots()], pipe)
    if plan.inputs_changed:
        cache.set_inputs(state.inputs.active_beliefs, state.inputs.weights, state.seq, pipe)
    pipe.execute()
    with db.write() as conn:
        applied = outbox.mark_applied(conn, [e.seq for e in events], format_ts(utcnow()))
    RECORDER.inc(EVENTS_APPLIED, applied)
    return {"events": len(events), "rebuilt": False, "goals": len(state)}


def _reached(conn: Connection, plan: Reach, left: set[str], flat: bool) -> set[str]:
    """The goals a batch's events re-score (reach()): those named, the goals depending on
    them or naming their beliefs, the descendants of all but those only derived events
    reach (their deadline and blocks are inherited), and the parents of those named and
    those `left` (their open children may have changed)."""
    dependents = goal_table.referencing(conn, ("depends_on",), sorted(plan.dependents_of))
    dependents |= goal_table.referencing(
        conn, ("aligns_with", "contradicts"), sorted(plan.believers_of)
    )
    goal_ids = plan.goals | dependents
    if flat:  # no goal in a tree: nothing to pass down or up
        return goal_ids | left
    goal_ids |= tree_table.descendants(conn, sorted(plan.passed_down | dependents))
    return goal_ids | tree_table.parents(conn, sorted(plan.goals)) | left


def refresh_cache(db: Database, cache: RankingCache, now: datetime | None = None) -> dict[str, Any]:
    """The periodic pass: rebuild a cold cache; record the deadlines that have passed
    (record_passed_deadlines()); re-score goals whose urgency time has moved.

    Urgency changes only within a day of the deadline and once when it passes, so
    the goals to re-score are those whose deadline lies between the last refresh
    and a day from now, and the goals whose passed deadline it has just recorded: it
    applies those events itself (their snapshots are read after them), so they are
    marked applied here.
    """
    now = now or utcnow()
    rebuilt = not cache.is_warm()
    if rebuilt:
        goals = rebuild_cache(db, cache, now)["goals"]
        goal_ids: list[str] = []
    else:
        last = float(cache.meta().get("urgency_refreshed_at") or 0.0)
        goal_ids = cache.with_deadline_between(last, now.timestamp() + URGENCY_WINDOW_S)
    recorded = record_passed_deadlines(db, cache, now)
    goal_ids = sorted({*goal_ids, *(e.goal_id for e in recorded if e.goal_id)})
    if goal_ids or not rebuilt:
        state = ranking_state(db, goal_ids, now)
        cache.write([state.snapshots()])
        goals = goals if rebuilt else len(state)
    if recorded:
        with db.write() as conn:
            applied = outbox.mark_applied(conn, [e.seq for e in recorded], format_ts(utcnow()))
        RECORDER.inc(EVENTS_APPLIED, applied)
    if not rebuilt:
        cache.note(urgency_refreshed_at=now.timestamp())
    return {"rebuilt": rebuilt, "goals": goals, "deadlines_passed": len(recorded)}


DEADLINE_PASSED_EVENT = "goal_deadline_passed"
CLOCK = Context(actor="goalstore", admin=True)  # who records what time alone brought about


def record_passed_deadlines(db: Database, cache: RankingCache, now: datetime) -> list[LedgerRow]:
    """One `goal_deadline_passed` ledger event per adopted goal and deadline passed (a
    deadline moved later that passes again is another one): the events written.

    An observation, not a change: the goal keeps its version. The candidates are the
    placed goals whose deadline, as the cache holds it, is past; the store decides,
    once outside the write lock (most refreshes write nothing) and again inside it, so
    refreshers running at once write each event once."""
    candidates = cache.with_deadline_between(float("-inf"), now.timestamp())
    if not candidates:
        return []
    with db.read() as conn:
        due = _unrecorded_deadlines(conn, candidates, now)
    if not due:
        return []
    ctx = replace(CLOCK, trace=new_trace())
    with db.write() as conn:
        due = _unrecorded_deadlines(conn, [goal.id for goal, _ in due], now)
        return [
            record_event(conn, ctx, now, DEADLINE_PASSED_EVENT, goal.id,
                         {"deadline": deadline, "version": goal.version,
                          "horizon_max_min": goal.horizon_max_min})
            for goal, deadline in due
        ]  # fmt: skip


def _unrecorded_deadlines(
    conn: Connection, goal_ids: Sequence[str], now: datetime
) -> list[tuple[Goal, str]]:
    """The live adopted goals of `goal_ids` whose deadline has passed with no
    goal_deadline_passed event for it yet, each with that deadline (ISO 8601)."""
    due = []
    records = goal_table.fetch_many(conn, sorted(goal_ids))
    recorded: dict[str, set[str]] = {}
    for goal_id, payload in ledger_table.payloads_of(conn, sorted(records), DEADLINE_PASSED_EVENT):
        recorded.setdefault(goal_id, set()).add(payload.get("deadline", ""))
    for goal_id in sorted(records):
        goal = from_record(records[goal_id])
        deadline = goal.deadline
        if goal.state != GoalState.ADOPTED or goal.is_deleted or deadline is None:
            continue
        if deadline > now:
            continue
        when = format_ts(deadline)
        if when not in recorded.get(goal_id, ()):
            due.append((goal, when))
    return due


def redeliver_stale(
    db: Database, *, after: timedelta, retention: timedelta, now: datetime | None = None
) -> dict[str, int]:
    """Release claims older than `after` that were never applied; prune old applied rows."""
    now = now or utcnow()
    with db.write() as conn:
        released = outbox.redeliver(conn, format_ts(now - after))
        pruned = outbox.prune(conn, format_ts(now - retention))
    return {"released": released, "pruned": pruned}


def cache_backlog(db: Database) -> dict[str, Any]:
    return outbox.backlog(db.connection())
