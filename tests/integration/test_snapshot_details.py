"""A goal's hash in Redis shows who it is assigned to and the goals it is related to
(seed 003's fields), only when it has them, and stays a listpack."""

from __future__ import annotations

from redis import Redis

from service import commands
from service.cache.ranking import RankingCache
from service.commands import Context
from service.domain.inputs import GoalUpdate
from service.store.db import Database
from service.testing import adopted_goal, new_goal
from tests.integration.conftest import KEYS


def goal_hash(redis: Redis, goal_id: str) -> dict[str, str]:
    raw: dict[bytes, bytes] = redis.hgetall(KEYS.goal(goal_id))  # type: ignore[assignment]
    return {k.decode(): v.decode() for k, v in raw.items()}


def test_the_hash_shows_assignee_and_related_goals_and_drops_them_once_cleared(
    db: Database, ctx: Context, cache: RankingCache, redis_client: Redis
) -> None:
    """HGETALL shows `assigned_to` and `related` (ids space apart; as many as fit in 64
    bytes, then `+N`); a goal without them has neither field; clearing them (the events
    worker applying the update) removes the fields, and every hash is a listpack."""
    others = [new_goal(db, ctx, id=f"g-{n:016x}").id for n in range(6)]
    goal_id = adopted_goal(db, ctx, assigned_to="alice", related=others[:2])
    crowded = adopted_goal(db, ctx, related=others)  # 6 ids of 18 bytes: not all fit
    plain = adopted_goal(db, ctx)
    commands.rebuild_cache(db, cache, ctx.clock())

    held, many, bare = (goal_hash(redis_client, g) for g in (goal_id, crowded, plain))

    assert ("alice", " ".join(others[:2])) == (held["assigned_to"], held["related"])
    assert [*others[:3], "+3"] == many["related"].split()
    assert set() == {"assigned_to", "related"} & set(bare)

    version = commands.get_goal(db, goal_id).version
    commands.update_goal(db, ctx, goal_id, GoalUpdate(assigned_to=None, related=[]), version)
    commands.relay_outbox(
        db, lambda events: commands.apply_events(db, cache, events, ctx.clock()),
        limit=2000, batch=500,
    )  # fmt: skip

    assert set() == {"assigned_to", "related"} & set(goal_hash(redis_client, goal_id))
    for g in (goal_id, crowded, plain):
        assert b"listpack" == redis_client.object("encoding", KEYS.goal(g)), g
