"""A passed deadline is a ledger event (`goal_deadline_passed`), written by the periodic
refresh once per goal and deadline, against a real store (SQLite and PostgreSQL) and a
real Redis."""

from __future__ import annotations

import threading
from datetime import datetime

from redis import Redis

from service import commands
from service.cache.ranking import RankingCache
from service.commands import Context
from service.domain.inputs import GoalUpdate
from service.store.db import Database, open_database
from service.testing import FrozenClock, adopted_goal
from tests.conftest import TEST_REDIS_URL
from tests.integration.conftest import KEYS


def passed_events(db: Database, goal_id: str) -> list[dict[str, object]]:
    return [
        e.payload
        for e in commands.goal_history(db, goal_id, limit=1000)
        if e.event_type == "goal_deadline_passed"
    ]


def apply_outbox(db: Database, cache: RankingCache, now: datetime) -> None:
    """What the relay and the events worker do, at `now`."""
    while commands.relay_outbox(
        db, lambda events: commands.apply_events(db, cache, events, now), limit=2000, batch=500
    ):
        pass


def test_the_refresh_writes_one_event_per_deadline_and_another_once_it_moves_and_passes(
    db: Database, cache: RankingCache, ctx: Context, clock: FrozenClock
) -> None:
    """Two refreshes after the deadline write one goal_deadline_passed event naming it,
    and the goal keeps its version (an observation, not a change); the refresh applies
    the event to the ranking itself. The deadline moved
    later and passed again is a second event, naming the new deadline; the ledger
    verifies and replays to the table."""
    goal_id = adopted_goal(db, ctx, horizon_max_min=10)
    quiet = adopted_goal(db, ctx, horizon_max_min=60)  # its deadline has not passed
    commands.rebuild_cache(db, cache, clock.now)
    version = commands.get_goal(db, goal_id).version

    before = commands.refresh_cache(db, cache, clock.advance(minutes=9))
    first = commands.refresh_cache(db, cache, clock.advance(minutes=2))
    second = commands.refresh_cache(db, cache, clock.advance(minutes=1))

    assert (0, 1, 0) == (
        before["deadlines_passed"],
        first["deadlines_passed"],
        second["deadlines_passed"],
    )
    [event] = passed_events(db, goal_id)
    assert ("2026-01-01T12:10:00.000000Z", version) == (event["deadline"], event["version"])
    assert version == commands.get_goal(db, goal_id).version
    assert 0 == commands.cache_backlog(db)["unapplied"]  # the refresh applied its event
    assert [] == passed_events(db, quiet)
    assert b"deadline_passed" == cache.redis.hget(KEYS.goal(goal_id), "blocked_by")

    commands.update_goal(db, ctx, goal_id, GoalUpdate(horizon_max_min=30), version)
    apply_outbox(db, cache, clock.now)
    moved = commands.refresh_cache(db, cache, clock.advance(minutes=5))  # 12:17, before 12:30
    again = commands.refresh_cache(db, cache, clock.advance(minutes=15))  # 12:32
    commands.refresh_cache(db, cache, clock.advance(minutes=1))

    assert (0, 1) == (moved["deadlines_passed"], again["deadlines_passed"])
    assert ["2026-01-01T12:10:00.000000Z", "2026-01-01T12:30:00.000000Z"] == [
        e["deadline"] for e in passed_events(db, goal_id)
    ]
    assert commands.verify_ledger(db).ok
    assert commands.replay_check(db).ok


def test_refreshers_running_at_once_write_the_event_once(
    database_location: str, db: Database, cache: RankingCache, ctx: Context, clock: FrozenClock
) -> None:
    """Four refreshers, each with its own store connection and Redis client, run at the
    same instant past the deadline: the check inside the write transaction lets one of
    them write the event, and only one."""
    goal_id = adopted_goal(db, ctx, horizon_max_min=10)
    commands.rebuild_cache(db, cache, clock.now)
    now = clock.advance(minutes=11)
    stores = [open_database(database_location) for _ in range(4)]
    clients = [Redis.from_url(TEST_REDIS_URL) for _ in stores]
    barrier = threading.Barrier(len(stores))
    written: list[int] = []

    def refresh(store: Database, redis: Redis) -> None:
        barrier.wait()
        written.append(commands.refresh_cache(store, RankingCache(redis, KEYS), now)[
            "deadlines_passed"])  # fmt: skip

    threads = [
        threading.Thread(target=refresh, args=pair) for pair in zip(stores, clients, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for store, client in zip(stores, clients, strict=True):
        store.close()
        client.close()

    assert [0, 0, 0, 1] == sorted(written)
    assert 1 == len(passed_events(db, goal_id))
