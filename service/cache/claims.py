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
from collections.abc import Sequence

from redis import Redis

from service.cache.keys import Keys

# KEYS: claim keys in ranking order. ARGV: 1 token, 2 ttl, 3 how many to claim.
# Returns the (1-based) positions of the keys claimed.
_CLAIM_FIRST = """
local want, held = tonumber(ARGV[3]), {}
for i, key in ipairs(KEYS) do
  if redis.call('SET', key, ARGV[1], 'NX', 'EX', ARGV[2]) then
    held[#held + 1] = i
    if #held == want then break end
  end
end
return held
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class Claims:
    def __init__(self, redis: Redis, keys: Keys, ttl_s: int) -> None:
        self.redis, self.keys, self.ttl_s = redis, keys, ttl_s
        self._release = redis.register_script(_RELEASE)
        self._claim_first = redis.register_script(_CLAIM_FIRST)

    def claim_first(
        self, candidates: Sequence[tuple[str, int]], want: int = 1
    ) -> tuple[str, list[int]]:
        """Claim the first `want` of these goal versions that no other selector holds, in
        one round trip: the token, and the positions in `candidates` of those claimed
        (fewer than `want`, or none, when others hold the rest)."""
        token = secrets.token_hex(8)
        keys = [self.keys.claim(goal_id, version) for goal_id, version in candidates]
        held: list[int] = self._claim_first(keys=keys, args=[token, self.ttl_s, want])
        return token, [int(i) - 1 for i in held]

    def release(self, goal_id: str, version: int, token: str) -> None:
        """Give the claim up, only if it is still this caller's."""
        self._release(keys=[self.keys.claim(goal_id, version)], args=[token])
