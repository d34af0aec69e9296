"""Where a backend's sections run: its store (the temporary SQLite file, or a schema of the
bench's PostgreSQL database), its own Redis keys and events queue, the environment its
processes get, and an events worker started over them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from redis import Redis
from rq import Queue

from service.bench.plan import EVENTS_QUEUE, PREFIX
from service.bench.processes import goalstore_process, wait_for
from service.cache.keys import Keys
from service.cache.ranking import RankingCache
from service.store import outbox
from service.store.db import Database


class Stage:
    """One backend's store, its Redis keys (PREFIX + backend + ":") and events queue
    (EVENTS_QUEUE-backend), and the processes over them. The two backends' caches live
    side by side, and a worker never takes the other backend's events."""

    def __init__(self, backend: str, db: Database, work: Path, redis_url: str, redis: Redis):
        self.backend, self.redis = backend, redis
        self.work = work / backend
        self.work.mkdir(parents=True, exist_ok=True)
        self.keys = Keys(f"{PREFIX}{backend}:")
        self.events_queue = f"{EVENTS_QUEUE}-{backend}"
        self.cache = RankingCache(redis, self.keys)
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("GOALSTORE_")},
            "GOALSTORE_REDIS_URL": redis_url,
            "GOALSTORE_REDIS_PREFIX": self.keys.prefix, "GOALSTORE_LOG_LEVEL": "WARNING",
            "GOALSTORE_BUSY_TIMEOUT_MS": "30000",
            # Its own queue: a bench worker must never take a real worker's jobs, nor
            # the other backend's.
            "GOALSTORE_EVENTS_QUEUE": self.events_queue,
        }  # fmt: skip
        self.db = db
        self.use(db)

    def use(self, db: Database) -> None:
        """Measure over `db` from now on (the PostgreSQL stage's copy at a new size)."""
        self.db = db
        self.env["GOALSTORE_DATABASE"] = db.location

    @contextmanager
    def worker(self, env: dict[str, str], log: str) -> Iterator[None]:
        """An events worker, once its start-up rebuild is done (timing beside a rebuild
        of 100k goals would time the rebuild too)."""
        before = self.cache.meta().get("rebuilt_at")
        with goalstore_process(["worker"], env, self.work / log):
            wait_for(
                "the worker's start-up rebuild",
                lambda: self.cache.meta().get("rebuilt_at") != before and self.applied(),
                seconds=120,
            )
            yield

    def applied(self) -> bool:
        """Whether the worker has applied every event in the outbox."""
        return outbox.oldest_unapplied(self.db.connection()) is None

    def clear_redis(self) -> None:
        clear_keys(self.redis, self.keys)

    def close(self) -> None:
        """Close the store; drop this backend's keys and whatever its queue still holds
        (jobs naming ledger seqs of a store that is about to go)."""
        self.db.close()
        self.clear_redis()
        Queue(self.events_queue, connection=self.redis).delete(delete_jobs=True)


def clear_keys(redis: Redis, keys: Keys) -> None:
    """Delete every key under the prefix (a thousand per DEL)."""
    batch = []
    for key in redis.scan_iter(match=f"{keys.prefix}*", count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            redis.delete(*batch)
            batch.clear()
    if batch:
        redis.delete(*batch)
