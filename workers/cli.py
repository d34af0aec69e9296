"""`goalstore`, the whole program: the commands of service/cli and the processes.

`goalstore serve|worker|scheduler|selector` start the Procfile's processes, which
run the workers of this package; they are added here, beside the workers, so that
nothing under service/ imports workers/. The console script is `main` below.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from service import cli
from service.auth import anonymous_exposure
from service.cli.output import EXIT_OK, EXIT_USAGE, emit, fail
from service.runtime import Services


def cmd_serve(args: argparse.Namespace, services: Services) -> int:
    """The API; with GOALSTORE_REDIS_URL unset, in the embedded mode (workers/embedded.py)."""
    import uvicorn

    from service.api.app import create_app
    from workers.embedded import Embedded, embedded_redis

    settings = services.settings
    host = args.host or settings.host
    refusal = anonymous_exposure(host, services.api_keys, settings.allow_anonymous)
    if refusal is not None:
        return fail(EXIT_USAGE, "configuration", refusal)
    port = args.port if args.port is not None else settings.port
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # a wildcard bind: show loopback
    logging.getLogger("goalstore.serve").info(
        "the console: http://%s:%d/ui (the API: /v1, its reference: /docs)", shown, port
    )
    embedded = None
    if services.redis is None:
        services = replace(services, redis=embedded_redis())
        embedded = Embedded(services)
    uvicorn.run(
        create_app(services, background=embedded),
        host=host,
        port=port,
        log_config=None,  # keep our JSON log lines
        access_log=False,
    )
    return EXIT_OK


def cmd_worker(args: argparse.Namespace, services: Services) -> int:
    from workers import events  # imported on use: each process loads only its own parts

    services.require_redis("the events worker")
    emit(events.run(services, burst=args.burst))
    return EXIT_OK


def cmd_scheduler(args: argparse.Namespace, services: Services) -> int:
    from workers import scheduler

    services.require_redis("the scheduler worker")
    emit(scheduler.run(services, burst=args.burst))
    return EXIT_OK


def cmd_selector(args: argparse.Namespace, services: Services) -> int:
    from workers import scheduler

    services.require_redis("the selector")
    if services.settings.scheduler_depth <= 0:
        needs = "the selector needs GOALSTORE_SCHEDULER_DEPTH > 0"
        return fail(EXIT_USAGE, "configuration", needs)
    emit(scheduler.top_up(services, once=args.once))
    return EXIT_OK


def embed(services: Services) -> tuple[Services, Any]:
    """`goalstore mcp` without Redis: the embedded mode of `goalstore serve`."""
    from workers.embedded import Embedded, embedded_redis

    services = replace(services, redis=embedded_redis())
    return services, Embedded(services)


def add_commands(sub: Any) -> None:
    sub.choices["mcp"].set_defaults(embed=embed)  # service/cli/mcp.py
    serve = sub.add_parser("serve", help="run the REST API")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.set_defaults(run=cmd_serve)

    worker = sub.add_parser(
        "worker", help="relay outbox events to RQ and keep the Redis ranking current"
    )
    worker.add_argument("--burst", action="store_true", help="apply everything pending, then exit")
    worker.set_defaults(run=cmd_worker)
    scheduler = sub.add_parser(
        "scheduler", help="RQ worker on the scheduler queue: run tasks, notice dead jobs"
    )
    scheduler.add_argument("--burst", action="store_true", help="run what is queued, then exit")
    scheduler.set_defaults(run=cmd_scheduler)
    selector = sub.add_parser(
        "selector", help="keep the scheduler queue GOALSTORE_SCHEDULER_DEPTH deep"
    )
    selector.add_argument("--once", action="store_true", help="top it up once, then exit")
    selector.set_defaults(run=cmd_selector)


GROUPS = (*cli.GROUPS, add_commands)


def build_parser() -> argparse.ArgumentParser:
    """The parser of the whole `goalstore` program."""
    return cli.build_parser(GROUPS)


def main(argv: Sequence[str] | None = None) -> int:
    return cli.main(argv, groups=GROUPS)


if __name__ == "__main__":
    sys.exit(main())
