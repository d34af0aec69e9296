"""`goalstore migrate|bench`: set the store up, measure the service."""

from __future__ import annotations

import argparse
from typing import Any

from service.cli.output import EXIT_OK, emit
from service.domain.errors import RedisRequired
from service.runtime import Services


def cmd_bench(args: argparse.Namespace, services: Services) -> int:
    from service import bench

    url = args.redis_url or services.settings.redis_url
    if url is None:
        raise RedisRequired("bench (or --redis-url)")
    emit(bench.run(url, bench.QUICK if args.quick else bench.FULL))
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
    bench.set_defaults(run=cmd_bench)
