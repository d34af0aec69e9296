"""Per-actor write limits: a token bucket per actor in Redis, shared by every web process.

Each write takes a token; an actor's bucket holds at most `burst` and refills at
`per_s` a second (GOALSTORE_RATE_LIMIT_PER_S, GOALSTORE_RATE_LIMIT_BURST). An empty
bucket is a 429 with Retry-After. Reads never take a token, and a Redis that does not
answer turns the limit off rather than turning writes away: the limit protects the
service, it is not a reason to refuse work.
"""

from __future__ import annotations

import logging
from pathlib import Path

from redis import Redis
from redis.exceptions import RedisError

from service.cache.keys import Keys

log = logging.getLogger(__name__)

_TAKE = (Path(__file__).parent / "ratelimit.lua").read_text()


class RateLimiter:
    def __init__(self, redis: Redis, keys: Keys, per_s: float, burst: int) -> None:
        self.keys, self.per_s, self.burst = keys, per_s, burst
        self._take = redis.register_script(_TAKE)

    def wait_s(self, actor: str) -> float:
        """0 when `actor` may write now (a token taken), else the seconds until it may."""
        try:
            wait_ms = int(self._take(keys=[self.keys.rate(actor)], args=[self.per_s, self.burst]))
        except RedisError as exc:
            log.warning("rate limit not applied: Redis does not answer (%s)", exc)
            return 0.0
        return wait_ms / 1000
