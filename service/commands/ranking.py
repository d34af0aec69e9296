"""Ranking read from SQLite: the truth the Redis cache mirrors, and its fallback."""

from __future__ import annotations

import logging
import sqlite3
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from redis.exceptions import RedisError

from service.cache.ranking import WRITE_CHUNK, Page, RankingCache
from service.commands.base import utcnow
from service.commands.goals import get_goal
from service.domain.decisions import GOAL_SELECTED
from service.domain.errors import DecisionNotFound
from service.domain.goal import Goal, GoalState, from_record
from service.domain.ranking import (
    Facts,
    Features,
    Ranked,
    RankingInputs,
    Score,
    Snapshot,
    explain,
    features,
    features_of,
    rank,
    snapshots,
)
from service.domain.timefmt import format_ts, parse_ts
from service.metrics import EVENTS_APPLIED, PRIORITIZE_LATENCY, RECORDER
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
    """Goals and ranking inputs from one consistent read of SQLite at ledger head `seq`.

    The rows are turned into features only when snapshots are asked for, so a rebuild
    does that a chunk at a time while Redis writes the chunk before."""

    seq: int
    inputs: RankingInputs
    rows: list[Any]  # goal_table.ranking_rows()

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def goal_ids(self) -> list[str]:
        return [row[0] for row in self.rows]

    def snapshots(self, start: int = 0, stop: int | None = None) -> list[Snapshot]:
        """The snapshots of the goals of rows[start:stop], scored together."""
        with RECORDER.timed(PRIORITIZE_LATENCY):
            goals = [_goal_of(row) for row in self.rows[start:stop]]
            return snapshots(goals, self.inputs, self.seq)


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
    rows = goal_table.ranking_rows(conn, None if goal_ids is None else list(goal_ids))
    return RankingState(seq, inputs, rows)


def _goal_of(row: Sequence[Any]) -> tuple[Features, Facts]:
    """A goal_table.ranking_rows() row as what ranking and its snapshot read."""
    (goal_id, value, effort, risk, created_at, horizon_max_min, aligns_with, contradicts,
     depends_on, version, state, category, deleted_at) = row  # fmt: skip
    loads = orjson.loads
    return (
        features_of(goal_id, value, effort, risk, parse_ts(created_at), horizon_max_min,
                    tuple(loads(aligns_with)), tuple(loads(contradicts)), tuple(loads(depends_on))),
        Facts(version, state, category, deleted_at is not None),
    )  # fmt: skip


def rebuild_cache(db: Database, cache: RankingCache, now: datetime | None = None) -> dict[str, int]:
    """Make the Redis ranking equal what SQLite says now (safe while writers run).

    Every outbox event up to the ledger head it read is then applied: the rebuild
    covered it, so the relay need not deliver it again.
    """
    now = now or utcnow()
    state = ranking_state(db, now=now)
    chunks = (state.snapshots(i, i + WRITE_CHUNK) for i in range(0, len(state), WRITE_CHUNK))
    placements: Counter[str] = Counter()

    def counted(chunk: list[Snapshot]) -> list[Snapshot]:
        placements.update(s.placement for s in chunk)
        return chunk

    written = cache.rebuild(
        map(counted, chunks), state.goal_ids, state.inputs.active_beliefs,
        state.inputs.weights, state.seq, now.timestamp(),
    )  # fmt: skip
    with db.write() as conn:
        applied = outbox.mark_applied_through(conn, state.seq, format_ts(utcnow()))
    RECORDER.inc(EVENTS_APPLIED, applied)  # the rebuild covered them
    return {
        "goals": written,
        "ranked": placements["ranked"],
        "blocked": placements["blocked"],
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
    with RECORDER.timed(PRIORITIZE_LATENCY):
        top = rank([features(goal) for goal in goals.values()], inputs).top(limit, include_blocked)
    return [RankedGoal(goals[r.goal_id], r) for r in top]


@dataclass(frozen=True)
class RankedView:
    """A page of the ranking and where it was read: "redis" or "sqlite" (the fallback)."""

    items: list[RankedGoal]
    source: str
    reason: str | None = None  # why the fallback was taken
    read: int = 0  # entries read before dropping goals that left the adopted state


def _hot_top(
    db: Database, cache: RankingCache | None, max_lag: timedelta, limit: int,
    category: str | None, include_blocked: bool,
) -> tuple[Page | None, str | None]:  # fmt: skip
    """The top of the ranking from Redis, or None and why Redis cannot be trusted now:
    unset, down, cold (restarted empty), or further behind the outbox than `max_lag`."""
    if cache is None:
        return None, "no_redis"
    oldest = outbox.oldest_unapplied(db.connection())
    if oldest is not None and utcnow() - parse_ts(oldest) > max_lag:
        return None, "cache_behind"
    try:
        page = cache.page(limit, category=category, include_blocked=include_blocked)
    except RedisError as exc:
        log.warning("ranking read from SQLite: Redis does not answer (%s)", exc)
        return None, "redis_unavailable"
    if not page.warm:
        return None, "cache_cold"
    return page, None


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
    page, reason = _hot_top(db, cache, max_lag, limit, category, include_blocked)
    if page is None:
        items = prioritized(db, limit=limit, category=category, include_blocked=include_blocked)
        return RankedView(items, "sqlite", reason, len(items))
    snapshots = page.items
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
    return RankedView(items, "redis", read=len(snapshots))


def ranked_candidates(
    db: Database, cache: RankingCache | None, *, max_lag: timedelta, limit: int
) -> tuple[list[tuple[str, int]], bool]:
    """(goal id, version) of the best `limit` selectable goals, in ranking order, for
    selection, and whether more lie beyond: from Redis without reading the goals (the
    selector re-reads the one it starts), or from SQLite when Redis cannot be trusted."""
    page, _ = _hot_top(db, cache, max_lag, limit, None, False)
    if page is None:
        found = [(r.goal.id, r.goal.version) for r in prioritized(db, limit=limit)]
        return found, len(found) >= limit
    # page.ranked, not len(items): goals unplaced since the ZSET was read are dropped
    return [(s["id"], s["version"]) for s in page.items], page.ranked > limit
