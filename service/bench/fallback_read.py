"""Seed 000's "p95 prioritize ≤ 80 ms for 1k goals with the DB fetch": the ranked read on
the store fallback path (`source: sqlite` or `postgresql`, what GET /v1/goals/prioritized
serves when Redis is unset, down, cold or behind), over a store of 1,000 adopted goals.

Timed in process, the HTTP stack left out (the ranked_read section times that on the
Redis path): `ranked_view()` with no cache, so each read is the DB fetch of every
adopted goal, their ranking, and the first page. Each backend reads a store of its own
holding the same 1,000 goals: SQLite a file loaded through the commands, PostgreSQL a
copy of it in a schema of the bench's database."""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path
from typing import Any

from service import commands
from service.bench.dataset import load_goals
from service.bench.plan import POSTGRESQL, SQLITE, TARGETS
from service.bench.postgres import BenchServer
from service.bench.stats import percentiles, progress, timed
from service.commands.kinds import RankingSource
from service.store.db import Database, open_database
from service.store.migrate import migrate

GOALS = 1_000
WARM_UP = 5


def measure_all(work: Path, server: BenchServer | None, runs: int) -> dict[str, dict[str, Any]]:
    """The figure on SQLite and, given a server, on PostgreSQL: by backend."""
    progress(f"fallback read: loading {GOALS} goals into a SQLite store of its own")
    sqlite = open_database(work / "fallback.db", busy_timeout_ms=30_000)
    try:
        migrate(sqlite)
        load_goals(sqlite, 0, GOALS, random.Random(GOALS))
        out = {SQLITE: measure(sqlite, SQLITE, runs)}
        if server is not None:
            copied = server.copy(sqlite, "fallback_1k")
            try:
                out[POSTGRESQL] = measure(copied.db, POSTGRESQL, runs)
            finally:
                copied.db.close()
                server.drop_schema(copied.schema)
    finally:
        sqlite.close()
    return out


def measure(db: Database, backend: str, runs: int) -> dict[str, Any]:
    progress(f"{backend}: ranked read from the store (no Redis) x{runs} over {GOALS} goals")

    def read() -> None:
        view = commands.ranked_view(db, None, max_lag=timedelta(seconds=60), limit=20)
        if view.source != RankingSource(backend) or len(view.items) != 20:
            raise RuntimeError(f"bench: the fallback read came from {view.source}")

    for _ in range(WARM_UP):
        read()
    figure = percentiles(timed(read, runs))
    target = TARGETS["fallback_read_1k_p95_ms"]
    return {"goals": GOALS, "store_prioritized": figure, "target_p95_ms": target,
            "met": figure["p95_ms"] <= target}  # fmt: skip
