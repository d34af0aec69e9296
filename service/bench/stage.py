"""Where a run works: a temporary SQLite file, the bench's own Redis keys and queues, the
environment its processes get, and an events worker started over them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from redis import Redis

from service.bench.plan import EVENTS_QUEUE
from service.bench.processes import goalstore_process, wait_for
from service.cache.keys import Keys
from service.cache.ranking import RankingCache
from service.store import outbox
from service.store.db import open_database
from service.store.migrate import migrate


class Stage:
    """The temporary SQLite file, the bench's Redis keys, and the processes over them."""

    def __init__(self, work: Path, redis_url: str, redis: Redis, keys: Keys) -> None:
        self.work, self.redis, self.keys = work, redis, keys
        self.db = open_database(work / "bench.db", busy_timeout_ms=30_000)
        migrate(self.db)
        self.cache = RankingCache(redis, keys)
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("GOALSTORE_")},
            "GOALSTORE_DATABASE": self.db.location, "GOALSTORE_REDIS_URL": redis_url,
            "GOALSTORE_REDIS_PREFIX": keys.prefix, "GOALSTORE_LOG_LEVEL": "WARNING",
            "GOALSTORE_BUSY_TIMEOUT_MS": "30000",
            # Its own queue: a bench worker must never take a real worker's jobs.
            "GOALSTORE_EVENTS_QUEUE": EVENTS_QUEUE,
        }  # fmt: skip

    @contextmanager
    def worker(self, env: dict[str, str], log: str) -> Iterator[None]:
        """An events worker, once its start-up rebuild is done (timing beside a rebuild
        of 100k goals would time the rebuild too)."""
        before = self.cache.meta().get("rebuilt_at")
        with goalstore_process(["worker"], env, self.work / log):
            wait_for(
                "the worker's start-up rebuild",
                lambda: (
                    self.cache.meta().get("rebuilt_at") != before
                    and outbox.oldest_unapplied(self.db.connection()) is None
                ),
                seconds=120,
            )
            yield

    def clear_redis(self) -> None:
        clear_keys(self.redis, self.keys)


def clear_keys(redis: Redis, keys: Keys) -> None:
    """Delete every key under the bench's prefix (a thousand per DEL)."""
    batch = []
    for key in redis.scan_iter(match=f"{keys.prefix}*", count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            redis.delete(*batch)
            batch.clear()
    if batch:
        redis.delete(*batch)
