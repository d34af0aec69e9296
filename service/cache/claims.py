"""Selectors' claims on goal versions: who may try to start a goal (DESIGN §7).

`SET goalstore:claim:{goal}:{version} <token> NX EX ttl` lets one selector at a time
try a goal version, so concurrent selectors spread over different goals instead of
racing for the top one. The claim is a courtesy, not the guarantee: SQLite's version
check and its UNIQUE (goal_id, goal_version) on tasks make each version start once
even if a claim expires early. A claim is released when its try fails; a successful
one simply expires (the goal has a new version by then).
"""

from __future__ import annotations

import secrets

from redis import Redis

from service.cache.keys import Keys

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class Claims:
    def __init__(self, redis: Redis, keys: Keys, ttl_s: int) -> None:
        self.redis, self.keys, self.ttl_s = redis, keys, ttl_s
        self._release = redis.register_script(_RELEASE)

    def claim(self, goal_id: str, version: int) -> str | None:
        """A token if this caller now holds the claim, None if another does."""
        token = secrets.token_hex(8)
        held = self.redis.set(self.keys.claim(goal_id, version), token, nx=True, ex=self.ttl_s)
        return token if held else None

    def release(self, goal_id: str, version: int, token: str) -> None:
        """Give the claim up, only if it is still this caller's."""
        self._release(keys=[self.keys.claim(goal_id, version)], args=[token])
