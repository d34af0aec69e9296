"""What GoalStore counts and times, and where those figures live (docs/observability.md).

Every process counts: the API, the CLI, the events worker, the selectors and the
scheduler's executor (RQ may fork a process per job). So counts and latencies are
kept in Redis, in one hash (`goalstore:metrics`) whose fields read like the
Prometheus samples they become, and the web process's `/metrics` exposes them
(service/api/metrics.py). The same figures are then seen from every process and
every host, with no shared directory and no scrape target per worker. If Redis
loses its data the counters start again from zero, which Prometheus takes as a
counter reset; figures that must be exact (how many goals, in which state) are
read from SQLite at scrape time instead of being counted.

Counting never fails the command that counts: without Redis an increment is
kept in the process and sent with the next one that gets through, and after a
failure Redis is left alone for a few seconds, so a Redis that hangs costs one
timeout, not one per command. A batch whose script ran but whose reply was lost is
sent again: a rare overcount, never a lost count.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

from redis import Redis
from redis.commands.core import Script
from redis.exceptions import RedisError

from service.cache.keys import Keys

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


@dataclass(frozen=True)
class Spec:
    """One metric family: `name` is the family name (a counter's samples add `_total`)."""

    name: str
    kind: Literal["counter", "histogram", "gauge"]
    help: str
    labels: tuple[str, ...] = ()

    @property
    def samples(self) -> tuple[str, ...]:
        if self.kind == "counter":
            return (f"{self.name}_total",)
        if self.kind == "histogram":
            return tuple(f"{self.name}_{part}" for part in ("bucket", "sum", "count"))
        return (self.name,)


# --- counted by the commands, kept in Redis -------------------------------------------

GOALS_ADOPTED = Spec("goals_adopted", "counter", "Goals adopted.")
GOAL_SELECTED = Spec(
    "goal_selected", "counter", "Goals handed to the scheduler (one task job emitted each)."
)
GOAL_SELECTED_SHADOW = Spec(
    "goal_selected_shadow", "counter",
    "Would-be selections while GOAL_SHADOW is on (counted and logged, nothing emitted).",
)  # fmt: skip
GOAL_BLOCKED_BY_BELIEF = Spec(
    "goal_blocked_by_belief", "counter",
    "Adoptions or selections refused by vetting, per belief involved ('-': a reason with "
    "no belief, such as a passed deadline).",
    ("belief_id",),
)  # fmt: skip
EVENTS_APPLIED = Spec(
    "goalstore_events_applied", "counter", "Change events the events worker applied to Redis."
)
TASKS_FINISHED = Spec(
    "goalstore_tasks_finished", "counter",
    "Task reports that ended an attempt (succeeded or failed), from executors and the sweeper.",
    ("state",),
)  # fmt: skip
PRIORITIZE_LATENCY = Spec(
    "goal_prioritize_latency_seconds", "histogram",
    "Time to score and order one batch of goals (a worker batch, a refresh chunk, a "
    "ranking computed from SQLite).",
)  # fmt: skip
SELECT_LATENCY = Spec(
    "goal_select_latency_seconds",
    "histogram",
    "Time to select and emit one goal (a selector's batch: the batch's time, once per goal).",
)
ADOPT_LATENCY = Spec(
    "goal_adopt_latency_seconds", "histogram", "Time to vet and adopt one goal (successful)."
)
SAFETY_VIOLATIONS = Spec(
    "goal_safety_violations", "counter",
    "Goals about to be handed to the scheduler while contradicting an active belief: vetting "
    "let them through, the start's safety check refused them. Must stay 0 (seed 000).",
)  # fmt: skip
RATE_LIMITED = Spec(
    "goalstore_rate_limited", "counter",
    "Writes refused with 429 because the actor's write limit was spent, per actor.",
    ("actor",),
)  # fmt: skip

RECORDED = (
    GOALS_ADOPTED, GOAL_SELECTED, GOAL_SELECTED_SHADOW, GOAL_BLOCKED_BY_BELIEF,
    EVENTS_APPLIED, TASKS_FINISHED, PRIORITIZE_LATENCY, SELECT_LATENCY, ADOPT_LATENCY,
    RATE_LIMITED, SAFETY_VIOLATIONS,
)  # fmt: skip

# --- read at scrape time from SQLite and Redis (service/api/metrics.py) ----------------

GOALS_TOTAL = Spec(
    "goals_total", "gauge", "Goals in the store (deleted ones excluded).", ("category", "state")
)
GOALS_BY_STATE = Spec("goals_by_state", "gauge", "Goals per state (deleted excluded).", ("state",))
TASKS = Spec("goalstore_tasks", "gauge", "Tasks per state, from the store.", ("state",))
QUEUE_DEPTH = Spec("goalstore_queue_depth", "gauge", "Jobs waiting in an RQ queue.", ("queue",))
OUTBOX_PENDING = Spec(
    "goalstore_outbox_pending", "gauge", "Change events not yet applied to the ranking cache."
)
OUTBOX_LAG = Spec(
    "goalstore_outbox_lag_seconds", "gauge",
    "Age of the oldest change event not yet applied to the ranking cache (0: none).",
)  # fmt: skip
CACHE_WARM = Spec(
    "goalstore_cache_warm", "gauge", "1 when Redis holds a rebuilt ranking, 0 when it is empty."
)
CACHE_STALENESS = Spec(
    "goalstore_cache_staleness_seconds", "gauge",
    "Time since the cached scores were last brought up to the clock (urgency refresh).",
)  # fmt: skip
REDIS_UP = Spec("goalstore_redis_up", "gauge", "1 when Redis answered this scrape.")

READ = (
    GOALS_TOTAL, GOALS_BY_STATE, TASKS, QUEUE_DEPTH, OUTBOX_PENDING, OUTBOX_LAG,
    CACHE_WARM, CACHE_STALENESS, REDIS_UP,
)  # fmt: skip

SPECS = RECORDED + READ
SAMPLE_NAMES = frozenset(sample for spec in SPECS for sample in spec.samples)


# --- the recorder ---------------------------------------------------------------------


def sample_key(name: str, labels: Mapping[str, str]) -> str:
    """The Redis hash field of one sample, written as Prometheus writes it."""
    if not labels:
        return name
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}}"


_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})?$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_sample_key(key: str) -> tuple[str, dict[str, str]] | None:
    """sample_key() read back; None for a field that is not one."""
    match = _SAMPLE.match(key)
    if match is None:
        return None
    labels = {k: _unescape(v) for k, v in _LABEL.findall(match["labels"] or "")}
    return match["name"], labels


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m[1] == "n" else m[1], value)


# One command for a whole batch: atomic like MULTI (a scrape sees a histogram whole), and
# one short request to pack and parse instead of one per bucket.
_ADD_LUA = """
for i = 1, #ARGV, 2 do redis.call('HINCRBYFLOAT', KEYS[1], ARGV[i], ARGV[i + 1]) end
return #ARGV / 2
"""


def read_samples(redis: Redis, key: str) -> dict[str, float]:
    """Every sample counted so far in that hash, by sample key."""
    raw: dict[bytes, bytes] = redis.hgetall(key)  # type: ignore[assignment]
    return {k.decode(): float(v) for k, v in raw.items()}


class Recorder:
    """Adds to the counts in Redis (see the module docstring); one per process."""

    def __init__(self) -> None:
        self._redis: Redis | None = None
        self._script: Script | None = None
        self.key = Keys().metrics  # the default prefix's, until bind() names the configured one
        self._pending: dict[str, float] = {}
        self._lock = threading.Lock()
        self._quiet_until = 0.0  # after a failure, leave Redis alone until then
        self.retry_after_s = 5.0
        os.register_at_fork(after_in_child=self._forget_pending)

    def _forget_pending(self) -> None:
        """A forked child starts with no pending counts: the parent sends its own."""
        self._lock = threading.Lock()
        self._pending = {}

    def bind(self, redis: Redis | None, key: str) -> None:
        """Where the counts go from now on (build_services calls it). Counts still
        waiting for the previous Redis are dropped: they belong to that one."""
        with self._lock:
            self._redis, self.key, self._pending = redis, key, {}
            self._script = None if redis is None else redis.register_script(_ADD_LUA)
            self._quiet_until = 0.0

    def inc(self, spec: Spec, by: float = 1, **labels: str) -> None:
        self._add(_counted(spec, by, labels))

    def observe(self, spec: Spec, seconds: float, **labels: str) -> None:
        self._add(_observed(spec, seconds, labels))

    def inc_and_observe(
        self, counter: Spec, histogram: Spec, seconds: float, times: int = 1
    ) -> None:
        """Count `times` things that each took `seconds` (the selection and adoption
        paths; a batch selection counts each goal), in one round trip."""
        adds = {**_counted(counter, 1, {}), **_observed(histogram, seconds, {})}
        self._add({field: by * times for field, by in adds.items()})

    @contextmanager
    def timed(self, spec: Spec) -> Iterator[None]:
        """Observe how long the block took, when it finishes without an exception."""
        started = time.perf_counter()
        yield
        self.observe(spec, time.perf_counter() - started)

    def read(self) -> dict[str, float]:
        """Every sample counted so far, by sample key (raises RedisError without Redis)."""
        with self._lock:
            redis, key, pending = self._redis, self.key, dict(self._pending)
        if redis is None:
            return pending
        return read_samples(redis, key)

    def _add(self, adds: Mapping[str, float]) -> None:
        with self._lock:
            for field, by in adds.items():
                if by:
                    self._pending[field] = self._pending.get(field, 0.0) + by
            script, key = self._script, self.key
            if script is None or not self._pending or time.monotonic() < self._quiet_until:
                return
            batch, self._pending = self._pending, {}
        try:
            script(keys=[key], args=[x for item in batch.items() for x in item])
        except RedisError as exc:
            log.debug("metrics kept in the process until Redis answers: %s", exc)
            with self._lock:
                self._quiet_until = time.monotonic() + self.retry_after_s
                for field, by in batch.items():
                    self._pending[field] = self._pending.get(field, 0.0) + by


def _counted(spec: Spec, by: float, labels: Mapping[str, str]) -> dict[str, float]:
    assert spec.kind == "counter", spec
    return {sample_key(f"{spec.name}_total", labels): by}


def _observed(spec: Spec, seconds: float, labels: Mapping[str, str]) -> dict[str, float]:
    """A histogram observation as hash increments: every bucket at or above it (cumulative,
    as Prometheus reads them), the sum and the count."""
    assert spec.kind == "histogram", spec
    adds = {
        sample_key(f"{spec.name}_bucket", {**labels, "le": le_text(bound)}): 1.0
        for bound in (*LATENCY_BUCKETS, float("inf"))
        if seconds <= bound
    }
    adds[sample_key(f"{spec.name}_sum", labels)] = seconds
    adds[sample_key(f"{spec.name}_count", labels)] = 1.0
    return adds


def le_text(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


RECORDER = Recorder()


def count_block(belief_ids: list[str]) -> None:
    for belief_id in belief_ids or ["-"]:
        RECORDER.inc(GOAL_BLOCKED_BY_BELIEF, belief_id=belief_id)
