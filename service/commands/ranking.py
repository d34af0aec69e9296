"""Ranking read from SQLite: the truth the Redis cache mirrors, and its fallback."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from redis.exceptions import RedisError

from service.cache.ranking import RankingCache
from service.commands.base import utcnow
from service.commands.goals import get_goal
from service.domain.decisions import GOAL_SELECTED
from service.domain.errors import DecisionNotFound
from service.domain.goal import Goal, GoalState, from_record
from service.domain.ranking import (
    Ranked,
    RankingInputs,
    Score,
    Snapshot,
    explain,
    features,
    rank,
    snapshot,
)
from service.domain.timefmt import format_ts, parse_ts
from service.store import beliefs as belief_table
from service.store import decisions as decision_table
from service.store import goals as goal_table
from service.store import ledger as ledger_table
from service.store import outbox
from service.store.db import Database

log = logging.getLogger("goalstore.ranking")


def ranking_inputs(conn: sqlite3.Connection, now: datetime) -> RankingInputs:
    decision = decision_table.fetch(conn, GOAL_SELECTED)
    if decision is None:  # migration 0002 registers it; only a hand-edited database lacks it
        raise DecisionNotFound(GOAL_SELECTED)
    return RankingInputs(
        now=now,
        weights=decision.weights(),
        active_beliefs=belief_table.active_ids(conn),
        satisfied_goals=goal_table.satisfied_ids(conn),
    )


def goal_score(db: Database, goal_id: str, now: datetime | None = None) -> tuple[Goal, Score]:
    """Any live goal's score with its explanation, as if it were ranked now."""
    with db.read() as conn:
        goal = get_goal(db, goal_id)
        return goal, explain(goal, ranking_inputs(conn, now or utcnow()))


@dataclass(frozen=True)
class RankingState:
    """Snapshots of goals computed from one consistent read of SQLite at ledger head `seq`."""

    seq: int
    inputs: RankingInputs
    snapshots: list[Snapshot]


def ranking_state(
    db: Database, goal_ids: Iterable[str] | None = None, now: datetime | None = None
) -> RankingState:
    """Snapshots of the given goals, or of every goal SQLite holds (deleted ones included,
    so the cache remembers them as gone and a late event cannot bring them back)."""
    with db.read() as conn:
        return state_in(conn, goal_ids, now or utcnow())


def state_in(
    conn: sqlite3.Connection, goal_ids: Iterable[str] | None, now: datetime
) -> RankingState:
    """ranking_state() inside the caller's read transaction."""
    seq, _ = ledger_table.head(conn)
    inputs = ranking_inputs(conn, now)
    if goal_ids is None:
        records = list(goal_table.all_records(conn).values())
    else:
        records = [r for r in (goal_table.fetch(conn, i) for i in goal_ids) if r is not None]
    return RankingState(seq, inputs, [snapshot(from_record(r), inputs, seq) for r in records])


def rebuild_cache(db: Database, cache: RankingCache, now: datetime | None = None) -> dict[str, int]:
    """Make the Redis ranking equal what SQLite says now (safe while writers run).

    Every outbox event up to the ledger head it read is then applied: the rebuild
    covered it, so the relay need not deliver it again.
    """
    now = now or utcnow()
    state = ranking_state(db, now=now)
    written = cache.rebuild(
        state.snapshots, state.inputs.active_beliefs, state.inputs.weights, state.seq,
        now.timestamp(),
    )  # fmt: skip
    with db.write() as conn:
        outbox.mark_applied_through(conn, state.seq, format_ts(utcnow()))
    placements = [s.placement for s in state.snapshots]
    return {
        "goals": written,
        "ranked": placements.count("ranked"),
        "blocked": placements.count("blocked"),
        "seq": state.seq,
    }


@dataclass(frozen=True)
class RankedGoal:
    goal: Goal
    ranked: Ranked


def prioritized(
    db: Database,
    *,
    now: datetime | None = None,
    limit: int = 20,
    category: str | None = None,
    include_blocked: bool = False,
) -> list[RankedGoal]:
    """Adopted live goals, best first, computed from SQLite."""
    with db.read() as conn:
        inputs = ranking_inputs(conn, now or utcnow())
        goals = {
            record["id"]: from_record(record)
            for record in goal_table.live_in_state(conn, GoalState.ADOPTED.value, category)
        }
    ranked = rank((features(goal) for goal in goals.values()), inputs)
    if not include_blocked:
        ranked = [r for r in ranked if not r.blocked]
    return [RankedGoal(goals[r.goal_id], r) for r in ranked[:limit]]


@dataclass(frozen=True)
class RankedView:
    """A page of the ranking and where it was read: "redis" or "sqlite" (the fallback)."""

    items: list[RankedGoal]
    source: str
    reason: str | None = None  # why the fallback was taken


def ranked_view(
    db: Database,
    cache: RankingCache | None,
    *,
    max_lag: timedelta,
    limit: int = 20,
    category: str | None = None,
    include_blocked: bool = False,
) -> RankedView:
    """The ranking from Redis while it is current; from SQLite when Redis is unset, down,
    cold (restarted empty), or further behind the outbox than `max_lag`."""

    def fallback(reason: str) -> RankedView:
        items = prioritized(db, limit=limit, category=category, include_blocked=include_blocked)
        return RankedView(items, "sqlite", reason)

    if cache is None:
        return fallback("no_redis")
    oldest = outbox.oldest_unapplied(db.connection())
    if oldest is not None and utcnow() - parse_ts(oldest) > max_lag:
        return fallback("cache_behind")
    try:
        if not cache.is_warm():
            return fallback("cache_cold")
        snapshots = cache.top(limit, category=category, include_blocked=include_blocked)
    except RedisError as exc:
        log.warning("ranking read from SQLite: Redis does not answer (%s)", exc)
        return fallback("redis_unavailable")
    with db.read() as conn:
        records = goal_table.fetch_many(conn, [s["id"] for s in snapshots])
    items = []
    for s in snapshots:
        record = records.get(s["id"])
        # A goal changed since its snapshot (the worker is a few ms behind): the
        # snapshot's place stands, but nothing that left the adopted state is offered.
        if record is None or record["state"] != GoalState.ADOPTED or record["deleted_at"]:
            continue
        ranked = Ranked(s["id"], s["score"], s["raw"], s["blocked"])
        items.append(RankedGoal(from_record(record), ranked))
    return RankedView(items, "redis")
