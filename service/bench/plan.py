"""What `goalstore bench` runs and what it holds each figure to: the sizes of a run
(FULL for the issues' sizes, QUICK to check that it runs), the targets, the backends
and the names it works under (a Redis key prefix and queues of its own, never a real
worker's; a PostgreSQL database of its own)."""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = "goalstore-bench:"  # each backend's keys under PREFIX + its name + ":"
EVENTS_QUEUE = "goalstore-bench-events"  # each backend's worker on EVENTS_QUEUE-<backend>
SCHEDULER_QUEUE = "goalstore-bench-scheduler"
SELECTORS = 4  # selector processes started together for the selection runs

# The store-dependent sections run on each backend in turn, in this order.
SQLITE, POSTGRESQL = "sqlite", "postgresql"
# Where the PostgreSQL stage creates its database: --postgres-url, else this variable,
# else the default (the development machine's server, trust auth).
POSTGRES_URL_ENV = "GOALSTORE_BENCH_POSTGRES_URL"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

CREATE_CLIENTS = 16  # concurrent writers of the create run (threads, one connection each)
CREATE_WEBS = {SQLITE: 1, POSTGRESQL: 3}  # web processes the create run spreads them over

PRIORITIZER_TARGETS_P95_MS = {1_000: 2.0, 100_000: 150.0}
TARGETS = {
    "prioritizer_1k_p95_ms": 2.0,
    "prioritizer_100k_p95_ms": 150.0,
    # GET /v1/goals/prioritized, on either backend (the size: 100k goals)
    "ranked_read_p95_ms": 5.0,
    # the ranked read from the store, no Redis (seed 000: "<=80 ms with DB fetch"), 1k goals
    "fallback_read_1k_p95_ms": 80.0,
    "event_lag_p95_ms": 100.0,
    "events_per_s": 5000.0,
    # `goalstore cache rebuild` of 100k goals, read from each backend
    "rebuild_100k_sqlite_s": 2.0,
    "rebuild_100k_postgresql_s": 3.0,
    # Redis memory of the rebuilt cache (INFO used_memory grown by a rebuild into an
    # emptied prefix), per 100k goals: ~1.6 KB a goal before issue 17's smaller cache
    "cache_bytes_per_100k_goals": 60_000_000,
    # select + emit across the selector processes, every goal exactly once, either backend
    "select_goals_per_s": 500.0,
    # POST /v1/goals by CREATE_CLIENTS concurrent writers, on each backend
    "create_p99_ms": 50.0,
    # PostgreSQL's create throughput over 3 webs, as a multiple of SQLite's over 1 web
    # (the same run, the same requests): at least as many goals a second
    "create_postgresql_over_sqlite_throughput": 1.0,
    # the ranked_goals MCP tool over Streamable HTTP, one session (issue 19), 10k goals
    "mcp_ranked_goals_p95_ms": 10.0,
    # the console's ranking page (issue 20) at the MCP size: rendered, p95; and what one
    # refresh of its board moves (gzip)
    "console_ranking_page_p95_ms": 50.0,
    "console_refresh_bytes": 20_000,
    # goal trees (issue 18), a tree of 9,331 goals 6 levels deep: a leaf's task verified,
    # its progress rolled up to the root (and the leaf satisfied), commit to commit
    "tree_leaf_rollup_p95_ms": 20.0,
    # a goal decomposed into 100 children in one transaction
    "tree_decompose_100_p95_ms": 50.0,
}


@dataclass(frozen=True)
class Plan:
    read_sizes: tuple[int, ...]  # goals in the store for the ranked-read and rebuild runs
    prioritizer_sizes: tuple[int, ...]
    requests: int  # HTTP reads per size
    lag_samples: int  # changes timed one at a time through the worker
    burst: int  # goals created (2 events each) at once for the throughput run
    selections: int  # goals selected and emitted by the selector processes
    creates: int  # POST /v1/goals of the create run, per backend
    mcp_size: int = 0  # the read size at which ranked_goals is timed over MCP (0: the smallest)
    tree_branching: int = 6  # children a goal in the trees section's tree
    tree_depth: int = 6  # its levels (6 and 6: 9,331 goals)
    tree_leaves: int = 40  # leaves verified and satisfied, each timed
    decompose_children: int = 100  # children of each timed decomposition
    decompose_runs: int = 20


FULL = Plan((10_000, 100_000), (1_000, 100_000), requests=300, lag_samples=200, burst=5_000,
            selections=4_000, creates=4_000, mcp_size=10_000)  # fmt: skip
QUICK = Plan((500, 1_000), (1_000, 10_000), requests=50, lag_samples=20, burst=500,
             selections=200, creates=400, mcp_size=1_000, tree_depth=4, tree_leaves=30,
             decompose_runs=10)  # fmt: skip


def label(n: int) -> str:
    """A size as the report's key: 1000 -> "1k", 500 -> "500"."""
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)
