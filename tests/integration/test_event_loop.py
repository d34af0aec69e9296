"""The change-event loop in one process: outbox relay, batched apply, redelivery, the urgency
refresh and the ranked read with its SQLite fallback, on a real SQLite file and a real Redis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from service import commands
from service.cache.ranking import RankingCache
from service.commands import Context
from service.domain.beliefs import BeliefPut
from service.domain.events import EventRef
from service.domain.inputs import GoalUpdate
from service.domain.ranking import URGENCY_WINDOW_S
from service.metrics import RECORDER, read_samples
from service.store.db import Database
from service.testing import RELAY, FrozenClock, adopted_goal, free_port, make_context, new_goal
from tests.integration.conftest import KEYS

LAG = timedelta(seconds=10)


@pytest.fixture
def live_ctx() -> Context:
    """A clock at the real time: the ranked read compares event times with the wall clock."""
    return make_context("tester", FrozenClock(datetime.now(UTC)))


def outbox_state(db: Database) -> list[tuple[int, bool, bool]]:
    """(ledger seq, relayed, applied) of every outbox row; a row a rebuild covered (at or
    below the watermark) counts as applied."""
    rows = db.connection().execute(
        "SELECT ledger_seq, relayed_at IS NOT NULL, applied_at IS NOT NULL"
        " OR ledger_seq <= (SELECT applied_through FROM outbox_watermark) FROM outbox"
        " ORDER BY ledger_seq"
    )
    return [(r[0], bool(r[1]), bool(r[2])) for r in rows]


def deliver(db: Database, cache: RankingCache, now: datetime | None = None) -> int:
    """Relay everything pending straight into apply_events (the queue, without RQ)."""
    return commands.relay_outbox(
        db, lambda batch: commands.apply_events(db, cache, batch, now), **RELAY
    )


def test_relayed_events_reach_redis_and_are_marked_applied(
    db: Database, ctx: Context, cache: RankingCache, redis_client: Redis
) -> None:
    """Created and adopted goals are ranked after one delivery; every outbox row is applied."""
    commands.rebuild_cache(db, cache, now=ctx.clock())
    low, high = adopted_goal(db, ctx, value=0.2), adopted_goal(db, ctx, value=0.9)

    assert 4 == deliver(db, cache, ctx.clock())

    assert [high, low] == [m.decode() for m in redis_client.zrevrange(KEYS.ranked, 0, -1)]
    assert [(seq, True, True) for seq in (1, 2, 3, 4)] == outbox_state(db)
    assert 0 == deliver(db, cache, ctx.clock())  # nothing left to send


def test_events_applied_are_counted_once_whatever_the_redeliveries(
    db: Database, ctx: Context, cache: RankingCache, redis_client: Redis
) -> None:
    """goalstore_events_applied_total counts an event once: a batch applied twice (a
    redelivery) adds nothing, events a rebuild covered count when it covers them, and
    their batch arriving after the rebuild adds nothing."""
    RECORDER.bind(redis_client, KEYS.metrics)  # where every command in this process counts
    adopted_goal(db, ctx)
    early: list[EventRef] = []
    commands.relay_outbox(db, early.extend, **RELAY)  # events 1, 2 on the queue
    adopted_goal(db, ctx)  # events 3, 4
    commands.rebuild_cache(db, cache, now=ctx.clock())  # covers 1-4
    commands.apply_events(db, cache, early, ctx.clock())  # ...then 1, 2 arrive
    adopted_goal(db, ctx)  # events 5, 6
    batch: list[EventRef] = []
    commands.relay_outbox(db, batch.extend, **RELAY)
    commands.apply_events(db, cache, batch, ctx.clock())
    commands.apply_events(db, cache, batch, ctx.clock())  # delivered again
    RECORDER.bind(None, KEYS.metrics)

    counted = read_samples(redis_client, KEYS.metrics)
    assert 6 == counted["goalstore_events_applied_total"]


def test_a_failed_send_releases_what_it_did_not_send(db: Database, ctx: Context) -> None:
    """When the queue fails on the second batch, the first stays claimed, the rest is pending
    again, and the error reaches the caller; no row is lost or marked applied."""
    for n in range(5):
        new_goal(db, ctx, id=f"g{n}")
    sent: list[list[EventRef]] = []

    def flaky(batch: list[EventRef]) -> None:
        if sent:
            raise RedisConnectionError("Redis went away")
        sent.append(batch)

    with pytest.raises(RedisConnectionError):
        commands.relay_outbox(db, flaky, batch=2, limit=2000)

    assert [[1, 2]] == [[e.seq for e in batch] for batch in sent]
    expected = [(1, True, False), (2, True, False)] + [(s, False, False) for s in (3, 4, 5)]
    assert expected == outbox_state(db)


def test_claims_never_applied_are_sent_again(
    db: Database, ctx: Context, cache: RankingCache, redis_client: Redis
) -> None:
    """A batch whose job was lost (an emptied queue, a killed worker) is released once it is
    older than the redelivery delay, sent again, and applied."""
    commands.rebuild_cache(db, cache, now=ctx.clock())
    goal_id = adopted_goal(db, ctx)
    lost: list[list[EventRef]] = []
    commands.relay_outbox(db, lost.append, **RELAY)  # on the queue... and then gone
    assert 0 == deliver(db, cache)  # claimed: not sent twice while it may still arrive

    early = commands.redeliver_stale(db, after=timedelta(minutes=1), retention=timedelta(days=1))
    later = commands.redeliver_stale(
        db, after=timedelta(minutes=1), retention=timedelta(days=1),
        now=datetime.now(UTC) + timedelta(minutes=2),
    )  # fmt: skip
    resent: list[list[EventRef]] = []
    commands.relay_outbox(db, resent.append, **RELAY)

    assert {"released": 0, "pruned": 0} == early
    assert 2 == later["released"]
    assert [e.seq for e in lost[0]] == [e.seq for e in resent[0]]
    commands.apply_events(db, cache, resent[0], ctx.clock())
    assert [goal_id] == [m.decode() for m in redis_client.zrange(KEYS.ranked, 0, -1)]
    pruned = commands.redeliver_stale(
        db, after=timedelta(minutes=1), retention=timedelta(0),
        now=datetime.now(UTC) + timedelta(seconds=1),
    )  # fmt: skip
    assert 2 == pruned["pruned"]
    assert [] == outbox_state(db)  # applied rows pruned; the ledger keeps the events
    assert commands.verify_ledger(db).ok


def test_a_rebuild_covers_the_backlog_with_one_watermark(
    db: Database, ctx: Context, cache: RankingCache
) -> None:
    """Events up to the rebuild's seq count as applied without a row written: none is sent
    or redelivered again, the backlog is empty, later events flow as before, and retention
    prunes the covered rows by age."""
    first = adopted_goal(db, ctx)  # events 1, 2
    claimed: list[EventRef] = []
    commands.relay_outbox(db, claimed.extend, **RELAY)  # 1, 2 on the queue, not applied
    adopted_goal(db, ctx)  # events 3, 4: pending
    written = [tuple(r) for r in db.connection().execute("SELECT * FROM outbox")]

    report = commands.rebuild_cache(db, cache, now=ctx.clock())
    again = commands.rebuild_cache(db, cache, now=ctx.clock())

    assert (4, 4) == (report["seq"], again["seq"])
    assert written == [tuple(r) for r in db.connection().execute("SELECT * FROM outbox")]
    assert {"unapplied": 0, "oldest_unapplied_at": None} == commands.cache_backlog(db)
    assert [(s, s <= 2, True) for s in (1, 2, 3, 4)] == outbox_state(db)
    later = datetime.now(UTC) + timedelta(hours=1)
    released = commands.redeliver_stale(
        db, after=timedelta(minutes=1), retention=timedelta(days=3650), now=later
    )
    assert {"released": 0, "pruned": 0} == released  # 1, 2 are covered: not sent again
    assert [1, 2] == [e.seq for e in claimed]
    commands.update_goal(db, ctx, first, GoalUpdate(value=0.9), 2)  # event 5
    sent: list[EventRef] = []
    commands.relay_outbox(db, sent.extend, **RELAY)
    assert [5] == [e.seq for e in sent]
    pruned = commands.redeliver_stale(
        db, after=timedelta(minutes=1), retention=timedelta(0), now=later
    )
    assert (4, 1) == (pruned["pruned"], pruned["released"])  # 5: claimed long ago, unapplied
    assert [(5, False, False)] == outbox_state(db)


def test_a_belief_event_reaches_the_goals_that_name_it(
    db: Database, ctx: Context, cache: RankingCache, redis_client: Redis
) -> None:
    """Activating a belief takes the goals contradicting it out of the ranking and raises the
    alignment of goals aligned with it; goals not naming it keep their snapshot untouched."""
    commands.put_belief(db, ctx, "b.rest", BeliefPut(statement="rest", active=False))
    against = adopted_goal(db, ctx, contradicts=["b.rest"], value=0.9)
    aligned = adopted_goal(db, ctx, aligns_with=["b.rest"], value=0.5)
    other = adopted_goal(db, ctx, value=0.4)
    commands.rebuild_cache(db, cache, now=ctx.clock())
    before = cache.snapshot(other)

    commands.put_belief(db, ctx, "b.rest", BeliefPut(statement="rest", active=True))
    assert 1 == deliver(db, cache, ctx.clock())

    assert [aligned, other] == [m.decode() for m in redis_client.zrevrange(KEYS.ranked, 0, -1)]
    blocked = cache.snapshot(against)
    assert blocked is not None
    assert [{"reason": "contradicts_belief", "ref": "b.rest"}] == blocked["blocked_by"]
    snap = cache.snapshot(aligned)
    assert snap is not None and 1.0 == snap["alignment"]
    assert before == cache.snapshot(other)  # not reached: same seq, same computed_at
    assert [b"b.rest"] == sorted(redis_client.smembers(KEYS.beliefs_active))


def test_the_refresh_moves_urgency_with_time_and_blocks_a_passed_deadline(
    db: Database, ctx: Context, clock: FrozenClock, cache: RankingCache, redis_client: Redis
) -> None:
    """A goal due in 2 h: its cached urgency follows the clock; past the deadline it is blocked."""
    due = adopted_goal(db, ctx, horizon_max_min=120)
    far = adopted_goal(db, ctx, horizon_max_min=3 * 24 * 60)
    commands.rebuild_cache(db, cache, now=clock())
    deadline = clock() + timedelta(hours=2)

    def urgency(goal_id: str) -> float:
        snap = cache.snapshot(goal_id)
        assert snap is not None
        return float(snap["urgency"])

    assert pytest.approx(1 - 2 * 3600 / URGENCY_WINDOW_S) == urgency(due)
    clock.advance(minutes=90)
    assert {"rebuilt": False, "goals": 1, "deadlines_passed": 0} == commands.refresh_cache(
        db, cache, now=clock()
    )
    assert pytest.approx(1 - 30 * 60 / URGENCY_WINDOW_S) == urgency(due)
    assert 0.0 == urgency(far)

    clock.advance(minutes=31)
    commands.refresh_cache(db, cache, now=clock())
    snap = cache.snapshot(due)
    assert snap is not None
    assert [{"reason": "deadline_passed", "ref": deadline.isoformat()}] == snap["blocked_by"]
    assert [far] == [m.decode() for m in redis_client.zrange(KEYS.ranked, 0, -1)]
    assert [due] == [m.decode() for m in redis_client.zrange(KEYS.blocked, 0, -1)]
    # Once past, the goal is not re-scored again: its urgency no longer changes.
    clock.advance(minutes=1)
    assert {"rebuilt": False, "goals": 0, "deadlines_passed": 0} == commands.refresh_cache(
        db, cache, now=clock()
    )


@pytest.mark.parametrize("path", ["refresh", "apply"])
def test_a_cold_redis_is_rebuilt_whole(
    path: str, db: Database, ctx: Context, cache: RankingCache, redis_client: Redis
) -> None:
    """Redis restarted empty: the next cron refresh, or the next batch, rebuilds everything."""
    ids = [adopted_goal(db, ctx, value=v) for v in (0.3, 0.8)]
    commands.rebuild_cache(db, cache, now=ctx.clock())
    redis_client.flushdb()
    late = adopted_goal(db, ctx, value=0.5)

    if path == "refresh":
        refreshed = commands.refresh_cache(db, cache, now=ctx.clock())
        assert {"rebuilt": True, "goals": 3, "deadlines_passed": 0} == refreshed
    else:
        assert 2 == deliver(db, cache, ctx.clock())  # the late goal's create and adopt

    assert cache.is_warm()
    expected = [ids[1], late, ids[0]]
    assert expected == [m.decode() for m in redis_client.zrevrange(KEYS.ranked, 0, -1)]
    assert all(applied for _, _, applied in outbox_state(db))


def test_the_ranked_read_says_where_it_came_from(
    db: Database, live_ctx: Context, cache: RankingCache, engine: str
) -> None:
    """The store (named by engine) without Redis, or with a cold one; Redis once warm and
    current; the store again when the cache is behind the outbox by more than the lag."""
    ids = [adopted_goal(db, live_ctx, value=v) for v in (0.3, 0.8, 0.5)]
    expected = [ids[1], ids[2], ids[0]]

    def read(max_lag: timedelta = LAG, **kw: Any) -> tuple[str, str | None, list[str]]:
        view = commands.ranked_view(db, kw.pop("cache", cache), max_lag=max_lag, **kw)
        return view.source, view.reason, [r.goal.id for r in view.items]

    assert (engine, "no_redis", expected) == read(cache=None)
    assert (engine, "cache_cold", expected) == read()
    commands.rebuild_cache(db, cache)
    assert ("redis", None, expected) == read()
    assert ("redis", None, expected[:2]) == read(limit=2)

    commands.abandon_goal(db, live_ctx, ids[2])  # not yet applied
    assert ("redis", None, [ids[1], ids[0]]) == read()  # not offered though still cached
    assert (engine, "cache_behind", [ids[1], ids[0]]) == read(max_lag=timedelta(0))


def test_the_ranked_read_falls_back_when_redis_does_not_answer(
    db: Database, live_ctx: Context, engine: str
) -> None:
    """A Redis nobody listens on: the ranking still comes, from the store, saying why."""
    goal_id = adopted_goal(db, live_ctx)
    dead = Redis(port=free_port(), socket_connect_timeout=0.5, socket_timeout=0.5)
    view = commands.ranked_view(db, RankingCache(dead, KEYS), max_lag=LAG)

    assert (engine, "redis_unavailable") == (view.source, view.reason)
    assert [goal_id] == [r.goal.id for r in view.items]
