"""The Redis ranking: rebuilt from SQLite, written under a version guard, on a real Redis."""

from __future__ import annotations

import json
import random
import threading
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from service import commands
from service.cache.ranking import CacheLost, RankingCache
from service.commands import Context
from service.domain.beliefs import BeliefPut
from service.domain.decisions import DecisionChange
from service.domain.errors import GoalStoreError
from service.domain.events import EventRef
from service.domain.goal import GoalCategory
from service.domain.inputs import GoalCreate, GoalUpdate
from service.domain.ranking import RankingInputs, snapshot
from service.store.db import Database
from service.testing import (
    RELAY,
    FrozenClock,
    adopted_goal,
    default_vetting,
    goal_spec,
    make_context,
    new_goal,
)
from tests.integration.conftest import KEYS, CliRunner


def dump(redis: Redis) -> dict[str, Any]:
    """Everything under the test prefix, in a comparable form."""
    state: dict[str, Any] = {}
    for raw in redis.scan_iter(match=f"{KEYS.prefix}*"):
        key = raw.decode()
        kind = redis.type(key).decode()
        if kind == "zset":
            state[key] = [(m.decode(), s) for m, s in redis.zrange(key, 0, -1, withscores=True)]
        elif kind == "hash":
            state[key] = {k.decode(): v.decode() for k, v in redis.hgetall(key).items()}
        elif kind == "set":
            state[key] = sorted(m.decode() for m in redis.smembers(key))
    return state


def test_rebuild_puts_the_sqlite_ranking_in_redis(
    db: Database, ctx: Context, cache: RankingCache, redis_client: Redis
) -> None:
    """After a rebuild, ZREVRANGE of the ranked ZSET is the prioritized order from SQLite."""
    ids = [adopted_goal(db, ctx, value=v) for v in (0.3, 0.9, 0.6)]
    new_goal(db, ctx, id="g-proposed")
    now = ctx.clock()

    summary = commands.rebuild_cache(db, cache, now=now)

    expected = [r.goal.id for r in commands.prioritized(db, now=now)]
    assert [ids[1], ids[2], ids[0]] == expected
    members = [m.decode() for m in redis_client.zrevrange(KEYS.ranked, 0, -1)]
    assert expected == members
    assert {"goals": 4, "ranked": 3, "blocked": 0, "seq": 7} == summary
    assert [ids[1], ids[2], ids[0]] == [s["id"] for s in cache.page(10).items]
    proposed = cache.snapshot("g-proposed")
    assert proposed is not None
    assert ("proposed", "none") == (proposed["state"], proposed["placement"])
    assert cache.is_warm()


def test_snapshots_carry_why_a_goal_is_blocked(
    db: Database, ctx: Context, cache: RankingCache, redis_client: Redis
) -> None:
    """HGETALL goalstore:goal:{id} shows version, placement, score, raw and the blocking
    belief; the hash holds exactly the documented fields (a ranked or blocked goal is
    adopted: no state), as a listpack. The terms of the explanation are the score
    endpoint's, computed from the store."""
    goal_id = adopted_goal(db, ctx, contradicts=["core.rest"])
    commands.put_belief(db, ctx, "core.rest", BeliefPut(statement="rest"))
    commands.rebuild_cache(db, cache, now=ctx.clock())

    held = {k.decode(): v.decode() for k, v in redis_client.hgetall(KEYS.goal(goal_id)).items()}

    assert {
        "placement", "score", "raw", "category", "version", "created", "blocked_by", "seq",
        "computed_at",
    } == set(held)  # fmt: skip
    assert ("2", "blocked", "0.0", "contradicts_belief:core.rest") == (
        held["version"], held["placement"], held["score"], held["blocked_by"]
    )  # fmt: skip
    assert b"listpack" == redis_client.object("encoding", KEYS.goal(goal_id))
    snap = cache.snapshot(goal_id)
    assert snap is not None
    assert [{"reason": "contradicts_belief", "ref": "core.rest"}] == snap["blocked_by"]
    assert ("adopted", False, None, 0.0) == (
        snap["state"], snap["deleted"], snap["deadline"], snap["urgency"]
    )  # fmt: skip
    _, score = commands.goal_score(db, goal_id, now=ctx.clock())
    assert -1.0 == score.terms["penalty"]
    assert float(held["raw"]) == score.raw == pytest.approx(sum(score.terms.values()))
    assert 0.0 == redis_client.zcard(KEYS.ranked)
    assert [goal_id] == [m.decode() for m in redis_client.zrange(KEYS.blocked, 0, -1)]
    assert [b"core.rest"] == sorted(redis_client.smembers(KEYS.beliefs_active))
    assert b"0.5" == redis_client.hget(KEYS.weights, "value_weight")


def test_every_goal_hash_stays_a_listpack_and_keeps_no_stale_field(
    db: Database, ctx: Context, cache: RankingCache, redis_client: Redis
) -> None:
    """Ranked (with a deadline, with an alignment), blocked, proposed, deleted: each goal's
    hash is a listpack holding only what says something; a goal unblocked since loses
    its raw sum and its blocks, and a deleted one its score."""
    due = adopted_goal(db, ctx, horizon_max_min=600)
    blocked = adopted_goal(db, ctx, contradicts=["b.on"])  # adopted before the belief
    commands.put_belief(db, ctx, "b.on", BeliefPut(statement="on"))
    aligned = adopted_goal(db, ctx, aligns_with=["b.on"])
    proposed = new_goal(db, ctx).id
    gone = adopted_goal(db, ctx)
    commands.rebuild_cache(db, cache, now=ctx.clock())

    def held(goal_id: str) -> dict[str, str]:
        assert b"listpack" == redis_client.object("encoding", KEYS.goal(goal_id)), goal_id
        raw = redis_client.hgetall(KEYS.goal(goal_id))
        return {k.decode(): v.decode() for k, v in raw.items()}

    assert ["placement", "score", "category", "version", "deadline", "created", "seq",
            "computed_at"] == list(held(due))  # fmt: skip
    assert "1.0" == held(aligned)["alignment"]
    assert {"raw", "blocked_by"} <= set(held(blocked))
    assert ("proposed", "none") == (held(proposed)["state"], held(proposed)["placement"])
    assert "score" not in held(proposed)

    commands.put_belief(db, ctx, "b.on", BeliefPut(statement="on", active=False))
    commands.delete_goal(db, ctx, gone)
    changed = [aligned, blocked, gone]
    cache.write([commands.ranking_state(db, changed, now=ctx.clock()).snapshots()])

    assert "alignment" not in held(aligned)
    commands.update_goal(db, ctx, aligned, GoalUpdate(horizon_max_min=60), 2)
    cache.write([commands.ranking_state(db, [aligned], now=ctx.clock()).snapshots()])
    assert list(held(due)) == list(held(aligned))  # a deadline since: in its place
    assert {"raw", "blocked_by", "state"}.isdisjoint(held(blocked))
    snap = cache.snapshot(blocked)  # adopted, as its placement says
    assert snap is not None and ("ranked", "adopted") == (snap["placement"], snap["state"])
    assert {"state": "adopted", "placement": "none", "deleted": "1"}.items() <= held(gone).items()
    assert {"score", "raw"}.isdisjoint(held(gone))


def test_a_hash_an_older_goalstore_wrote_is_read_and_rewritten_compact(
    db: Database, ctx: Context, cache: RankingCache, redis_client: Redis
) -> None:
    """A snapshot as GoalStore wrote it before its hashes were compact (every field, the
    explanation as JSON, instants in seconds: a hashtable): read as it stands, and written
    anew, as a listpack without its old fields, by the next write of the goal."""
    goal_id = adopted_goal(db, ctx, value=0.9)
    commands.rebuild_cache(db, cache, now=ctx.clock())
    created = ctx.clock().timestamp()
    explain = json.dumps({"urgency": 0.0, "alignment": 0.0, "terms": {"value": 0.45},
                          "blocked_by": [], "padding": "x" * 64})  # fmt: skip
    old = {"id": goal_id, "seq": "1", "computed_at": repr(created), "placement": "ranked",
           "deadline": "", "category": "maintenance", "version": "2", "state": "adopted",
           "created": repr(created), "deleted": "0", "score": "0.5", "raw": "0.5",
           "explain": explain}  # fmt: skip
    redis_client.delete(KEYS.goal(goal_id))
    redis_client.hset(KEYS.goal(goal_id), mapping=old)
    assert b"hashtable" == redis_client.object("encoding", KEYS.goal(goal_id))

    [item] = cache.page(10).items
    assert (goal_id, 0.5, 0.5, created, None) == (
        item["id"], item["score"], item["raw"], item["created"], item["deadline"]
    )  # fmt: skip
    cache.write([commands.ranking_state(db, [goal_id], now=ctx.clock()).snapshots()])

    assert b"listpack" == redis_client.object("encoding", KEYS.goal(goal_id))
    fields = {k.decode() for k in redis_client.hkeys(KEYS.goal(goal_id))}
    assert {"id", "explain", "state", "deleted", "raw", "deadline"}.isdisjoint(fields)
    snap = cache.snapshot(goal_id)
    assert snap is not None and created == snap["created"]


def test_an_older_snapshot_never_overwrites_a_newer_one(
    db: Database, ctx: Context, cache: RankingCache, redis_client: Redis
) -> None:
    """A snapshot computed at an earlier ledger seq is ignored by the guarded write."""
    goal_id = adopted_goal(db, ctx, value=0.2)
    old = commands.ranking_state(db, [goal_id], now=ctx.clock()).snapshots()
    commands.update_goal(db, ctx, goal_id, GoalUpdate(value=0.9), 2)
    new = commands.ranking_state(db, [goal_id], now=ctx.clock()).snapshots()

    cache.write([new])
    cache.write([old])

    held = cache.snapshot(goal_id)
    assert held is not None
    assert (3, new.seq) == (held["version"], held["seq"])
    assert new[0].score is not None
    assert new[0].score.score == redis_client.zscore(KEYS.ranked, goal_id)


def test_a_category_change_moves_the_goal_between_category_rankings(
    db: Database, ctx: Context, cache: RankingCache, redis_client: Redis
) -> None:
    """The per-category ZSETs follow a goal whose category changes."""
    goal_id = adopted_goal(db, ctx, category="exploration")
    commands.rebuild_cache(db, cache, now=ctx.clock())
    commands.update_goal(db, ctx, goal_id, GoalUpdate(category="maintenance"), 2)

    cache.write([commands.ranking_state(db, [goal_id], now=ctx.clock()).snapshots()])

    assert 0 == redis_client.zcard(KEYS.ranked_in("exploration"))
    assert [goal_id] == [s["id"] for s in cache.page(5, category="maintenance").items]


def test_equal_scores_keep_the_documented_tie_order_at_the_cut(
    db: Database, ctx: Context, cache: RankingCache, clock: FrozenClock
) -> None:
    """Ties at the limit are resolved by creation time, not by Redis' member order."""
    ids = []
    for name in ("g-z", "g-y", "g-x"):  # created in this order, one minute apart
        ids.append(adopted_goal(db, ctx, id=name))
        clock.advance(minutes=1)
    commands.rebuild_cache(db, cache, now=clock())

    assert ["g-z", "g-y"] == [s["id"] for s in cache.page(2).items]


def test_a_rebuild_drops_goals_sqlite_does_not_have(
    db: Database, ctx: Context, cache: RankingCache, redis_client: Redis
) -> None:
    """Snapshots of goals unknown to SQLite (e.g. from another database) are removed."""
    goal_id = adopted_goal(db, ctx)
    commands.rebuild_cache(db, cache, now=ctx.clock())
    stray = replace(commands.get_goal(db, goal_id), id="g-stray")
    cache.write([snapshot(stray, RankingInputs(now=ctx.clock()), seq=1)])
    assert 2 == redis_client.zcard(KEYS.ranked)

    commands.rebuild_cache(db, cache, now=ctx.clock())

    assert [goal_id] == [m.decode() for m in redis_client.zrange(KEYS.ranked, 0, -1)]
    assert not redis_client.exists(KEYS.goal("g-stray"))


def test_incremental_writes_equal_a_rebuild_on_random_histories(
    db: Database, cache: RankingCache, redis_client: Redis
) -> None:
    """Random goal, belief and weight changes go through the outbox in random batches,
    applied late, out of order and some twice; after the urgency refresh, Redis equals
    a rebuild from SQLite at the same instant."""
    rnd = random.Random(7)
    clock = FrozenClock(datetime.now(UTC))
    ctx = make_context("random", clock)
    commands.rebuild_cache(db, cache, now=clock())  # warm (and empty) to begin with
    ids: list[str] = []
    beliefs = ["b1", "b2", "b3"]
    queued: list[list[EventRef]] = []
    delivered = 0
    for _ in range(120):
        clock.advance(seconds=rnd.randint(1, 600))
        choice = rnd.random()
        try:
            if choice < 0.35 or not ids:
                spec = goal_spec(
                    value=rnd.random(),
                    effort=rnd.random(),
                    risk=rnd.random(),
                    category=rnd.choice(list(GoalCategory)).value,
                    aligns_with=rnd.sample(beliefs, rnd.randint(0, 2)),
                    contradicts=rnd.sample(beliefs, rnd.randint(0, 1)),
                    depends_on=rnd.sample(ids, min(len(ids), rnd.randint(0, 1))),
                    horizon_max_min=rnd.choice([None, 30, 600, 2000, 5000]),
                )
                ids.append(commands.create_goal(db, ctx, GoalCreate.model_validate(spec)).id)
            elif choice < 0.6:
                commands.adopt_goal(db, ctx, rnd.choice(ids), vetting=default_vetting())
            elif choice < 0.7:
                commands.abandon_goal(db, ctx, rnd.choice(ids))
            elif choice < 0.75:
                commands.delete_goal(db, ctx, rnd.choice(ids))
            elif choice < 0.9:
                belief = rnd.choice(beliefs)
                put = BeliefPut(statement=belief, active=rnd.random() < 0.5)
                commands.put_belief(db, ctx, belief, put)
            else:
                change = DecisionChange(parameters={"value_weight": rnd.choice([0.3, 0.5, 0.7])})
                commands.change_decision(db, ctx, "goal_selected", change)
        except GoalStoreError:
            pass  # an illegal step in a random history: nothing changed
        delivered += commands.relay_outbox(db, queued.append, batch=rnd.randint(1, 4), limit=2000)
        rnd.shuffle(queued)
        while queued and rnd.random() < 0.6:  # some batches wait, and leave out of order
            batch = queued.pop() if rnd.random() < 0.8 else rnd.choice(queued)  # or repeat
            commands.apply_events(db, cache, batch, now=clock())
    for batch in queued:
        commands.apply_events(db, cache, batch, now=clock())
    commands.refresh_cache(db, cache, now=clock())  # what the cron does as time passes
    incremental = dump(redis_client)
    assert 0 == commands.cache_backlog(db)["unapplied"]

    redis_client.flushdb()
    commands.rebuild_cache(db, cache, now=clock())
    rebuilt = dump(redis_client)

    for state in (incremental, rebuilt):
        state.pop(KEYS.meta)  # the rebuild's own bookkeeping
        for goal_id in ids:  # when each snapshot was computed differs; nothing else may
            for field in ("seq", "computed_at"):
                state[KEYS.goal(goal_id)].pop(field)
    assert rebuilt == incremental
    assert len(ids) == len(rebuilt[KEYS.goals])
    assert delivered >= len(ids)
    assert rebuilt[KEYS.ranked], "the history ranked nothing: the comparison would be hollow"


def test_an_emptied_redis_is_not_warm_until_rebuilt(
    db: Database, ctx: Context, cache: RankingCache, redis_client: Redis
) -> None:
    """Losing Redis' data shows as a cold cache; a rebuild restores the same ranking."""
    ids = [adopted_goal(db, ctx, value=v) for v in (0.4, 0.8)]
    commands.rebuild_cache(db, cache, now=ctx.clock())
    before = dump(redis_client)

    redis_client.flushdb()
    assert not cache.is_warm()
    commands.rebuild_cache(db, cache, now=ctx.clock())

    assert before == dump(redis_client)
    assert [ids[1], ids[0]] == [s["id"] for s in cache.page(5).items]


def test_cli_cache_rebuild(
    tmp_path: Path, redis_client: Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch,
    run_cli: CliRunner, database_location: str,
) -> None:  # fmt: skip
    """`goalstore cache rebuild` fills Redis from the database; without a Redis URL it says so."""
    database = database_location
    monkeypatch.delenv("GOALSTORE_REDIS_URL", raising=False)
    code, out = run_cli(database, "cache", "rebuild")
    assert 2 == code
    assert "GOALSTORE_REDIS_URL is unset" in out["detail"]

    (tmp_path / "g.json").write_text(json.dumps(goal_spec(id="g-cli")))
    run_cli(database, "goals", "create", str(tmp_path / "g.json"))
    run_cli(database, "goals", "adopt", "g-cli")
    monkeypatch.setenv("GOALSTORE_REDIS_URL", redis_url)
    monkeypatch.setenv("GOALSTORE_REDIS_PREFIX", KEYS.prefix)

    code, out = run_cli(database, "cache", "rebuild")

    assert 0 == code
    assert {"goals": 1, "ranked": 1, "blocked": 0} == {k: v for k, v in out.items() if k != "seq"}
    assert [b"g-cli"] == redis_client.zrange(KEYS.ranked, 0, -1)


def test_deadlines_are_indexed_for_the_urgency_sweep(
    db: Database, ctx: Context, cache: RankingCache, redis_client: Redis
) -> None:
    """Goals with a deadline are listed with it, so time can re-score them."""
    with_deadline = adopted_goal(db, ctx, horizon_max_min=90)
    adopted_goal(db, ctx)
    commands.rebuild_cache(db, cache, now=ctx.clock())

    created = ctx.clock().timestamp()  # the frozen clock has not moved since creation
    held = redis_client.zrange(KEYS.deadlines, 0, -1, withscores=True)
    assert [(with_deadline.encode(), created + 90 * 60)] == held


def test_a_rebuild_keeps_a_goal_created_while_it_ran(
    db: Database, ctx: Context, cache: RankingCache, redis_client: Redis
) -> None:
    """The rebuild read SQLite before the goal existed; the worker then wrote its snapshot.
    The rebuild does not find it in what it read, but must not drop it as stale."""
    old = adopted_goal(db, ctx)
    read = commands.ranking_state(db, now=ctx.clock())  # the rebuild's read, at seq S
    new = adopted_goal(db, ctx)  # created after S...
    cache.write([commands.ranking_state(db, [new], now=ctx.clock()).snapshots()])  # ...applied

    cache.rebuild([read.snapshots()], read.inputs.active_beliefs, read.inputs.weights,
                  read.seq, ctx.clock().timestamp())  # fmt: skip

    assert {old, new} == {m.decode() for m in redis_client.zrange(KEYS.ranked, 0, -1)}
    assert redis_client.exists(KEYS.goal(new))
    assert redis_client.sismember(KEYS.goals, new)


def _cold_without_marker(cache: RankingCache, redis: Redis) -> bool:
    """The cache is not marked rebuilt, and the rebuild left no marker behind."""
    return not cache.is_warm() and not redis.keys(KEYS.rebuilding("*"))


def _scores(redis: Redis, key: str) -> dict[str, float]:
    return {m.decode(): s for m, s in redis.zrange(key, 0, -1, withscores=True)}


def test_a_rebuild_leaves_a_goal_it_did_not_write_where_the_newer_write_put_it(
    db: Database, ctx: Context, cache: RankingCache, redis_client: Redis
) -> None:
    """The worker wrote a newer snapshot before the rebuild's write reached it: the guard
    keeps the newer hash, and the rebuild must not place its older score either."""
    ids = [adopted_goal(db, ctx, value=v, category="exploration") for v in (0.2, 0.4, 0.6)]
    read = commands.ranking_state(db, now=ctx.clock())  # the rebuild's read, at seq S
    commands.update_goal(db, ctx, ids[0], GoalUpdate(value=0.95), 2)
    newer = commands.ranking_state(db, [ids[0]], now=ctx.clock()).snapshots()
    cache.write([newer])  # the worker, before the rebuild writes

    cache.rebuild([read.snapshots()], read.inputs.active_beliefs, read.inputs.weights,
                  read.seq, ctx.clock().timestamp())  # fmt: skip

    expected = {s.goal_id: s.score.score for s in read.snapshots() if s.score}
    assert newer[0].score is not None
    expected[ids[0]] = newer[0].score.score
    assert expected == _scores(redis_client, KEYS.ranked)
    assert expected == _scores(redis_client, KEYS.ranked_in("exploration"))


def test_a_rebuild_places_no_goal_rewritten_after_its_write(
    db: Database, ctx: Context, cache: RankingCache, redis_client: Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Between writing every snapshot and placing them, the worker rewrites one goal (and
    places it, and blocks another): the rebuild places the rest, not its older view of
    those two."""
    ids = [adopted_goal(db, ctx, value=v, horizon_max_min=90) for v in (0.2, 0.4, 0.6, 0.8)]
    read = commands.ranking_state(db, now=ctx.clock())
    commands.update_goal(db, ctx, ids[0], GoalUpdate(value=0.95), 2)
    commands.update_goal(db, ctx, ids[1], GoalUpdate(contradicts=["b.x"]), 2)
    commands.put_belief(db, ctx, "b.x", BeliefPut(statement="x"))
    newer = commands.ranking_state(db, ids[:2], now=ctx.clock()).snapshots()
    place = RankingCache._place
    worker: list[int] = []
    once = threading.Lock()  # two place calls run at once

    def worker_writes_first(self: RankingCache, *args: Any) -> Any:
        with once:
            if not worker:
                cache.write([newer])
                worker.append(1)
        return place(self, *args)

    monkeypatch.setattr(RankingCache, "_place", worker_writes_first)
    cache.rebuild([read.snapshots()], read.inputs.active_beliefs, read.inputs.weights,
                  read.seq, ctx.clock().timestamp())  # fmt: skip

    assert worker, "the rebuild placed nothing: the test did not run its race"
    expected = {s.goal_id: s.score.score for s in read.snapshots() if s.score}
    assert newer[0].score is not None and newer[1].score is not None
    expected[ids[0]] = newer[0].score.score
    del expected[ids[1]]  # blocked now
    assert expected == _scores(redis_client, KEYS.ranked)
    assert {ids[1]: newer[1].score.raw} == _scores(redis_client, KEYS.blocked)
    assert set(ids) == set(_scores(redis_client, KEYS.deadlines))


def test_a_rebuild_alone_places_goals_without_reading_them_back(
    db: Database, ctx: Context, cache: RankingCache, redis_client: Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Nobody else wrote while it ran: the rebuild places every goal without a read of its
    snapshot (the per-goal check is for races only) and finds no stale goal to compare."""
    for v in (0.2, 0.4, 0.6):
        adopted_goal(db, ctx, value=v, horizon_max_min=90)
    place = RankingCache._place
    replies: list[Any] = []

    def recorded(self: RankingCache, *args: Any) -> Any:
        replies.append(place(self, *args))
        return replies[-1]

    def no_sweep() -> None:
        raise AssertionError("the rebuild read every goal id to look for stale ones")

    monkeypatch.setattr(RankingCache, "_place", recorded)
    monkeypatch.setattr(redis_client, "smembers", lambda *_: no_sweep())
    commands.rebuild_cache(db, cache, now=ctx.clock())

    assert [[3, 0], [3, 0], [3, 0]] == replies  # ranked, its category, deadlines: no read
    assert 3 == redis_client.zcard(KEYS.ranked) == redis_client.zcard(KEYS.deadlines)


def test_a_rebuild_cut_short_leaves_every_placed_goal_where_its_snapshot_says(
    db: Database, ctx: Context, cache: RankingCache, redis_client: Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """The rebuild dies after writing the snapshots (a timeout, the worker killed): the
    goals Redis had are already placed with their new snapshot (one rescored, one now
    blocked); the rankings never disagree with the hashes of the goals they hold."""
    ids = [adopted_goal(db, ctx, value=v, category="exploration") for v in (0.2, 0.4, 0.6)]
    commands.rebuild_cache(db, cache, now=ctx.clock())
    commands.update_goal(db, ctx, ids[0], GoalUpdate(value=0.95), 2)
    commands.update_goal(db, ctx, ids[1], GoalUpdate(contradicts=["b.x"]), 2)
    commands.put_belief(db, ctx, "b.x", BeliefPut(statement="x"))
    late = adopted_goal(db, ctx, value=0.5, category="exploration")  # new to Redis

    def dies(self: RankingCache, *args: Any) -> Any:
        raise RedisConnectionError("connection reset between the two steps")

    monkeypatch.setattr(RankingCache, "_place", dies)
    with pytest.raises(RedisConnectionError):
        commands.rebuild_cache(db, cache, now=ctx.clock())

    def held(goal_id: str, field: str) -> float:
        return float(redis_client.hget(KEYS.goal(goal_id), field) or "nan")

    ranked = {i: held(i, "score") for i in (ids[0], ids[2])}
    assert ranked == _scores(redis_client, KEYS.ranked)
    assert ranked == _scores(redis_client, KEYS.ranked_in("exploration"))
    assert {ids[1]: held(ids[1], "raw")} == _scores(redis_client, KEYS.blocked)
    assert redis_client.hget(KEYS.goal(late), "placement") == b"ranked"  # written, unplaced
    assert 0 < commands.cache_backlog(db)["unapplied"]  # ...its events still to apply

    monkeypatch.undo()  # the worker goes on: relays the pending events, applies them
    apply = lambda batch: commands.apply_events(db, cache, batch, ctx.clock())  # noqa: E731
    commands.relay_outbox(db, apply, **RELAY)
    assert late in _scores(redis_client, KEYS.ranked)
    assert late in _scores(redis_client, KEYS.ranked_in("exploration"))


def test_a_rebuild_during_which_redis_lost_its_data_leaves_the_cache_cold(
    db: Database, ctx: Context, cache: RankingCache, redis_client: Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Redis restarts empty after the snapshots were written: marked warm, the half-empty
    cache would never be rebuilt. The rebuild says so and leaves it cold; the next
    refresh rebuilds it whole."""
    ids = [adopted_goal(db, ctx, value=v) for v in (0.2, 0.4)]
    backlog = commands.cache_backlog(db)["unapplied"]
    place = RankingCache._place

    def restarted_first(self: RankingCache, *args: Any) -> Any:
        redis_client.flushdb()
        return place(self, *args)

    monkeypatch.setattr(RankingCache, "_place", restarted_first)
    with pytest.raises(CacheLost):
        commands.rebuild_cache(db, cache, now=ctx.clock())
    monkeypatch.undo()

    assert not cache.is_warm()
    assert backlog > 0
    assert backlog == commands.cache_backlog(db)["unapplied"]  # the failed rebuild covers none
    refreshed = commands.refresh_cache(db, cache, now=ctx.clock())
    assert {"rebuilt": True, "goals": 2, "deadlines_passed": 0} == refreshed
    assert 0 == commands.cache_backlog(db)["unapplied"]
    assert [ids[1], ids[0]] == [m.decode() for m in redis_client.zrevrange(KEYS.ranked, 0, -1)]
    assert [] == redis_client.keys(KEYS.rebuilding("*"))


def test_a_rebuild_places_nothing_once_redis_lost_its_data_though_the_count_came_back(
    db: Database, ctx: Context, cache: RankingCache, redis_client: Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Redis restarts empty between the two steps, and one write brings meta's `writes`
    back to where the rebuild's own write left it: that is not "nobody wrote", and the
    goals whose snapshots are gone must not be placed."""
    ids = [adopted_goal(db, ctx, value=v) for v in (0.2, 0.4)]
    place = RankingCache._place
    restarted: list[int] = []
    once = threading.Lock()

    def restarted_then_written(self: RankingCache, *args: Any) -> Any:
        with once:
            if not restarted:
                redis_client.flushdb()
                cache.write([commands.ranking_state(db, [ids[0]], now=ctx.clock()).snapshots()])
                restarted.append(int(redis_client.hget(KEYS.meta, "writes") or 0))
        return place(self, *args)

    monkeypatch.setattr(RankingCache, "_place", restarted_then_written)
    with pytest.raises(CacheLost):
        commands.rebuild_cache(db, cache, now=ctx.clock())

    assert [1] == restarted  # the count the rebuild's one write had left
    assert [ids[0]] == list(_scores(redis_client, KEYS.ranked))
    assert not cache.is_warm()


def test_a_refused_write_places_the_goal_a_rebuild_cut_short_left_unplaced(
    db: Database, ctx: Context, cache: RankingCache, redis_client: Redis, clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """A rebuild wrote a goal new to Redis and died before placing it. The worker's write
    of an older view of that goal is refused (Redis holds newer), and it marks the goal's
    events applied: unless the refused write places the goal where the held snapshot
    says, nothing ever will."""
    adopted_goal(db, ctx)
    commands.rebuild_cache(db, cache, now=clock())  # warm
    late = adopted_goal(db, ctx, value=0.7, horizon_max_min=90)
    worker_read = commands.ranking_state(db, [late], now=clock()).snapshots()
    clock.advance(seconds=1)  # the rebuild reads the same seq, later

    def dies(self: RankingCache, *args: Any) -> Any:
        raise RedisConnectionError("the worker running the rebuild was killed")

    monkeypatch.setattr(RankingCache, "_place", dies)
    with pytest.raises(RedisConnectionError):
        commands.rebuild_cache(db, cache, now=clock())
    monkeypatch.undo()
    assert late not in _scores(redis_client, KEYS.ranked)  # written, not placed

    cache.write([worker_read])  # refused: older than what Redis holds

    held = cache.snapshot(late)
    assert held is not None and held["computed_at"] == clock().timestamp()  # still newer
    assert held["score"] == _scores(redis_client, KEYS.ranked)[late]
    assert held["score"] == _scores(redis_client, KEYS.ranked_in(held["category"]))[late]
    assert held["deadline"] == _scores(redis_client, KEYS.deadlines)[late]


def test_a_rebuild_places_nothing_after_redis_restarted_with_its_data_reloaded(
    db: Database, ctx: Context, cache: RankingCache, redis_client: Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """A Redis that restarts and reloads its data from disk brings the marker back, and an
    older `writes` count: the marker holds the run id of the Redis process that took it,
    so the rebuild sees the restart and places nothing."""
    adopted_goal(db, ctx, value=0.2)
    place = RankingCache._place

    def restarted_from_disk(self: RankingCache, *args: Any) -> Any:
        for marker in redis_client.keys(KEYS.rebuilding("*")):
            redis_client.set(marker, "the-run-id-of-the-redis-before-the-restart")
        return place(self, *args)

    monkeypatch.setattr(RankingCache, "_place", restarted_from_disk)
    with pytest.raises(CacheLost):
        commands.rebuild_cache(db, cache, now=ctx.clock())

    assert 0 == redis_client.zcard(KEYS.ranked)
    assert _cold_without_marker(cache, redis_client)


def test_a_rebuild_whose_redis_restarts_after_placing_still_leaves_it_cold(
    db: Database, ctx: Context, cache: RankingCache, redis_client: Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """The last moment Redis can be lost: every goal placed, the cache not yet marked
    rebuilt. The mark is refused (the marker is gone), the cache stays cold."""
    adopted_goal(db, ctx)
    set_inputs = RankingCache.set_inputs

    def restarted_first(self: RankingCache, *args: Any) -> None:
        redis_client.flushdb()
        set_inputs(self, *args)

    monkeypatch.setattr(RankingCache, "set_inputs", restarted_first)
    with pytest.raises(CacheLost):
        commands.rebuild_cache(db, cache, now=ctx.clock())

    assert _cold_without_marker(cache, redis_client)


def test_a_rebuild_refuses_snapshots_of_two_reads(
    db: Database, ctx: Context, cache: RankingCache, redis_client: Redis, clock: FrozenClock
) -> None:
    """A rebuild places its goals by the one seq and time its snapshots were computed at:
    batches from two reads are a programming error, refused before they are written."""
    first, second = adopted_goal(db, ctx), adopted_goal(db, ctx)
    one = commands.ranking_state(db, [first], now=clock())
    clock.advance(seconds=1)
    other = commands.ranking_state(db, [second], now=clock())

    with pytest.raises(ValueError, match="2 stamps"):
        cache.rebuild([one.snapshots(), other.snapshots()], one.inputs.active_beliefs,
                      one.inputs.weights, one.seq, clock().timestamp())  # fmt: skip

    assert not redis_client.exists(KEYS.goal(second))
    assert _cold_without_marker(cache, redis_client)


def test_a_rebuild_in_many_chunks_writes_every_goal_exactly(
    db: Database, ctx: Context, cache: RankingCache, redis_client: Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """A rebuild sends chunks while computing the next (here 3 goals a chunk, 11 goals):
    every goal lands, with the same score and order as the SQLite ranking, and the
    scores survive the trip through Lua exactly (no 14-digit rounding)."""
    monkeypatch.setattr("service.commands.ranking.WRITE_CHUNK", 3)  # rows read a time
    monkeypatch.setattr("service.cache.ranking.WRITE_CHUNK", 3)  # snapshots a script call
    rnd = random.Random(5)
    for _ in range(11):
        adopted_goal(db, ctx, value=rnd.random(), effort=rnd.random(), risk=rnd.random())

    report = commands.rebuild_cache(db, cache, now=ctx.clock())

    expected = commands.prioritized(db, now=ctx.clock(), limit=100)
    held = redis_client.zrevrange(KEYS.ranked, 0, -1, withscores=True)
    assert (11, 11) == (report["goals"], report["ranked"])
    assert [(r.goal.id, r.ranked.score) for r in expected] == [
        (member.decode(), score) for member, score in held
    ]


def test_a_ranked_read_skips_a_goal_unplaced_between_its_two_reads(
    db: Database, ctx: Context, cache: RankingCache, redis_client: Redis
) -> None:
    """top() reads the ZSET, then the snapshots: a goal whose snapshot was rewritten as
    not scored in between (it was just started) is left out, not a crash."""
    kept, started = adopted_goal(db, ctx, value=0.2), adopted_goal(db, ctx, value=0.9)
    commands.rebuild_cache(db, cache, now=ctx.clock())
    redis_client.hset(KEYS.goal(started), mapping={"placement": "none", "score": "", "raw": ""})

    assert [kept] == [s["id"] for s in cache.page(10).items]
