"""What /metrics and /readyz read at scrape time: exact figures from the store, the
counts every process keeps in Redis, the queues, and whether each part answers."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, Worker

from service.cache.ranking import RankingCache
from service.domain.goal import GoalCategory, GoalState
from service.domain.tasks import TaskState
from service.domain.timefmt import parse_ts
from service.metrics import read_samples
from service.store import goals as goal_table
from service.store import outbox
from service.store import tasks as task_table
from service.store.db import Database

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoreFigures:
    goals: dict[tuple[str, str], int]  # (category, state) -> goals, every pair present
    tasks: dict[str, int]  # state -> tasks, every state present
    outbox_pending: int
    outbox_lag_s: float  # age of the oldest unapplied event; 0 when there is none

    @property
    def goals_by_state(self) -> dict[str, int]:
        by_state = dict.fromkeys((s.value for s in GoalState), 0)
        for (_, state), n in self.goals.items():
            by_state[state] = by_state.get(state, 0) + n
        return by_state


def store_figures(db: Database, now: datetime) -> StoreFigures:
    """One read transaction: goals per category and state, tasks per state, the outbox."""
    with db.read() as conn:
        goal_counts = goal_table.counts(conn)
        task_counts = task_table.counts(conn)
        backlog = outbox.backlog(conn)
    goals = {(c.value, s.value): 0 for c in GoalCategory for s in GoalState}
    for category, state, n in goal_counts:
        goals[(category, state)] = n
    tasks = dict.fromkeys((s.value for s in TaskState), 0) | task_counts
    oldest = backlog["oldest_unapplied_at"]
    lag = 0.0 if oldest is None else max(0.0, (now - parse_ts(oldest)).total_seconds())
    return StoreFigures(goals, tasks, backlog["unapplied"], lag)


@dataclass(frozen=True)
class RedisFigures:
    """What /metrics reads from Redis: every process's counts, the queues, the cache."""

    recorded: dict[str, float]  # sample key -> value (service/metrics.py)
    queue_depths: dict[str, int]  # RQ queue name -> jobs waiting
    cache_meta: dict[str, str]  # the ranking cache's meta hash

    @property
    def cache_warm(self) -> bool:
        """Whether a rebuild has filled the cache (a restarted, empty Redis has not)."""
        return "rebuilt_seq" in self.cache_meta

    def cache_staleness_s(self, now: datetime) -> float | None:
        """Seconds since the cache's urgencies were refreshed; None while it is cold."""
        refreshed = self.cache_meta.get("urgency_refreshed_at")
        if not self.cache_warm or not refreshed:
            return None
        return max(0.0, now.timestamp() - float(refreshed))


def redis_figures(
    redis: Redis | None, metrics_key: str, queues: Sequence[str], cache: RankingCache | None
) -> RedisFigures | None:
    """One scrape's reads of Redis: None without Redis or when it does not answer
    (logged), so a scrape still serves the store's figures."""
    if redis is None:
        return None
    try:
        recorded = read_samples(redis, metrics_key)
        depths = {name: Queue(name, connection=redis).count for name in queues}
        return RedisFigures(recorded, depths, cache.meta() if cache is not None else {})
    except RedisError as exc:
        log.warning("metrics: Redis does not answer (%s); serving the store's only", exc)
        return None


@dataclass(frozen=True)
class WorkerSeen:
    """An RQ worker registered in Redis (it deregisters when it stops; its key expires when
    it dies without a word)."""

    name: str
    queues: tuple[str, ...]
    state: str
    last_heartbeat: datetime | None


def workers_seen(redis: Redis | None) -> list[WorkerSeen] | None:
    """The workers registered in Redis, by name; None without Redis or when it does not
    answer."""
    if redis is None:
        return None
    try:
        found = Worker.all(connection=redis)
        return sorted(
            (WorkerSeen(w.name, tuple(w.queue_names()), str(w.get_state()), w.last_heartbeat)
             for w in found),
            key=lambda w: w.name,
        )  # fmt: skip
    except RedisError as exc:
        log.warning("workers: Redis does not answer (%s)", exc)
        return None


def readiness(db: Database, redis: Redis | None) -> dict[str, str]:
    """Whether the store and Redis answer: `ok`, `unavailable` or `not configured`."""
    checks = {db.dialect.name: "ok" if db.answers() else "unavailable"}
    if redis is None:
        checks["redis"] = "not configured"  # only a hand-built app; `serve` embeds one
    else:
        try:
            redis.ping()
            checks["redis"] = "ok"
        except RedisError as exc:
            log.warning("readiness check: Redis does not answer (%s)", exc)
            checks["redis"] = "unavailable"
    return checks
