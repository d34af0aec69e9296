"""`goalstore bench` runs end to end at tiny sizes: every figure beside its target, then it
cleans up after itself (the real figures, measured with the full sizes, are in
docs/benchmarks.md)."""

from __future__ import annotations

import os

import pytest
from redis import Redis

from service import bench, cli

pytestmark = pytest.mark.e2e


def test_bench_reports_each_figure_beside_its_target(redis_client: Redis) -> None:
    url = os.environ.get("GOALSTORE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    plan = bench.Plan((100, 200), (100,), requests=10, lag_samples=5, burst=50, selections=40)

    report = bench.run(url, plan)

    assert {"100"} == set(report["prioritizer"])
    assert {"100", "200"} == set(report["ranked_read"]) == set(report["rebuild"])
    for size in ("100", "200"):
        rebuilt = report["rebuild"][size]
        assert 3 == len(rebuilt["cold_runs_s"]) == len(rebuilt["warm_runs_s"])
        assert 0 < min(rebuilt["first_s"], *rebuilt["cold_runs_s"], *rebuilt["warm_runs_s"])
        assert 7 == len(rebuilt["redis_in_scripts_s"])
        # Redis's time in scripts is part of each run's time
        runs = [rebuilt["first_s"], *rebuilt["cold_runs_s"], *rebuilt["warm_runs_s"]]
        assert all(0 < r <= t for r, t in zip(rebuilt["redis_in_scripts_s"], runs, strict=True))
        read = report["ranked_read"][size]
        http, raw = read["http_prioritized"], read["raw_zrevrange"]
        assert 10 == http["runs"] == raw["runs"]
        assert 0 < http["p50_ms"] <= http["p95_ms"]
        assert (http["p95_ms"] <= bench.TARGETS["ranked_read_p95_ms"]) == read["met"]
    events = report["events"]
    assert 100 == events["throughput"]["events"]
    assert 5 == events["lag"]["runs"]
    assert (events["lag"]["p95_ms"] <= 100.0) == events["lag"]["met"]
    assert {"one_per_call", "selector_batches"} == set(report["select"])
    for select in report["select"].values():
        assert (40, True, 40) == (select["emitted"], select["exactly_once"], select["jobs_queued"])
        assert (select["goals_per_s"] >= 500) == select["met"]
    assert 1 == report["select"]["one_per_call"]["goals_per_call"]
    assert 1 < report["select"]["selector_batches"]["goals_per_call"]
    assert [] == list(redis_client.scan_iter(match=f"{bench.PREFIX}*"))  # cleaned up
    assert not redis_client.exists(f"rq:queue:{bench.SCHEDULER_QUEUE}")
    queues = redis_client.smembers("rq:queues")  # RQ registers every queue it has used
    assert b"rq:queue:goalstore-bench-events" in queues
    assert b"rq:queue:goalstore-events" not in queues  # never the real workers' queue


def test_bench_without_redis_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("GOALSTORE_REDIS_URL", raising=False)

    assert cli.EXIT_USAGE == cli.main(["bench", "--quick"])
    assert "GOALSTORE_REDIS_URL" in capsys.readouterr().out
