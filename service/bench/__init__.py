"""`goalstore bench`: the performance targets, measured on this machine, on SQLite and on
PostgreSQL side by side.

`run(redis_url, plan, postgres_url)` returns one JSON-ready document (progress lines go
to stderr). Every figure is a median and a p95 over repeated runs, beside its target,
and, where one makes sense, beside a baseline measured in the same process (a sort of as
many floats; a raw ZREVRANGE), because a 2-core machine shared with other work is noisy
and the ratio says more than the absolute number. docs/benchmarks.md explains each
figure.

The store-dependent sections (fallback_read, trees, load, rebuild, ranked_read, events,
select) run on each backend in turn and are reported under `backends.<sqlite|postgresql>`;
`create` drives concurrent writers at one web process on SQLite and three on PostgreSQL
and compares them; `prioritizer` needs no store. SQLite is a file in a temporary
directory, loaded through the commands; PostgreSQL is a database of the bench's own on the server at
`postgres_url` (None: SQLite alone), holding at each size a copy of the SQLite store as
it stands, so that both are measured over the same goals. Each backend has its own
Redis key prefix and events queue. The bench starts the web, worker and selector
processes itself, and removes everything at the end (the PostgreSQL database too). It
needs a Redis: GOALSTORE_REDIS_URL or --redis-url.

The modules, in the order a run uses them: plan (sizes, targets, backends), stats
(timing, percentiles), prioritizer, postgres (the bench's PostgreSQL database, and the
copy into it), dataset (goals through the commands), stage (one backend's store, keys
and processes; processes), fallback_read (a store of 1k goals of its own), trees (a
tree of ~10k goals in a store of its own: a leaf's roll-up, a decomposition), rebuild,
ranked_read, mcp (the ranked read as an MCP tool), console (its ranking page), events,
selection (and selector, the process it starts), create.
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from redis import Redis

from service.bench import (
    console,
    create,
    events,
    fallback_read,
    mcp,
    prioritizer,
    ranked_read,
    rebuild,
    selection,
    trees,
)
from service.bench.dataset import load_goals
from service.bench.plan import (
    CREATE_WEBS,
    DEFAULT_POSTGRES_URL,
    FULL,
    POSTGRES_URL_ENV,
    POSTGRESQL,
    PREFIX,
    QUICK,
    SCHEDULER_QUEUE,
    SQLITE,
    TARGETS,
    Plan,
    label,
)
from service.bench.postgres import BenchServer, PostgresStageUnavailable
from service.bench.stage import Stage, clear_keys
from service.bench.stats import progress, restart_clock
from service.cache.keys import Keys
from service.store.db import open_database
from service.store.migrate import migrate

__all__ = [
    "DEFAULT_POSTGRES_URL", "FULL", "POSTGRES_URL_ENV", "PREFIX", "QUICK", "SCHEDULER_QUEUE",
    "TARGETS", "Plan", "PostgresStageUnavailable", "run",
]  # fmt: skip


def run(redis_url: str, plan: Plan, postgres_url: str | None = None) -> dict[str, Any]:
    """The whole benchmark: FULL for the issues' sizes, QUICK to check that it runs.
    Raises PostgresStageUnavailable, before measuring anything, when the PostgreSQL
    server does not answer or will not make the bench's database."""
    restart_clock()
    started = time.perf_counter()
    server = None if postgres_url is None else BenchServer(postgres_url)
    try:
        report = _run(redis_url, plan, server)
    finally:
        if server is not None:
            server.drop()
    report["targets"] = TARGETS
    report["seconds"] = round(time.perf_counter() - started, 1)
    return report


def _run(redis_url: str, plan: Plan, server: BenchServer | None) -> dict[str, Any]:
    backends: dict[str, dict[str, Any]] = {SQLITE: _sections()}
    if server is not None:
        backends[POSTGRESQL] = {"server": server.shown, **_sections()}
    report: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "prioritizer": prioritizer.measure(plan.prioritizer_sizes),
        "backends": backends,
    }
    keys = Keys(PREFIX)
    redis = Redis.from_url(redis_url)
    clear_keys(redis, keys)
    with tempfile.TemporaryDirectory(prefix="goalstore-bench-") as tmp:
        work = Path(tmp)
        sqlite = Stage(SQLITE, open_database(work / "bench.db", busy_timeout_ms=30_000), work,
                       redis_url, redis)  # fmt: skip
        stages = [sqlite]
        try:
            migrate(sqlite.db)
            for backend, figure in fallback_read.measure_all(work, server, plan.requests).items():
                backends[backend]["fallback_read"] = figure
            for backend, figure in trees.measure_all(work, server, plan).items():
                backends[backend]["trees"] = figure
            _by_size(plan, stages, server, backends, work, redis_url)
            for stage in stages:
                backends[stage.backend]["select"] = selection.measure(stage, plan.selections)
            runs = {s.backend: create.measure(s, CREATE_WEBS[s.backend], plan.creates)
                    for s in stages}  # fmt: skip
            report["create"] = create.compare(runs)
        finally:
            for stage in stages:
                stage.close()
            clear_keys(redis, keys)
            redis.close()
    return report


def _sections() -> dict[str, Any]:
    return {"load": {}, "rebuild": {}, "ranked_read": {}}


def _by_size(
    plan: Plan, stages: list[Stage], server: BenchServer | None,
    backends: dict[str, dict[str, Any]], work: Path, redis_url: str,
) -> None:  # fmt: skip
    """At each read size: the SQLite store loaded up to it and copied into a new
    PostgreSQL schema (before anything else writes to it: both hold the same goals),
    then each backend's rebuild and ranked read (and, at the smallest size, events).
    `stages` gains the PostgreSQL stage at the first copy."""
    sqlite, loaded, schema = stages[0], 0, ""
    for size in sorted(plan.read_sizes):
        name = label(size)
        progress(f"sqlite: loading {size - loaded} goals (create + adopt; {size} in all)")
        began = time.perf_counter()
        load_goals(sqlite.db, loaded, size - loaded, random.Random(size))
        seconds = time.perf_counter() - began
        backends[SQLITE]["load"][name] = {
            "goals": size - loaded, "via": "commands", "seconds": round(seconds, 3),
            "goals_per_s": round((size - loaded) / seconds),
        }  # fmt: skip
        loaded = size
        if server is not None:
            progress(f"postgresql: copying the SQLite store into schema size_{name}")
            copied = server.copy(sqlite.db, f"size_{name}")
            backends[POSTGRESQL]["load"][name] = copied.report
            if len(stages) == 1:
                stages.append(Stage(POSTGRESQL, copied.db, work, redis_url, sqlite.redis))
            else:  # the previous size's schema is done with
                stages[1].db.close()
                stages[1].use(copied.db)
                server.drop_schema(schema)
            schema = copied.schema
        for stage in stages:
            out = backends[stage.backend]
            out["rebuild"][name] = rebuild.measure(stage, size)
            out["ranked_read"][name] = ranked_read.measure(stage, size, plan.requests)
            if size == (plan.mcp_size or min(plan.read_sizes)):  # ranked_goals, over MCP
                out["mcp"] = mcp.measure(stage, size, plan.requests)
                out["console"] = console.measure(stage, size, plan.requests)
            if size == min(plan.read_sizes):
                out["events"] = events.measure(stage, plan.lag_samples, plan.burst)
                out["events"]["goals_in_store"] = loaded + plan.burst
