"""`goalstore migrate|bench`: set the store up, measure the service (on SQLite and on
PostgreSQL side by side)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from service.cli.output import EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE, emit, fail
from service.domain.errors import ErrorKind, RedisRequired
from service.runtime import Services


def cmd_bench(args: argparse.Namespace, services: Services) -> int:
    from service import bench

    url = args.redis_url or services.settings.redis_url
    if url is None:
        raise RedisRequired("bench (or --redis-url)")
    postgres = None if args.no_postgres else (
        args.postgres_url or os.environ.get(bench.POSTGRES_URL_ENV) or bench.DEFAULT_POSTGRES_URL
    )  # fmt: skip
    try:
        report = bench.run(url, bench.QUICK if args.quick else bench.FULL, postgres)
    except bench.PostgresStageUnavailable as exc:
        if exc.answered:  # a server that refuses: the URL's role, a configuration matter
            return fail(EXIT_USAGE, ErrorKind.CONFIGURATION.value, str(exc))
        return fail(EXIT_UNAVAILABLE, ErrorKind.UNAVAILABLE.value, str(exc))
    emit(report)
    return EXIT_OK


def cmd_migrate(args: argparse.Namespace, services: Services) -> int:
    applied = services.goalstore.migrate()
    emit({"applied": applied, "database": services.db.shown})
    return EXIT_OK


def add_commands(sub: Any) -> None:
    sub.add_parser("migrate", help="apply pending migrations").set_defaults(run=cmd_migrate)
    bench = sub.add_parser(
        "bench", help="measure the ranking targets; JSON on stdout, progress on stderr"
    )
    bench.add_argument("--quick", action="store_true", help="small sizes: check that it runs")
    bench.add_argument("--redis-url", help="Redis to use (default: GOALSTORE_REDIS_URL)")
    postgres = bench.add_mutually_exclusive_group()
    postgres.add_argument(
        "--postgres-url",
        help="PostgreSQL server the bench makes (and drops) a database of its own on "
        "(default: $GOALSTORE_BENCH_POSTGRES_URL, else postgresql://postgres@127.0.0.1:5432/postgres)",
    )
    postgres.add_argument(
        "--no-postgres", action="store_true", help="measure SQLite alone (no PostgreSQL stage)"
    )
    bench.set_defaults(run=cmd_bench)
