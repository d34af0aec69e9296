"""`goalstore bench` runs end to end at tiny sizes, on SQLite and on PostgreSQL side by
side: every figure beside its target, the create run's requests all written and its
ledger whole, then it cleans up after itself (its Redis keys and queues, its PostgreSQL
database). The real figures, measured with the full sizes, are in docs/benchmarks.md."""

from __future__ import annotations

import os
from typing import Any

import psycopg
import pytest
from redis import Redis

from service import bench, cli
from service.bench import rebuild
from service.bench.postgres import schema_url
from service.store.postgres import redact

pytestmark = pytest.mark.e2e

REDIS_URL = os.environ.get("GOALSTORE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
POSTGRES_URL = os.environ.get(
    "GOALSTORE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
SIZES = ("100", "200")
BURST, SELECTIONS, CREATES = 50, 40, 64
TREE_LEAVES, CHILDREN, DECOMPOSITIONS = 5, 10, 3
PLAN = bench.Plan((100, 200), (100,), requests=10, lag_samples=5, burst=BURST,
                  selections=SELECTIONS, creates=CREATES, tree_branching=3, tree_depth=3,
                  tree_leaves=TREE_LEAVES, decompose_children=CHILDREN,
                  decompose_runs=DECOMPOSITIONS)  # fmt: skip


def bench_databases() -> list[str]:
    """The databases this process's bench runs made on the tests' server."""
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s",
            (f"goalstore_bench_{os.getpid()}_%",),
        ).fetchall()
    return [row[0] for row in rows]


def test_bench_reports_both_backends_beside_their_targets(redis_client: Redis) -> None:
    report = bench.run(REDIS_URL, PLAN, POSTGRES_URL)

    assert {"100"} == set(report["prioritizer"])
    assert {"sqlite", "postgresql"} == set(report["backends"])
    for backend, figures in report["backends"].items():
        assert set(SIZES) == set(figures["load"]) == set(figures["rebuild"])
        assert set(SIZES) == set(figures["ranked_read"])
        for size in SIZES:
            check_rebuild(figures["rebuild"][size], backend)
            check_memory(figures["rebuild"][size]["memory"], int(size))
            check_ranked_read(figures["ranked_read"][size])
        check_events(figures["events"])
        check_select(figures["select"])
        check_fallback_read(figures["fallback_read"])
        check_mcp(figures["mcp"])
        check_console(figures["console"])
        check_trees(figures["trees"], backend)
    check_load(report["backends"])
    check_create(report["create"])
    assert redact(POSTGRES_URL) == report["backends"]["postgresql"]["server"]  # no password
    assert {"rebuild_100k_sqlite_s", "rebuild_100k_postgresql_s", "create_p99_ms",
            "create_postgresql_over_sqlite_throughput",
            "cache_bytes_per_100k_goals", "tree_leaf_rollup_p95_ms",
            "tree_decompose_100_p95_ms", "console_ranking_page_p95_ms",
            "console_refresh_bytes"} <= set(report["targets"])  # fmt: skip
    # cleaned up: keys, queues, the PostgreSQL database
    assert [] == list(redis_client.scan_iter(match=f"{bench.PREFIX}*"))
    assert not redis_client.exists(f"rq:queue:{bench.SCHEDULER_QUEUE}")
    for backend in ("sqlite", "postgresql"):
        assert not redis_client.exists(f"rq:queue:goalstore-bench-events-{backend}")
    assert b"rq:queue:goalstore-events" not in redis_client.smembers("rq:queues")  # never the
    assert [] == bench_databases()  # real workers' queue; the bench's database dropped


def check_rebuild(rebuilt: dict[str, Any], backend: str) -> None:
    assert 3 == len(rebuilt["cold_runs_s"]) == len(rebuilt["warm_runs_s"]), backend
    assert 0 < min(rebuilt["first_s"], *rebuilt["cold_runs_s"], *rebuilt["warm_runs_s"])
    assert 7 == len(rebuilt["redis_in_scripts_s"])
    # Redis's time in scripts is part of each run's time
    runs = [rebuilt["first_s"], *rebuilt["cold_runs_s"], *rebuilt["warm_runs_s"]]
    assert all(0 < r <= t for r, t in zip(rebuilt["redis_in_scripts_s"], runs, strict=True))
    assert "met" not in rebuilt  # targets only from 100k goals up


def check_memory(memory: dict[str, Any], size: int) -> None:
    """The memory the rebuilt cache takes in Redis: every goal the rebuild wrote (the
    store's, at least the size), and the bytes per goal its growth makes. (Not asserted
    positive: other work on the same Redis server moves used_memory too.)"""
    assert size <= memory["goals"]
    assert isinstance(memory["redis_used_memory_bytes"], int)
    per_goal = memory["redis_used_memory_bytes"] / memory["goals"]
    assert per_goal == pytest.approx(memory["bytes_per_goal"], abs=0.1)
    assert round(per_goal * 100_000) == pytest.approx(memory["bytes_per_100k_goals"], abs=10)
    assert "used_memory" in memory["method"]
    assert "met" not in memory  # the target only from 100k goals up


def check_ranked_read(read: dict[str, Any]) -> None:
    http, raw = read["http_prioritized"], read["raw_zrevrange"]
    assert 10 == http["runs"] == raw["runs"]
    assert 0 < http["p50_ms"] <= http["p95_ms"]
    assert (http["p95_ms"] <= 5.0) == read["met"]


def check_events(events: dict[str, Any]) -> None:
    assert 2 * BURST == events["throughput"]["events"]
    assert 0 < events["throughput"]["written_in_s"]
    assert 5 == events["lag"]["runs"]
    assert (events["lag"]["p95_ms"] <= 100.0) == events["lag"]["met"]


def check_select(select: dict[str, Any]) -> None:
    assert {"one_per_call", "selector_batches"} == set(select)
    for run in select.values():
        assert (SELECTIONS, True, SELECTIONS) == (
            run["emitted"],
            run["exactly_once"],
            run["jobs_queued"],
        )
        assert (run["goals_per_s"] >= 500) == run["met"]
    assert 1 == select["one_per_call"]["goals_per_call"]
    assert 1 < select["selector_batches"]["goals_per_call"]


def check_fallback_read(figure: dict[str, Any]) -> None:
    """Seed 000's "p95 <= 80 ms for 1k goals with the DB fetch": the store's ranked read,
    timed over 1,000 goals whatever the plan's sizes, beside its target."""
    timing = figure["store_prioritized"]
    assert (1000, 80.0, PLAN.requests) == (figure["goals"], figure["target_p95_ms"],
                                           timing["runs"])  # fmt: skip
    assert 0 < timing["p50_ms"] <= timing["p95_ms"]
    assert (timing["p95_ms"] <= 80.0) == figure["met"]


def check_console(figure: dict[str, Any]) -> None:
    """The ranking page timed beside REST's read; the refresh's size as served, compressed."""
    page, rest = figure["ranking_page"], figure["rest_prioritized"]
    assert 0 < page["p50_ms"] <= page["p95_ms"]
    assert 0 < rest["p50_ms"] <= rest["p95_ms"]
    assert "gzip" == figure["refresh_encoding"]
    assert 0 < figure["refresh_bytes"] < figure["page_bytes"]
    assert figure["met"] == (
        page["p95_ms"] <= figure["target_p95_ms"]
        and figure["refresh_bytes"] <= figure["target_refresh_bytes"]
    )


def check_mcp(figure: dict[str, Any]) -> None:
    """The ranked read as an agent makes it (ranked_goals over Streamable HTTP), timed
    beside REST's in the same run, at the smallest read size of the plan."""
    tool, rest = figure["mcp_ranked_goals"], figure["rest_prioritized"]
    assert (min(int(s) for s in SIZES), PLAN.requests, PLAN.requests, 10.0) == (
        figure["goals"], tool["runs"], rest["runs"], figure["target_p95_ms"]
    )  # fmt: skip
    assert 0 < figure["items"] <= figure["goals"]
    assert 0 < tool["p50_ms"] <= tool["p95_ms"] and 0 < rest["p50_ms"] <= rest["p95_ms"]
    assert (tool["p95_ms"] <= 10.0) == figure["met"]


def check_trees(figure: dict[str, Any], backend: str) -> None:
    """A tree of 3 children a goal, 3 levels (1+3+9 goals), built through decompose_goal
    on SQLite and copied into PostgreSQL; the first 5 of its 9 leaves verified then
    satisfied, each timed; decompositions into 10 children, 3 times."""
    via = {"sqlite": "decompose_goal", "postgresql": "store copy"}[backend]
    assert {"goals": 13, "depth": 3, "branching": 3, "via": via}.items() <= figure["tree"].items()
    rollup, decompose = figure["leaf_rollup"], figure["decompose"]
    for timing in (rollup["verify"], rollup["satisfy"], decompose):
        assert 0 < timing["p50_ms"] <= timing["p95_ms"]
    assert (TREE_LEAVES, TREE_LEAVES) == (rollup["verify"]["runs"], rollup["satisfy"]["runs"])
    # equal values: the root is the mean of its children's means, (3/3 + 2/3 + 0/3) / 3
    assert round(5 / 9, 9) == rollup["root_progress"]
    slowest = max(rollup["verify"]["p95_ms"], rollup["satisfy"]["p95_ms"])
    assert (slowest <= 20.0) == rollup["met"]
    assert (CHILDREN, DECOMPOSITIONS) == (decompose["children"], decompose["runs"])
    assert (decompose["p95_ms"] <= 50.0) == decompose["met"]


def check_load(backends: dict[str, Any]) -> None:
    """SQLite is loaded through the commands, 100 goals a size; PostgreSQL gets a copy of
    it as it stands: at 200, SQLite's 200 goals and its burst's 50 (made at 100)."""
    sqlite, postgresql = backends["sqlite"]["load"], backends["postgresql"]["load"]
    assert [100, 100] == [sqlite[size]["goals"] for size in SIZES]
    assert [100, 200 + BURST] == [postgresql[size]["goals"] for size in SIZES]
    assert {"commands"} == {sqlite[s]["via"] for s in SIZES}
    assert {"store copy"} == {postgresql[s]["via"] for s in SIZES}
    for load in [*sqlite.values(), *postgresql.values()]:
        assert 0 < load["seconds"] and 0 < load["goals_per_s"]


def check_create(create: dict[str, Any]) -> None:
    assert {"sqlite", "postgresql", "postgresql_over_sqlite_throughput"} == set(create)
    assert (1, 3) == (create["sqlite"]["webs"], create["postgresql"]["webs"])
    for run in (create["sqlite"], create["postgresql"]):
        assert 16 == run["clients"]
        # every request answered 201, each a row in the store, and nothing more
        assert CREATES == run["requests"] == run["created"] == run["rows_written"]
        assert ({}, True, True) == (run["failed"], run["all_written"], run["ledger_ok"])
        # the loaded goals (2 events each), the burst's, and the created ones (1 each)
        assert 2 * (200 + BURST) + CREATES < run["ledger_events"]
        latency = run["latency"]
        assert CREATES == latency["runs"]
        assert 0 < latency["p50_ms"] <= latency["p95_ms"] <= latency["p99_ms"]
        assert 0 < run["requests_per_s"] and 0 <= run["client_cpu_share"]
        assert (latency["p99_ms"] <= 50.0) == run["met"]
    compared = create["postgresql_over_sqlite_throughput"]
    ratio = create["postgresql"]["requests_per_s"] / create["sqlite"]["requests_per_s"]
    assert round(ratio, 2) == pytest.approx(compared["ratio"], abs=0.01)
    assert (ratio >= 1.0) == compared["met"]


def test_the_memory_figure_is_held_to_its_target_from_100k_goals_up() -> None:
    """Per 100k goals against cache_bytes_per_100k_goals (60 MB): met at 58 MB for 100k
    goals, not at 61 MB; no target below 100k goals."""
    assert {"bytes_per_goal": 580.0, "bytes_per_100k_goals": 58_000_000, "met": True,
            "target_bytes_per_100k_goals": 60_000_000}.items() <= rebuild.memory(
        58_000_000, 100_000, True).items()  # fmt: skip
    assert not rebuild.memory(64_050_000, 105_000, True)["met"]  # 610 bytes a goal
    assert "met" not in rebuild.memory(60_000, 100, False)


def test_bench_without_redis_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("GOALSTORE_REDIS_URL", raising=False)

    assert cli.EXIT_USAGE == cli.main(["bench", "--quick"])
    assert "GOALSTORE_REDIS_URL" in capsys.readouterr().out


def test_bench_with_postgresql_not_answering_fails_before_measuring(
    redis_client: Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    """A server that does not answer: exit 6, naming the URL and the way to skip it."""
    url = "postgresql://postgres@127.0.0.1:1/postgres"

    code = cli.main(["bench", "--quick", "--redis-url", REDIS_URL, "--postgres-url", url])

    assert cli.EXIT_UNAVAILABLE == code
    out = capsys.readouterr().out
    assert url in out and "--no-postgres" in out
    assert [] == list(redis_client.scan_iter(match=f"{bench.PREFIX}*"))  # nothing started


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        ([], None, bench.DEFAULT_POSTGRES_URL),
        ([], "postgresql://bench@db:5433/postgres", "postgresql://bench@db:5433/postgres"),
        (["--postgres-url", "postgresql://x@h/p"], "postgresql://bench@db/p", "postgresql://x@h/p"),
        (["--no-postgres"], "postgresql://bench@db/p", None),
    ],
)
def test_the_postgresql_server_comes_from_the_flag_the_environment_or_the_default(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], env: str | None, expected: str | None
) -> None:
    given: list[str | None] = []

    def run(redis_url: str, plan: bench.Plan, postgres_url: str | None = None) -> dict[str, Any]:
        given.append(postgres_url)
        return {}

    monkeypatch.setattr(bench, "run", run)
    if env is None:
        monkeypatch.delenv("GOALSTORE_BENCH_POSTGRES_URL", raising=False)
    else:
        monkeypatch.setenv("GOALSTORE_BENCH_POSTGRES_URL", env)

    assert cli.EXIT_OK == cli.main(["bench", "--quick", "--redis-url", REDIS_URL, *argv])
    assert [expected] == given


def test_no_postgres_and_a_postgres_url_together_are_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["bench", "--no-postgres", "--postgres-url", "postgresql://x@h/p"])

    assert 2 == exit_.value.code


def test_schema_url_keeps_the_servers_url_but_its_database_and_search_path() -> None:
    """The role, host and parameters stay; any `options` the URL had are kept too."""
    assert "postgresql://postgres@127.0.0.1:5432/gb?options=-csearch_path%3Dsize_1k" == (
        schema_url("postgresql://postgres@127.0.0.1:5432/postgres", "gb", "size_1k")
    )
    assert (
        "postgresql://u:p%40w@h/gb?sslmode=require"
        "&options=-cstatement_timeout%3D5000%20-csearch_path%3Ds" == schema_url(
            "postgresql://u:p%40w@h/postgres?sslmode=require&options=-cstatement_timeout%3D5000",
            "gb", "s",
        )
    )  # fmt: skip
