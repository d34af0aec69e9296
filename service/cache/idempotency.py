"""Idempotency records: the first response to an `Idempotency-Key`, kept in Redis.

`goalstore:idem:{actor}:{key}` holds JSON: `{"state": "in_flight", "fingerprint"}`
while the first request runs (it frees itself after IN_FLIGHT_TTL_S should that
request die), then `{"state": "done", "fingerprint", "status", "headers", "body"}`
for TTL_S. The API's middleware (service/api/idempotency.py) decides what a repeat
gets; this module only stores. A Redis that does not answer is IdempotencyUnavailable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from redis import Redis
from redis.exceptions import RedisError

from service.cache.keys import Keys
from service.domain.errors import ErrorKind, GoalStoreError

TTL_S = 24 * 3600
IN_FLIGHT_TTL_S = 300  # a request that died mid-flight frees its key after this


@dataclass
class IdempotencyUnavailable(GoalStoreError):
    """Idempotency-Key was sent, and there is no Redis to keep its promise with."""

    kind = ErrorKind.UNAVAILABLE
    code = "idempotency-unavailable"
    title = "Idempotency unavailable"

    detail: str

    def __str__(self) -> str:
        return f"Idempotency-Key needs Redis, {self.detail}"


class IdempotencyRecords:
    def __init__(self, redis: Redis | None, keys: Keys) -> None:
        self.redis, self.keys = redis, keys

    def _client(self) -> Redis:
        if self.redis is None:
            raise IdempotencyUnavailable("and GOALSTORE_REDIS_URL is unset")
        return self.redis

    def begin(self, actor: str, key: str, fingerprint: str) -> dict[str, Any] | None:
        """Take the key for a first request (None), or return the record already held
        under it (`{}` if it expired between the two reads)."""
        redis, name = self._client(), self.keys.idempotency(actor, key)
        pending = orjson.dumps({"state": "in_flight", "fingerprint": fingerprint})
        try:
            if redis.set(name, pending, nx=True, ex=IN_FLIGHT_TTL_S):
                return None
            held = redis.get(name)
        except RedisError as exc:
            raise IdempotencyUnavailable(f"which does not answer ({exc})") from exc
        record: dict[str, Any] = orjson.loads(held) if held else {}
        return record

    def keep(self, actor: str, key: str, record: dict[str, Any]) -> None:
        """Keep the first request's response (state done) for TTL_S."""
        name = self.keys.idempotency(actor, key)
        try:
            self._client().set(name, orjson.dumps({"state": "done", **record}), ex=TTL_S)
        except RedisError as exc:
            raise IdempotencyUnavailable(f"which does not answer ({exc})") from exc

    def release(self, actor: str, key: str) -> None:
        """Free the key: the first request failed on our side, so the client may retry."""
        try:
            self._client().delete(self.keys.idempotency(actor, key))
        except RedisError as exc:
            raise IdempotencyUnavailable(f"which does not answer ({exc})") from exc
