"""`goalstore bench`: the ranking targets, measured on this machine.

Prints one JSON document on stdout (progress lines go to stderr). Every figure
is a median and a p95 over repeated runs, beside its target, and, where one
makes sense, beside a baseline measured in the same process (a sort of as many
floats; a raw ZREVRANGE), because a 2-core machine shared with other work is
noisy and the ratio says more than the absolute number.

It works in a temporary directory with its own SQLite file and its own Redis
key prefix, starts the web and worker processes itself (`python -m service.cli
serve|worker`), and removes everything at the end. It needs a Redis:
GOALSTORE_REDIS_URL or --redis-url.
"""

from __future__ import annotations

import http.client
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from redis import Redis
from rq import Queue

from service import commands
from service.cache.keys import Keys
from service.cache.ranking import RankingCache
from service.commands import Context
from service.commands.selection import SELECT_BATCH
from service.domain.inputs import GoalCreate, GoalUpdate
from service.domain.ranking import Features, RankingInputs, rank
from service.store import outbox
from service.store.db import Database
from service.store.migrate import migrate

PREFIX = "goalstore-bench:"
PRIORITIZER_TARGETS_P95_MS = {1_000: 2.0, 100_000: 150.0}
TARGETS = {
    "prioritizer_1k_p95_ms": 2.0,
    "prioritizer_100k_p95_ms": 150.0,
    "ranked_read_p95_ms": 5.0,
    "event_lag_p95_ms": 100.0,
    "events_per_s": 5000.0,
    "rebuild_100k_s": 2.0,
    "select_goals_per_s": 500.0,
}
SELECTORS = 4
SCHEDULER_QUEUE = "goalstore-bench-scheduler"


def progress(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def percentiles(samples_s: list[float]) -> dict[str, float]:
    """Median and p95 of timings in seconds, reported in milliseconds."""
    ordered = sorted(samples_s)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 3),
        "p95_ms": round(p95 * 1000, 3),
        "runs": len(ordered),
    }


def timed(fn: Callable[[], object], runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


# --- the prioritizer, pure --------------------------------------------------------------


def synthetic_features(n: int, rnd: random.Random, now: float) -> list[Features]:
    """Goals shaped like real ones: some align with or contradict beliefs, some depend on
    others, a third have deadlines (some inside the urgency window, a few passed)."""
    beliefs = [f"b{i}" for i in range(20)]
    out = []
    for i in range(n):
        deadline = None
        if rnd.random() < 0.33:
            deadline = now + rnd.uniform(-3600, 3 * 86400)
        out.append(
            Features(
                f"g{i}",
                rnd.random(),
                rnd.random(),
                rnd.random(),
                deadline,
                now - rnd.uniform(0, 30 * 86400),
                tuple(rnd.sample(beliefs, rnd.randint(0, 3))) if rnd.random() < 0.3 else (),
                (rnd.choice(beliefs),) if rnd.random() < 0.05 else (),
                (f"g{rnd.randrange(n)}",) if rnd.random() < 0.02 else (),
            )
        )
    return out


def bench_prioritizer(sizes: tuple[int, ...]) -> dict[str, Any]:
    rnd = random.Random(42)
    now = datetime.now(UTC)
    inputs = RankingInputs(
        now=now,
        active_beliefs=frozenset(f"b{i}" for i in range(0, 20, 3)),
        satisfied_goals=frozenset(f"g{i}" for i in range(0, max(sizes), 7)),
    )
    out: dict[str, Any] = {}
    for n in sizes:
        runs = 200 if n <= 10_000 else 21
        progress(f"prioritizer over {n} goals, {runs} runs")
        goals = synthetic_features(n, rnd, now.timestamp())
        floats = [rnd.random() for _ in range(n)]
        # Features in, the whole order out; rank() scores the goals as columns and
        # makes Ranked items on demand, so the first page is timed beside it.
        ranking = percentiles(timed(lambda: rank(goals, inputs), runs))  # noqa: B023
        page = percentiles(timed(lambda: rank(goals, inputs).top(20), runs))  # noqa: B023
        baseline = percentiles(timed(lambda: sorted(floats), runs))  # noqa: B023
        target = PRIORITIZER_TARGETS_P95_MS.get(n)
        out[label(n)] = {
            "goals": n,
            **ranking,
            "target_p95_ms": target,
            "met": None if target is None else ranking["p95_ms"] <= target,
            "with_top_20_items_p50_ms": page["p50_ms"],
            "baseline_sorted_floats_p50_ms": baseline["p50_ms"],
            "ratio_to_baseline_p50": round(ranking["p50_ms"] / max(baseline["p50_ms"], 1e-6), 1),
        }
    return out


# --- a dataset in SQLite, and the processes over it ---------------------------------------


def load_goals(db: Database, start: int, count: int, rnd: random.Random) -> None:
    """Create and adopt goals through the commands, in one transaction per 5,000."""
    ctx = Context("bench")
    categories = ["introspection", "exploration", "maintenance", "user_requested"]
    for chunk in range(start, start + count, 5_000):
        with db.batch():
            for n in range(chunk, min(chunk + 5_000, start + count)):
                spec = GoalCreate.model_validate(
                    {
                        "id": f"g{n}", "text": f"bench goal {n}",
                        "category": categories[n % 4],
                        "value": rnd.random(), "effort": rnd.random(), "risk": rnd.random(),
                        "horizon_max_min": rnd.choice([None, None, 600, 3000, 60 * 24 * 7]),
                    }
                )  # fmt: skip
                commands.create_goal(db, ctx, spec)
                commands.adopt_goal(db, ctx, str(spec.id))
        progress(f"  {min(chunk + 5_000, start + count)} goals loaded")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "service.cli", *args], env=env, stdout=out, stderr=out
        )
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def wait_for(what: str, probe: Callable[[], bool], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if probe():
                return
        except OSError:  # not listening yet
            pass
        time.sleep(0.02)
    raise RuntimeError(f"bench: timed out waiting for {what}")


def bench_ranked_read(url: str, redis: Redis, keys: Keys, requests: int) -> dict[str, Any]:
    """GET /v1/goals/prioritized over one keep-alive connection, with the standard
    library's http.client: httpx spends about as long per request as the server does,
    which would time the client rather than the service."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)

    def get() -> dict[str, Any]:
        conn.request("GET", "/v1/goals/prioritized")
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"bench: prioritized answered {response.status}: {body[:300]!r}")
        page: dict[str, Any] = orjson.loads(body)
        return page

    try:
        source = get().get("source")
        if source != "redis":
            raise RuntimeError(f"bench: prioritized read from {source}, not redis")
        for _ in range(20):  # warm the connection and the server's code paths
            get()
        http_ = percentiles(timed(get, requests))
    finally:
        conn.close()
    raw = percentiles(timed(lambda: redis.zrevrange(keys.ranked, 0, 19, withscores=True), requests))
    return {
        "http_prioritized": http_,
        "raw_zrevrange": raw,
        "ratio_http_to_raw_p50": round(http_["p50_ms"] / max(raw["p50_ms"], 1e-6), 1),
        "target_p95_ms": TARGETS["ranked_read_p95_ms"],
        "met": http_["p95_ms"] <= TARGETS["ranked_read_p95_ms"],
    }


def bench_events(
    db: Database, redis: Redis, keys: Keys, lag_samples: int, burst: int
) -> dict[str, Any]:
    """Lag: one change at a time, from its commit until Redis holds the new version.
    Throughput: `burst` goals created and adopted in one transaction (2 events each),
    from the commit until the worker has applied them all."""
    ctx = Context("bench")
    lags = []
    for n in range(lag_samples):
        goal_id = f"g{n}"
        goal = commands.get_goal(db, goal_id)
        commands.update_goal(
            db, ctx, goal_id, GoalUpdate(value=round((n % 10) / 10, 1) + 0.05), goal.version
        )
        committed = time.perf_counter()
        wanted = str(goal.version + 1).encode()
        while redis.hget(keys.goal(goal_id), "version") != wanted:
            if time.perf_counter() - committed > 10:
                raise RuntimeError(f"bench: {goal_id} never reached Redis")
            time.sleep(0.0005)
        lags.append(time.perf_counter() - committed)
    lag = percentiles(lags)
    progress(
        f"  lag p50 {lag['p50_ms']} ms, p95 {lag['p95_ms']} ms; now a burst of {2 * burst} events"
    )
    start_id = 10_000_000
    load_goals(db, start_id, burst, random.Random(3))
    committed = time.perf_counter()
    wait_for(
        "the burst to be applied",
        lambda: outbox.oldest_unapplied(db.connection()) is None,
        seconds=300,
    )
    elapsed = time.perf_counter() - committed
    rate = 2 * burst / elapsed
    return {
        "lag": {**lag, "target_p95_ms": TARGETS["event_lag_p95_ms"],
                "met": lag["p95_ms"] <= TARGETS["event_lag_p95_ms"]},
        "throughput": {
            "events": 2 * burst, "seconds": round(elapsed, 3), "events_per_s": round(rate),
            "target_events_per_s": TARGETS["events_per_s"],
            "met": rate >= TARGETS["events_per_s"],
        },
    }  # fmt: skip


@dataclass(frozen=True)
class Plan:
    read_sizes: tuple[int, ...]  # goals in the store for the ranked-read and rebuild runs
    prioritizer_sizes: tuple[int, ...]
    requests: int  # HTTP reads per size
    lag_samples: int  # changes timed one at a time through the worker
    burst: int  # goals created (2 events each) at once for the throughput run
    selections: int  # goals selected and emitted by 4 selector processes


FULL = Plan((10_000, 100_000), (1_000, 100_000), requests=300, lag_samples=200, burst=5_000,
            selections=4_000)  # fmt: skip
QUICK = Plan((500, 1_000), (1_000, 10_000), requests=50, lag_samples=20, burst=500,
             selections=200)  # fmt: skip


def run(redis_url: str, plan: Plan) -> dict[str, Any]:
    """The whole benchmark: FULL for the issue's sizes, QUICK to check that it runs."""
    started = time.perf_counter()
    report: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "prioritizer": bench_prioritizer(plan.prioritizer_sizes),
        "ranked_read": {},
        "rebuild": {},
    }
    keys = Keys(PREFIX)
    redis = Redis.from_url(redis_url)
    _clear(redis, keys)
    with tempfile.TemporaryDirectory(prefix="goalstore-bench-") as tmp:
        stage = Stage(Path(tmp), redis_url, redis, keys)
        try:
            loaded = 0
            for size in sorted(plan.read_sizes):
                progress(f"loading {size - loaded} goals (create + adopt; {size} in all)")
                load_goals(stage.db, loaded, size - loaded, random.Random(size))
                loaded = size
                report["rebuild"][label(size)] = stage.rebuild(size)
                report["ranked_read"][label(size)] = stage.ranked_read(size, plan.requests)
                if size == min(plan.read_sizes):
                    report["events"] = stage.events(plan.lag_samples, plan.burst)
                    report["events"]["goals_in_store"] = loaded + plan.burst
            report["select"] = {
                "one_per_call": stage.select(plan.selections, 1),
                "selector_batches": stage.select(plan.selections, SELECT_BATCH),
            }
        finally:
            stage.db.close()
            _clear(redis, keys)
            redis.close()
    report["targets"] = TARGETS
    report["seconds"] = round(time.perf_counter() - started, 1)
    return report


class Stage:
    """The temporary SQLite file, the bench's Redis keys, and the processes over them."""

    def __init__(self, work: Path, redis_url: str, redis: Redis, keys: Keys) -> None:
        self.work, self.redis, self.keys = work, redis, keys
        self.db = Database(work / "bench.db", busy_timeout_ms=30_000)
        migrate(self.db)
        self.cache = RankingCache(redis, keys)
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("GOALSTORE_")},
            "GOALSTORE_DATABASE": str(self.db.path), "GOALSTORE_REDIS_URL": redis_url,
            "GOALSTORE_REDIS_PREFIX": keys.prefix, "GOALSTORE_LOG_LEVEL": "WARNING",
            "GOALSTORE_BUSY_TIMEOUT_MS": "30000",
            # Its own queue: a bench worker must never take a real worker's jobs.
            "GOALSTORE_EVENTS_QUEUE": "goalstore-bench-events",
        }  # fmt: skip

    def rebuild(self, size: int) -> dict[str, Any]:
        """`goalstore cache rebuild` three ways: first as loaded (the goals of the last
        size are cached, the new ones' events unapplied), then into an emptied Redis (what
        a restarted Redis gets), then over a full cache (a worker's start, by hand)."""
        runs = 3  # the median of 3: one slow run on a noisy machine does not decide it
        progress(f"rebuilding the Redis ranking of {size} goals: first, {runs} cold, {runs} warm")

        in_scripts: list[float] = []  # Redis's own time in scripts, per run

        def rebuild() -> None:
            before = _script_seconds(self.redis)
            commands.rebuild_cache(self.db, self.cache)
            in_scripts.append(_script_seconds(self.redis) - before)

        first = timed(rebuild, 1)[0]
        cold = []
        for _ in range(runs):
            _clear(self.redis, self.keys)
            cold += timed(rebuild, 1)
        warm = timed(rebuild, runs)
        figures = {"first": first, "cold_p50": statistics.median(cold),
                   "warm_p50": statistics.median(warm)}  # fmt: skip
        out: dict[str, Any] = {
            "goals": size, **{f"{k}_s": round(v, 3) for k, v in figures.items()},
            "cold_runs_s": [round(v, 3) for v in cold],
            "warm_runs_s": [round(v, 3) for v in warm],
            # first, the cold runs, the warm runs: how much of each Redis spent running
            # the rebuild's scripts, snapshots then placing (the rest: SQLite, Python, what
            # did not overlap)
            "redis_in_scripts_s": [round(v, 3) for v in in_scripts],
        }  # fmt: skip
        if size >= 100_000:
            target = TARGETS["rebuild_100k_s"]
            out.update(target_s=target, met=max(figures.values()) <= target)
        return out

    def ranked_read(self, size: int, requests: int) -> dict[str, Any]:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        with process(["serve", "--port", str(port)], self.env, self.work / f"web-{size}.log"):
            wait_for("the web process", lambda: _status(port, "/readyz") == 200)
            progress(f"GET /v1/goals/prioritized x{requests} at {size} goals, and raw ZREVRANGE")
            return {"goals": size, **bench_ranked_read(url, self.redis, self.keys, requests)}

    def events(self, lag_samples: int, burst: int) -> dict[str, Any]:
        progress(f"events: worker lag over {lag_samples} changes, then a burst")
        with self.worker(self.env, "worker.log"):
            return bench_events(self.db, self.redis, self.keys, lag_samples, burst)

    @contextmanager
    def worker(self, env: dict[str, str], log: str) -> Iterator[None]:
        """An events worker, once its start-up rebuild is done (timing beside a rebuild
        of 100k goals would time the rebuild too)."""
        before = self.cache.meta().get("rebuilt_at")
        with process(["worker"], env, self.work / log):
            wait_for(
                "the worker's start-up rebuild",
                lambda: (
                    self.cache.meta().get("rebuilt_at") != before
                    and outbox.oldest_unapplied(self.db.connection()) is None
                ),
                seconds=120,
            )
            yield

    def select(self, goals: int, batch: int) -> dict[str, Any]:
        """4 selector processes, started together, select until `goals` are emitted:
        one goal per call (batch 1: POST /v1/goals/select, `goalstore select`), or
        `batch` per call (what `goalstore selector` does to top the queue up)."""
        progress(f"select: {SELECTORS} selector processes emit {goals} goals, {batch} per call")
        env = {**self.env, "GOAL_SYSTEM": "on", "GOAL_SHADOW": "off",
               "GOALSTORE_SCHEDULER_QUEUE": SCHEDULER_QUEUE}  # fmt: skip
        go = f"{self.keys.prefix}select-go"
        quota = -(-goals // SELECTORS)
        with self.worker(env, f"select-worker-{batch}.log"):
            logs = [(self.work / f"selector-{n}.log").open("wb") for n in range(SELECTORS)]
            args = [sys.executable, "-c", _SELECTOR, str(quota), str(batch), go]
            procs = [
                subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=log) for log in logs
            ]
            time.sleep(2.0)  # let them import and connect before the start signal
            self.redis.rpush(go, *["go"] * SELECTORS)
            outputs = [p.communicate(timeout=600)[0] for p in procs]
            for log in logs:
                log.close()
        failed = [n for n, p in enumerate(procs) if p.returncode != 0]
        if failed:
            detail = (self.work / f"selector-{failed[0]}.log").read_text()[-2000:]
            raise RuntimeError(f"bench: selector process {failed[0]} failed:\n{detail}")
        results = [orjson.loads(out) for out in outputs]
        scheduler = Queue(SCHEDULER_QUEUE, connection=self.redis)
        queued = len(scheduler)
        scheduler.delete(delete_jobs=True)
        emitted = [goal_id for r in results for goal_id in r["emitted"]]
        seconds = max(r["seconds"] for r in results)
        rate = len(emitted) / seconds if seconds else 0.0
        target = TARGETS["select_goals_per_s"]
        return {
            "selectors": SELECTORS, "goals_per_call": batch, "emitted": len(emitted),
            "seconds": round(seconds, 3),
            "goals_per_s": round(rate), "exactly_once": len(set(emitted)) == len(emitted),
            "jobs_queued": queued, "target_goals_per_s": target,
            # every goal asked for, each once, each with its job on the queue
            "met": rate >= target and goals <= len(set(emitted)) == len(emitted) == queued,
        }  # fmt: skip


_SELECTOR = """
import json, sys, time
from service.commands import Context
from service.runtime import build_services

services = build_services()
quota, batch, go = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
services.redis.blpop([go], timeout=120)
emitted, started = [], time.perf_counter()
while len(emitted) < quota:
    want = min(batch, quota - len(emitted))
    if want == 1:
        selections = [services.selector.select(Context(actor="bench"))]
    else:
        selections = services.selector.select_many(Context(actor="bench"), want)
    if selections[0].mode != "emitted":
        break
    emitted += [selection.goal.id for selection in selections]
print(json.dumps({"emitted": emitted, "seconds": time.perf_counter() - started}))
"""


def _status(port: int, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


def label(n: int) -> str:
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)


def _script_seconds(redis: Redis) -> float:
    """Seconds Redis has spent running scripts (EVALSHA) since its stats were reset."""
    stats: dict[str, Any] = redis.info("commandstats")
    return float(stats.get("cmdstat_evalsha", {}).get("usec", 0)) / 1e6


def _clear(redis: Redis, keys: Keys) -> None:
    batch = []
    for key in redis.scan_iter(match=f"{keys.prefix}*", count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            redis.delete(*batch)
            batch.clear()
    if batch:
        redis.delete(*batch)
