"""The ranking in Redis: guarded snapshot writes, a rebuild from SQLite, and ranked reads.

Where each part lives:

- ranking.py   RankingCache: every read and write of the ranking cache
- encoding.py  snapshots as snapshot.lua reads them
- rebuild.py   the rebuild from SQLite
- reads.py     Redis's replies as Python values, in the documented order
- scripts.py   the Lua scripts beside this module, and their KEYS and ARGV
- keys.py      every key name
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterable
from typing import Any

from redis import Redis
from redis.client import Pipeline
from redis.exceptions import RedisError

from service.cache import rebuild as rebuilding
from service.cache.encoding import Row, chunks, encoded
from service.cache.keys import Keys
from service.cache.reads import PLACED_FIELDS, Page, decode, ordered, placed, text
from service.cache.rebuild import REBUILD_MARKER_TTL_S, CacheLost
from service.cache.scripts import Scripts
from service.domain.ranking import Snapshots, Weights

__all__ = ["PLACE_CHUNK", "WRITE_CHUNK", "CacheLost", "Page", "RankingCache"]

WRITE_CHUNK = 1_000  # snapshots per snapshot.lua call
PLACE_CHUNK = 2_000  # goals per place.lua call (twice as many arguments: Lua's unpack limit)


class RankingCache:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self.scripts = Scripts(redis, keys)

    def write(self, batches: Iterable[Snapshots], pipe: Pipeline | None = None) -> None:
        """Write snapshots, each unless Redis holds a newer one: on `pipe`, or one call per
        WRITE_CHUNK (a script on a pipeline of our own would cost a SCRIPT EXISTS round
        trip more)."""
        client = self.redis if pipe is None else pipe
        for ids, rows in chunks(map(encoded, batches), WRITE_CHUNK):
            self._write_chunk("place", ids, rows, client)

    def _write_chunk(
        self, mode: str, ids: list[str], rows: list[Row], client: Redis | Pipeline
    ) -> Any:
        """snapshot.lua over these rows; its reply: the `writes` count after it, how many
        goals it left to place.lua (mode "defer": goals new to Redis), and their ids
        unless that is all of them."""
        return self.scripts.snapshot(mode, ids, rows, client)

    def _place(
        self, key: str, scores: list[str | bool], ids: list[str], writes: int,
        stamp: tuple[str, str], marker: str,
    ) -> Any:  # fmt: skip
        """place.lua: these goals into `key` with these scores, unless rewritten since the
        rebuild that wrote them, at seq and computed_at `stamp`, left meta's count at
        `writes`; its reply: goals placed (-1: the rebuild's marker is gone), snapshots
        read."""
        return self.scripts.place(key, scores, ids, writes, stamp, marker)

    def _drop(self, goal_ids: list[str], seq: int) -> None:
        """Drop these goals' snapshots unless written after ledger seq `seq`."""
        for start in range(0, len(goal_ids), WRITE_CHUNK):
            self.scripts.drop(goal_ids[start : start + WRITE_CHUNK], seq)

    def set_inputs(
        self, active_beliefs: Iterable[str], weights: Weights, seq: int, pipe: Pipeline
    ) -> None:
        """Replace the copy of the inputs, unless Redis holds one read at a later seq."""
        weight_fields: list[str | float] = [
            "value_weight", weights.value, "effort_weight", weights.effort,
            "risk_weight", weights.risk, "urgency_weight", weights.urgency,
            "alignment_weight", weights.alignment,
        ]  # fmt: skip
        self.scripts.inputs(seq, sorted(active_beliefs), weight_fields, pipe)

    def rebuild(
        self, batches: Iterable[Snapshots], active_beliefs: Iterable[str], weights: Weights,
        seq: int, computed_at: float,
    ) -> int:  # fmt: skip
        """Bring Redis in line with SQLite (rebuild.py): write every goal (`batches` of
        snapshots of all of them), place them in the sorted sets, drop goals SQLite no
        longer has; the number of goals written.

        Raises CacheLost if Redis lost its data meanwhile (the cache is then left cold).
        """
        marker = self.keys.rebuilding(uuid.uuid4().hex)
        self.scripts.begin(marker, REBUILD_MARKER_TTL_S)
        try:
            return rebuilding.run(
                self, marker, batches, active_beliefs, weights, seq, computed_at,
                WRITE_CHUNK, PLACE_CHUNK,
            )  # fmt: skip
        except BaseException:
            with contextlib.suppress(RedisError):  # rebuilt.lua removes it otherwise
                self.redis.delete(marker)
            raise

    def is_warm(self) -> bool:
        """Whether a rebuild has populated this Redis (a restarted, empty Redis is not)."""
        return bool(self.redis.hexists(self.keys.meta, "rebuilt_seq"))

    def meta(self) -> dict[str, str]:
        raw: dict[Any, Any] = self.redis.hgetall(self.keys.meta)
        return {text(k): text(v) for k, v in raw.items()}

    def note(self, **fields: float | str) -> None:
        """Record facts about the cache (when urgencies were refreshed...) in its meta hash."""
        mapping: Any = fields  # redis-py's Mapping type is invariant in its key type
        self.redis.hset(self.keys.meta, mapping=mapping)

    def with_deadline_between(self, start: float, end: float) -> list[str]:
        """Placed goals whose deadline falls in [start, end] (epoch seconds)."""
        found: list[Any] = self.redis.zrangebyscore(self.keys.deadlines, start, end)
        return [text(goal_id) for goal_id in found]

    def page(self, limit: int, category: str | None = None, include_blocked: bool = False) -> Page:
        """The best `limit` goals (ordering fields of each), in the documented total
        order, and what a reader needs to trust them, from one round trip (two when
        blocked goals are asked for and the ranked ones do not fill the page)."""
        key = self.keys.ranked_in(category) if category else self.keys.ranked
        reply: list[Any] = self.scripts.top(key, limit, PLACED_FIELDS)
        warm, ranked_count, rest = bool(reply[0]), int(reply[1]), reply[2:]
        items = ordered(placed(zip(map(text, rest[::2]), rest[1::2], strict=True)))[:limit]
        if include_blocked and len(items) < limit:
            items += self.blocked(limit - len(items), category)
        return Page(items, warm, ranked_count)

    def blocked(self, limit: int, category: str | None = None) -> list[dict[str, Any]]:
        """The best `limit` blocked goals (ordering fields of each), in the documented total
        order. Every blocked goal is read: the blocked set has no per-category index."""
        members: list[Any] = self.redis.zrevrange(self.keys.blocked, 0, -1)
        blocked_ids = [text(m) for m in members]
        blocked = [
            s
            for s in placed(zip(blocked_ids, self._hmget(blocked_ids), strict=True))
            if not category or s["category"] == category
        ]
        return ordered(blocked)[:limit]

    def _hmget(self, ids: list[str]) -> list[Any]:
        pipe = self.redis.pipeline(transaction=False)
        for goal_id in ids:
            pipe.hmget(self.keys.goal(goal_id), PLACED_FIELDS)
        return pipe.execute()

    def held_parents(self, goal_ids: Iterable[str]) -> set[str]:
        """The parents the goals' snapshots name (a goal moved since to another parent: the
        one it left), in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for goal_id in goal_ids:
            pipe.hget(self.keys.goal(goal_id), "parent_id")
        return {text(parent) for parent in pipe.execute() if parent}

    def snapshot(self, goal_id: str) -> dict[str, Any] | None:
        found = self._snapshots([goal_id])
        return found[0] if found else None

    def _snapshots(self, ids: list[str]) -> list[dict[str, Any]]:
        """The snapshots of `ids` that exist, in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for goal_id in ids:
            pipe.hgetall(self.keys.goal(goal_id))
        return [decode(i, raw) for i, raw in zip(ids, pipe.execute(), strict=True) if raw]
