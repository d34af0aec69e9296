"""The composition root: builds the parts once, from Settings, for every entry point.

`Services` holds the connections (SQLite, Redis) and the parts made from them;
`Services.goalstore` is the one way to call the service (service/usecases.py).
Nothing connects at import time: the CLI, the web app and the workers build a
Services from Settings, and tests build one around their own database and Redis.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property

from redis import Redis

from service.adapters.checker import HttpChecker
from service.adapters.scheduler import RqEmitter
from service.auth import ApiKey, parse_api_keys
from service.cache.claims import Claims
from service.cache.idempotency import IdempotencyRecords
from service.cache.keys import Keys
from service.cache.ranking import RankingCache
from service.cache.ratelimit import RateLimiter
from service.commands.selection import Flags, Selector
from service.commands.vetting import Vetting
from service.config import Settings
from service.domain.errors import RedisRequired
from service.domain.vetting import BeliefConsistencyChecker, BuiltinChecker
from service.metrics import RECORDER
from service.store.db import Database, open_database
from service.usecases import GoalStore, Observed, Policy


@dataclass
class Services:
    settings: Settings
    db: Database
    api_keys: list[ApiKey]
    redis: Redis | None = None

    def __post_init__(self) -> None:
        RECORDER.bind(self.redis, self.keys.metrics)

    @cached_property
    def cache(self) -> RankingCache | None:
        if self.redis is None:
            return None
        return RankingCache(self.redis, self.keys)

    @cached_property
    def policy(self) -> Policy:
        s = self.settings
        return Policy(
            max_attempts=s.max_attempts,
            max_lag=timedelta(seconds=s.cache_max_lag_s),
            task_stale_after=timedelta(seconds=s.task_stale_s),
            redeliver_after=timedelta(seconds=s.redeliver_after_s),
            outbox_retention=timedelta(hours=s.outbox_retention_hours),
            events_batch=s.events_batch,
        )

    @cached_property
    def goalstore(self) -> GoalStore:
        s = self.settings
        observed = Observed(self.redis, self.keys.metrics, (s.events_queue, s.scheduler_queue))
        return GoalStore(self.db, self.cache, self.vetting, self.selector, self.policy, observed)

    @cached_property
    def rate_limiter(self) -> RateLimiter | None:
        """Per-actor write limits, when set and Redis is there to keep the buckets."""
        s = self.settings
        if self.redis is None or s.rate_limit_per_s <= 0:
            return None
        burst = s.rate_limit_burst or max(1, round(2 * s.rate_limit_per_s))
        return RateLimiter(self.redis, self.keys, s.rate_limit_per_s, burst)

    @cached_property
    def idempotency(self) -> IdempotencyRecords:
        return IdempotencyRecords(self.redis, self.keys)

    def require_redis(self, what: str) -> Redis:
        """The Redis connection, or RedisRequired naming what needed it."""
        if self.redis is None:
            raise RedisRequired(what)
        return self.redis

    @cached_property
    def vetting(self) -> Vetting:
        s = self.settings
        checker: BeliefConsistencyChecker = (
            HttpChecker(s.checker_url, s.checker_timeout_s) if s.checker_url else BuiltinChecker()
        )
        return Vetting(checker, s.vet_threshold)

    @cached_property
    def emitter(self) -> RqEmitter | None:
        s = self.settings
        if self.redis is None:
            return None
        return RqEmitter(self.redis, s.scheduler_queue, s.executor, s.job_timeout_s)

    @cached_property
    def selector(self) -> Selector:
        s = self.settings
        claims = None if self.redis is None else Claims(self.redis, self.keys, s.claim_ttl_s)
        return Selector(
            db=self.db, cache=self.cache, claims=claims, emitter=self.emitter,
            vetting=self.vetting,
            flags=Flags(s.goal_system, s.goal_shadow, s.canary_percent),
            max_lag=self.policy.max_lag,
        )  # fmt: skip

    @property
    def keys(self) -> Keys:
        return Keys(self.settings.redis_prefix)

    def close(self) -> None:
        self.db.close()
        if self.redis is not None:
            self.redis.close()


def build_services(settings: Settings | None = None) -> Services:
    settings = settings or Settings()
    return Services(
        settings=settings,
        db=open_database(settings.database, settings.busy_timeout_ms, settings.db_pool_size),
        api_keys=parse_api_keys(settings.api_keys),
        redis=connect_redis(settings.redis_url) if settings.redis_url else None,
    )


def connect_redis(url: str, *, blocking: bool = False) -> Redis:
    """A client that fails fast: a Redis that does not answer must not stall a request.

    `blocking` is for a queue worker, whose BLPOP waits longer than any read timeout.
    """
    return Redis.from_url(
        url,
        socket_timeout=None if blocking else 2,
        socket_connect_timeout=2,
        health_check_interval=30,
    )
