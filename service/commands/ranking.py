"""Ranking read from SQLite: the truth the Redis cache mirrors, and its fallback."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
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
    Lineage,
    Ranked,
    RankingInputs,
    Score,
    Snapshots,
    TreeFacts,
    explain,
    held_by,
    manual_reason,
    rank,
    tree_facts,
)
from service.domain.timefmt import epoch_us, parse_ts
from service.metrics import EVENTS_APPLIED, PRIORITIZE_LATENCY, RECORDER
from service.store import beliefs as belief_table
from service.store import decisions as decision_table
from service.store import goals as goal_table
from service.store import ledger as ledger_table
from service.store import outbox
from service.store import tree_ranking as tree_table
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
        return goal, scores_in(conn, [goal], now or utcnow())[goal.id]


def scores_in(conn: Connection, goals: Sequence[Goal], now: datetime) -> dict[str, Score]:
    """Each goal's score now with its explanation, by goal id: the inputs and the trees
    read once for all of them (the console's board explains a page of goals)."""
    inputs = ranking_inputs(conn, now)
    ids = [g.id for g in goals]
    trees = trees_in(conn, ids, [g.id for g in goals if g.parent_id], inputs)
    return {g.id: explain(g, inputs, trees.get(g.id)) for g in goals}


def tree_of(
    conn: Connection, goal: Goal, inputs: RankingInputs, in_use: bool | None = None
) -> TreeFacts | None:
    """What its tree makes of one goal (None: nothing), as trees_in() makes it of many:
    every path that scores a goal alone passes this to explain()."""
    climbing = [goal.id] if goal.parent_id else []
    return trees_in(conn, [goal.id], climbing, inputs, in_use).get(goal.id)


def trees_in(
    conn: Connection, goal_ids: Sequence[str] | None, climbing: Sequence[str],
    inputs: RankingInputs, in_use: bool | None = None,
) -> dict[str, TreeFacts]:  # fmt: skip
    """What their trees make of the goals of `goal_ids` (None: of every goal), those its
    tree changes nothing of left out: read from the store, made by the domain.
    `climbing`: those of them that have a parent (ignored for every goal). `in_use`:
    whether any goal has a parent, if the caller has read it in this transaction."""
    if in_use is None and not climbing:
        in_use = tree_table.in_use(conn)
    if not climbing and not in_use:  # a flat store: no tree to read
        return {}
    if goal_ids is None:
        rows = tree_table.lineage(conn, None)
        if not rows:  # no goal has a parent: no tree
            return {}
        return tree_facts(_lineage(rows), tree_table.open_children(conn, None), inputs)
    rows = tree_table.lineage(conn, list(climbing)) if climbing else []
    found = tree_facts(_lineage(rows), tree_table.open_children(conn, list(goal_ids)), inputs)
    # The ancestors climbed to are not scored here (and their open children not read).
    return {goal_id: found[goal_id] for goal_id in goal_ids if goal_id in found}


def _lineage(rows: Sequence[Sequence[Any]]) -> dict[str, Lineage]:
    """tree_table.lineage() rows as the domain reads them; each deadline as
    FeatureTable.stored() makes it (the same float, to the bit)."""
    if not rows:
        return {}
    ids, parent_ids, created_at, horizon_max_min, manual_block, contradicts, depends_on = zip(
        *rows, strict=True
    )
    found = {}
    for goal_id, parent_id, us, horizon, held, against, needs in zip(
        ids, parent_ids, epoch_us(created_at).tolist(), horizon_max_min, manual_block,
        _id_lists(contradicts), _id_lists(depends_on), strict=True,
    ):  # fmt: skip
        deadline = None if horizon is None else (us + horizon * 60_000_000) / 1e6
        reason = manual_reason(orjson.loads(held))
        found[goal_id] = Lineage(goal_id, parent_id, deadline, reason, against, needs)
    return found


@dataclass(frozen=True)
class RankingState:
    """Goals and ranking inputs from one consistent read of SQLite at ledger head `seq`.

    The rows become columns only when snapshots are asked for, so a rebuild does that
    a chunk at a time while Redis writes the chunk before."""

    seq: int
    inputs: RankingInputs
    rows: list[Any]  # goal_table.ranking_rows()
    trees: dict[str, TreeFacts]  # what their trees make of them (trees_in())

    def __len__(self) -> int:
        return len(self.rows)

    def snapshots(self) -> Snapshots:
        """The snapshots of these goals, scored together."""
        return _snapshots(self.rows, self.inputs, self.seq, self.trees)


def ranking_state(
    db: Database, goal_ids: Iterable[str] | None = None, now: datetime | None = None
) -> RankingState:
    """Snapshots of the given goals, or of every goal SQLite holds (deleted ones included,
    so the cache remembers them as gone and a late event cannot bring them back)."""
    with db.read() as conn:
        return state_in(conn, goal_ids, now or utcnow())


def state_in(
    conn: Connection, goal_ids: Iterable[str] | None, now: datetime, *, flat: bool = False
) -> RankingState:
    """ranking_state() inside the caller's read transaction; `flat`: the caller knows no
    goal is in a tree (tree_table.in_use() said so in this transaction)."""
    seq, inputs = _head(conn, now)
    rows = goal_table.ranking_rows(conn, None if goal_ids is None else list(goal_ids))
    if flat:
        trees: dict[str, TreeFacts] = {}
    elif goal_ids is None:
        trees = trees_in(conn, None, (), inputs)
    else:
        climbing = [row[0] for row in rows if row[_PARENT] is not None]
        trees = trees_in(conn, [row[0] for row in rows], climbing, inputs)
    return RankingState(seq, inputs, rows, trees)


_PARENT = goal_table.RANKING_FIELDS.index("parent_id")


def _head(conn: Connection, now: datetime) -> tuple[int, RankingInputs]:
    """The ledger head and the ranking inputs as of it (inside a read transaction)."""
    seq, _ = ledger_table.head(conn)
    return seq, ranking_inputs(conn, now)


def _snapshots(
    rows: Sequence[Sequence[Any]], inputs: RankingInputs, seq: int,
    trees: Mapping[str, TreeFacts],
) -> Snapshots:  # fmt: skip
    with RECORDER.timed(PRIORITIZE_LATENCY):
        return Snapshots(*_tables(rows, trees), inputs, seq)


def _tables(
    rows: Sequence[Sequence[Any]], trees: Mapping[str, TreeFacts]
) -> tuple[FeatureTable, FactTable]:
    """goal_table.ranking_rows() rows as the columns ranking and its snapshots read, as
    their trees (`trees`, by goal id: trees_in()) make them."""
    if not rows:
        return FeatureTable.of([]), FactTable.of([])
    (ids, value, effort, risk, created_at, horizon_max_min, aligns_with, contradicts,
     depends_on, version, state, category, deleted_at, manual_block, assigned_to,
     related, parent_id, progress, tree_block) = zip(*rows, strict=True)  # fmt: skip
    holds = {i: held_by(orjson.loads(manual_block[i]), orjson.loads(tree_block[i]))
             for i in sorted(_set(manual_block) | _set(tree_block))}  # fmt: skip
    table = FeatureTable.stored(
        ids, value, effort, risk, epoch_us(created_at), horizon_max_min, _id_lists(aligns_with),
        _id_lists(contradicts), _id_lists(depends_on), holds,
    )  # fmt: skip
    if trees:
        table = table.under({i: trees[g] for i, g in enumerate(ids) if g in trees})
    deleted = [d is not None for d in deleted_at]
    return table, FactTable(version, state, category, deleted, assigned_to, _id_lists(related),
                            parent_id, progress)  # fmt: skip


def _set(texts: tuple[str | None, ...]) -> set[int]:
    """The positions of a nullable JSON column that hold something: few do, and only
    theirs are parsed. Most chunks have none, which tuple.count() finds at C speed."""
    if texts.count("null") + texts.count(None) == len(texts):
        return set()
    return {i for i, text in enumerate(texts) if text is not None and text != "null"}


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
        trees = trees_in(conn, None, (), inputs)

        def batches() -> Iterator[Snapshots]:
            # Read, scored and sent a chunk at a time, inside this one read transaction.
            for rows in goal_table.ranking_chunks(conn, WRITE_CHUNK):
                batch = _snapshots(rows, inputs, seq, trees)
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
    blocked_only: bool = False,
) -> list[RankedGoal]:
    """Adopted live goals, best first, computed from the store: every one scored from its
    ranking columns (as a rebuild scores them), and only the page's goals read whole.
    `blocked_only`: the best `limit` of the blocked ones instead."""
    with db.read() as conn:
        inputs = ranking_inputs(conn, now or utcnow())
        rows = goal_table.ranking_rows_in_state(conn, GoalState.ADOPTED.value, category)
        trees = trees_in(conn, None, (), inputs)
        with RECORDER.timed(PRIORITIZE_LATENCY):
            ranking = rank(_tables(rows, trees)[0], inputs)
            top = ranking.blocked(limit) if blocked_only else ranking.top(limit, include_blocked)
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
    items = still_adopted(db, snapshots)
    return RankedView(items, RankingSource.REDIS, read=len(snapshots))


def still_adopted(db: Database, snapshots: Sequence[Mapping[str, Any]]) -> list[RankedGoal]:
    """The goals of placed snapshots, in their order, read whole from the store. A goal
    changed since its snapshot (the worker is a few ms behind): the snapshot's place
    stands, but nothing that left the adopted state is offered."""
    with db.read() as conn:
        records = goal_table.fetch_many(conn, [s["id"] for s in snapshots])
    items = []
    for s in snapshots:
        record = records.get(s["id"])
        if record is None or record["state"] != GoalState.ADOPTED or record["deleted_at"]:
            continue
        ranked = Ranked(s["id"], s["score"], s["raw"], s["blocked"])
        items.append(RankedGoal(from_record(record), ranked))
    return items


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
