"""`goalstore healthcheck [--extended]`: the deployment's parts checked, as one JSON report.

Exit 0 when healthy (warnings included), 1 when a check failed: the store does not
answer, the schema is behind (or ahead of this code), Redis is configured and does not
answer, or, with --extended, the hash chain is broken or the replay differs. The checks
are service/commands/health.py's.
"""

from __future__ import annotations

import argparse
from typing import Any

from service.cli.output import EXIT_CHECK_FAILED, EXIT_OK, emit, log
from service.runtime import Services


def cmd_healthcheck(args: argparse.Namespace, services: Services) -> int:
    report = services.goalstore.healthcheck(extended=args.extended)
    emit(report)
    if not report["ok"]:
        for name in report["failed"]:
            log.error("healthcheck: %s failed: %s", name,
                      report["checks"][name].get("detail", "see the report"))  # fmt: skip
        return EXIT_CHECK_FAILED
    return EXIT_OK


def add_commands(sub: Any) -> None:
    health = sub.add_parser(
        "healthcheck", help="check the store, schema, ledger, Redis, queues, outbox and cache"
    )
    health.add_argument(
        "--extended", action="store_true",
        help="also verify the whole hash chain and replay the goal table from the ledger",
    )  # fmt: skip
    health.set_defaults(run=cmd_healthcheck)
