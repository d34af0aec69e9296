"""Ranking read from SQLite: the truth the Redis cache mirrors, and its fallback."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from redis.exceptions import RedisError

from service.cache.ranking import WRITE_CHUNK, Page, RankingCache
from service.commands.base import utcnow
from service.commands.goals import get_goal
from service.commands.kinds import FallbackReason, RankingSource
from service.domain.decisions import GOAL_SELECTED
from service.domain.errors import DecisionNotFound
from service.domain.goal import Goal, GoalState, from_record
from service.domain.ranking import (
    FactTable,
    FeatureTable,
    Ranked,
    RankingInputs,
    Score,
    Snapshots,
    explain,
    manual_reason,
    rank,
)
from service.domain.timefmt import epoch_us, parse_ts
from service.metrics import EVENTS_APPLIED, PRIORITIZE_LATENCY, RECORDER
from service.store import beliefs as belief_table
from service.store import decisions as decision_table
from service.store import goals as goal_table
from service.store import ledger as ledger_table
from service.store import outbox
from service.store.db import Connection, Database

log = logging.getLogger("goalstore.ranking")


def ranking_inputs(conn: Connection, now: datetime) -> RankingInputs:
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

    The rows become columns only when snapshots are asked for, so a rebuild does that
    a chunk at a time while Redis writes the chunk before."""

    seq: int
    inputs: RankingInputs
    rows: list[Any]  # goal_table.ranking_rows()

    def __len__(self) -> int:
        return len(self.rows)

    def snapshots(self) -> Snapshots:
        """The snapshots of these goals, scored together."""
        return _snapshots(self.rows, self.inputs, self.seq)


def ranking_state(
    db: Database, goal_ids: Iterable[str] | None = None, now: datetime | None = None
) -> RankingState:
    """Snapshots of the given goals, or of every goal SQLite holds (deleted ones included,
    so the cache remembers them as gone and a late event cannot bring them back)."""
    with db.read() as conn:
        return state_in(conn, goal_ids, now or utcnow())


def state_in(conn: Connection, goal_ids: Iterable[str] | None, now: datetime) -> RankingState:
    """ranking_state() inside the caller's read transaction."""
    seq, inputs = _head(conn, now)
    rows = goal_table.ranking_rows(conn, None if goal_ids is None else list(goal_ids))
    return RankingState(seq, inputs, rows)


def _head(conn: Connection, now: datetime) -> tuple[int, RankingInputs]:
    """The ledger head and the ranking inputs as of it (inside a read transaction)."""
    seq, _ = ledger_table.head(conn)
    return seq, ranking_inputs(conn, now)


def _snapshots(rows: Sequence[Sequence[Any]], inputs: RankingInputs, seq: int) -> Snapshots:
    with RECORDER.timed(PRIORITIZE_LATENCY):
        return Snapshots(*_tables(rows), inputs, seq)


def _tables(rows: Sequence[Sequence[Any]]) -> tuple[FeatureTable, FactTable]:
    """goal_table.ranking_rows() rows as the columns ranking and its snapshots read."""
    if not rows:
        return FeatureTable.of([]), FactTable.of([])
    (ids, value, effort, risk, created_at, horizon_max_min, aligns_with, contradicts,
     depends_on, version, state, category, deleted_at, manual_block, assigned_to,
     related) = zip(*rows, strict=True)  # fmt: skip
    held = {i: manual_reason(orjson.loads(text)) or "" for i, text in enumerate(manual_block)
            if text is not None and text != "null"}  # fmt: skip
    table = FeatureTable.stored(
        ids, value, effort, risk, epoch_us(created_at), horizon_max_min, _id_lists(aligns_with),
        _id_lists(contradicts), _id_lists(depends_on), held,
    )  # fmt: skip
    deleted = [d is not None for d in deleted_at]
    return table, FactTable(version, state, category, deleted, assigned_to, _id_lists(related))


def _id_lists(texts: Sequence[str]) -> list[tuple[str, ...]]:
    """Stored JSON arrays of ids as tuples; most are empty, and "[]" needs no parser."""
    loads = orjson.loads
    return [() if text == "[]" else tuple(loads(text)) for text in texts]


def rebuild_cache(db: Database, cache: RankingCache, now: datetime | None = None) -> dict[str, int]:
    """Make the Redis ranking equal what SQLite says now (safe while writers run).

    Every outbox event up to the ledger head it read is then applied (the outbox
    watermark moves there): the rebuild covered it, so the relay need not deliver it.
    """
    now = now or utcnow()
    placements: Counter[str] = Counter()
    with db.read() as conn:
        seq, inputs = _head(conn, now)

        def batches() -> Iterator[Snapshots]:
            # Read, scored and sent a chunk at a time, inside this one read transaction.
            for rows in goal_table.ranking_chunks(conn, WRITE_CHUNK):
                batch = _snapshots(rows, inputs, seq)
                placements.update(batch.placement)
                yield batch

        written = cache.rebuild(
            batches(), inputs.active_beliefs, inputs.weights, seq, now.timestamp()
        )
    with db.write() as conn:
        applied = outbox.mark_applied_through(conn, seq)
    RECORDER.inc(EVENTS_APPLIED, applied)  # the rebuild covered them
    return {
        "goals": written,
        "ranked": placements["ranked"],
        "blocked": placements["blocked"],
        "seq": seq,
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
    """Adopted live goals, best first, computed from the store: every one scored from its
    ranking columns (as a rebuild scores them), and only the page's goals read whole."""
    with db.read() as conn:
        inputs = ranking_inputs(conn, now or utcnow())
        rows = goal_table.ranking_rows_in_state(conn, GoalState.ADOPTED.value, category)
        with RECORDER.timed(PRIORITIZE_LATENCY):
            top = rank(_tables(rows)[0], inputs).top(limit, include_blocked)
        records = goal_table.fetch_many(conn, [r.goal_id for r in top])
    return [RankedGoal(from_record(records[r.goal_id]), r) for r in top]


@dataclass(frozen=True)
class RankedView:
    """A page of the ranking and where it was read: Redis, or the store (the fallback)."""

    items: list[RankedGoal]
    source: RankingSource
    reason: FallbackReason | None = None  # why the fallback was taken
    read: int = 0  # entries read before dropping goals that left the adopted state


def _hot_top(
    db: Database, cache: RankingCache | None, max_lag: timedelta, limit: int,
    category: str | None, include_blocked: bool,
) -> tuple[Page | None, FallbackReason | None]:  # fmt: skip
    """The top of the ranking from Redis, or None and why Redis cannot be trusted now:
    unset, down, cold (restarted empty), or further behind the outbox than `max_lag`."""
    if cache is None:
        return None, FallbackReason.NO_REDIS
    oldest = outbox.oldest_unapplied(db.connection())
    if oldest is not None and utcnow() - parse_ts(oldest) > max_lag:
        return None, FallbackReason.CACHE_BEHIND
    try:
        page = cache.page(limit, category=category, include_blocked=include_blocked)
    except RedisError as exc:
        log.warning("ranking read from SQLite: Redis does not answer (%s)", exc)
        return None, FallbackReason.REDIS_UNAVAILABLE
    if not page.warm:
        return None, FallbackReason.CACHE_COLD
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
    """The ranking from Redis while it is current; from the store (SQLite or PostgreSQL,
    `source` says which) when Redis is unset, down, cold (restarted empty), or further
    behind the outbox than `max_lag`."""
    page, reason = _hot_top(db, cache, max_lag, limit, category, include_blocked)
    if page is None:
        items = prioritized(db, limit=limit, category=category, include_blocked=include_blocked)
        return RankedView(items, RankingSource(db.dialect.name), reason, len(items))
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
    return RankedView(items, RankingSource.REDIS, read=len(snapshots))


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
