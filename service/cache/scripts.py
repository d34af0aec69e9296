"""The ranking cache's Lua scripts, loaded from the .lua files beside this module, and
how each is called: its KEYS and ARGV, as the script's header lists them.

Every key a script touches comes from Keys (keys.py), in KEYS; the one exception is
top.lua, which finds the goal ids itself and so gets what a goal hash's key puts
before the id.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain
from pathlib import Path
from typing import Any

import orjson
from redis import Redis
from redis.client import Pipeline

from service.cache.encoding import Row
from service.cache.keys import Keys


def _lua(name: str) -> str:
    return (Path(__file__).parent / name).read_text()


_SNAPSHOT = _lua("snapshot.lua")
_INPUTS = _lua("inputs.lua")
_TOP = _lua("top.lua")
_DROP = _lua("drop.lua")
# The scripts that check a rebuild's marker know the Redis process's run id.
_BEGIN, _PLACE, _REBUILT = (
    _lua("run_id.lua") + _lua(name) for name in ("begin.lua", "place.lua", "rebuilt.lua")
)
_SEND_HASHES = -2  # place.lua's reply: it must read the goals, and has not their keys


class Scripts:
    """Every script, registered on one Redis client (loaded into Redis on first use)."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.keys = keys
        self._snapshot = redis.register_script(_SNAPSHOT)
        self._inputs = redis.register_script(_INPUTS)
        self._top = redis.register_script(_TOP)
        self._drop = redis.register_script(_DROP)
        self._place = redis.register_script(_PLACE)
        self._rebuilt = redis.register_script(_REBUILT)
        self._begin = redis.register_script(_BEGIN)
        by_category = keys.ranked_by_category()
        self._snapshot_keys = [keys.ranked, keys.blocked, keys.goals, keys.deadlines, keys.meta,
                               *by_category.values()]  # fmt: skip
        self._categories = orjson.dumps(list(by_category))
        self._drop_keys = [keys.goals, keys.meta, *keys.all_ranked(), keys.blocked,
                           keys.deadlines]  # fmt: skip

    def snapshot(
        self, mode: str, ids: Sequence[str], rows: list[Row], client: Redis | Pipeline
    ) -> Any:
        """snapshot.lua over these rows (of the goals `ids`, in order)."""
        return self._snapshot(
            keys=[*self._snapshot_keys, *self.keys.goal_keys(ids)],
            args=[mode, self._categories, orjson.dumps(rows)], client=client,
        )  # fmt: skip

    def place(
        self, key: str, scores: Sequence[str | bool], ids: Sequence[str], writes: int,
        stamp: tuple[str, str], marker: str,
    ) -> Any:  # fmt: skip
        """place.lua: the goals `ids` into sorted set `key`, with these scores. The keys of
        their hashes are sent only if it must read them: most calls expect `writes` to
        be where it is, and place every goal without a read."""
        pairs = list(chain.from_iterable(zip(scores, ids, strict=True)))
        fixed = [key, self.keys.meta, marker]
        if writes >= 0:
            reply = self._place(keys=fixed, args=[writes, *stamp, *pairs])
            if int(reply[0]) != _SEND_HASHES:
                return reply
        return self._place(keys=[*fixed, *self.keys.goal_keys(ids)], args=[-1, *stamp, *pairs])

    def drop(self, goal_ids: Sequence[str], seq: int) -> Any:
        """drop.lua over these goals."""
        return self._drop(
            keys=[*self._drop_keys, *self.keys.goal_keys(goal_ids)], args=[seq, *goal_ids]
        )

    def inputs(
        self, seq: int, active: Sequence[str], weight_fields: Sequence[str | float],
        client: Redis | Pipeline,
    ) -> Any:  # fmt: skip
        """inputs.lua: the active beliefs and the weights (field, value pairs)."""
        k = self.keys
        return self._inputs(
            keys=[k.meta, k.beliefs_active, k.weights],
            args=[seq, len(active), *active, *weight_fields], client=client,
        )  # fmt: skip

    def top(self, key: str, limit: int, fields: Sequence[str]) -> Any:
        """top.lua: the head of sorted set `key`, and these fields of each goal there."""
        return self._top(keys=[key, self.keys.meta], args=[self.keys.goal_prefix, limit, *fields])

    def begin(self, marker: str, ttl_s: int) -> Any:
        """begin.lua: set a rebuild's marker."""
        return self._begin(keys=[marker], args=[ttl_s])

    def rebuilt(self, marker: str, fields: dict[str, Any], client: Redis | Pipeline) -> Any:
        """rebuilt.lua: mark the cache rebuilt with these meta fields, if the marker holds."""
        args = [v for kv in fields.items() for v in kv]
        return self._rebuilt(keys=[marker, self.keys.meta], args=args, client=client)
