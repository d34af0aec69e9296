"""`goalstore`: JSON on stdout, logs on stderr, and exit codes a script can act on.

Exit codes: 0 done; 1 a check failed (ledger verify, replay --check, a scenario);
2 usage or configuration; 3 not found; 4 conflict (version, state, duplicate);
5 invalid input; 6 a collaborator does not answer (checker, Redis, the queue);
7 not permitted (service/cli/output.py).
Each command group lives in its own module: setup (migrate, bench), goals (goals …,
select), audit (ledger …, cache rebuild, apply-scenario), store (store copy), health
(healthcheck); the processes (serve, worker, scheduler, selector) in workers/cli.py,
which is the `goalstore` script.
"""

from __future__ import annotations

import argparse
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

import orjson
import psycopg
from pydantic import ValidationError
from redis.exceptions import RedisError

from service.cli import annotate, audit, goals, health, mcp, setup, store, tasks
from service.cli.output import (
    EXIT_CHECK_FAILED,
    EXIT_CODE,
    EXIT_CONFLICT,
    EXIT_INVALID,
    EXIT_NOT_FOUND,
    EXIT_NOT_PERMITTED,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    fail,
)
from service.config import Settings, settings_problems
from service.domain.errors import ErrorKind, GoalStoreError
from service.logs import configure_logging
from service.runtime import build_services
from service.scenario import UnsafePath
from service.store.migrate import MigrationError

__all__ = [
    "EXIT_CHECK_FAILED", "EXIT_CODE", "EXIT_CONFLICT", "EXIT_INVALID", "EXIT_NOT_FOUND",
    "EXIT_NOT_PERMITTED", "EXIT_OK", "EXIT_UNAVAILABLE", "EXIT_USAGE", "GROUPS",
    "build_parser", "main",
]  # fmt: skip

# Commands that run on an older schema: they apply it, or work on databases of their own.
# healthcheck reports it; mcp migrates, as serve does
_ANY_SCHEMA = ("serve", "migrate", "bench", "store", "healthcheck", "mcp")


Group = Callable[[Any], None]  # adds a group's subcommands to the parser's subparsers
GROUPS: tuple[Group, ...] = (
    setup.add_commands, goals.add_commands, audit.add_commands, store.add_commands,
    health.add_commands, annotate.add_commands,
    tasks.add_commands,  # after goals: it adds `goals satisfy`
    mcp.add_commands,
)  # fmt: skip


def build_parser(groups: Sequence[Group] = GROUPS) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="goalstore", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database", help="SQLite file or postgresql:// URL (default: $GOALSTORE_DATABASE)"
    )
    parser.add_argument(
        "--actor",
        default="cli",
        help="who the ledger records (default: cli); the CLI acts as the admin operator, "
        "so it may change any goal whoever owns it",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_commands in groups:
        add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None, groups: Sequence[Group] = GROUPS) -> int:
    """Run one command. The `goalstore` script is workers.cli.main: these groups plus the
    process commands (serve, worker, scheduler, selector)."""
    args = build_parser(groups).parse_args(argv)
    try:
        settings = Settings()
        if args.database is not None:
            settings = settings.model_copy(update={"database": args.database})
        configure_logging(settings.log_level)
        services = build_services(settings)
    except ValidationError as exc:
        return fail(EXIT_USAGE, "configuration", settings_problems(exc))
    except ValueError as exc:  # e.g. a malformed GOALSTORE_API_KEYS entry
        return fail(EXIT_USAGE, "configuration", str(exc))
    try:
        if args.command not in _ANY_SCHEMA:
            services.goalstore.ensure_schema()
        code: int = args.run(args, services)
        return code
    except GoalStoreError as exc:
        return fail(EXIT_CODE[exc.kind], exc.kind.value, str(exc), **exc.fields())
    except ValidationError as exc:
        errors = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]
        return fail(EXIT_INVALID, "invalid", f"{exc.error_count()} validation error(s)",
                    errors=errors)  # fmt: skip
    except (UnsafePath, orjson.JSONDecodeError, ValueError) as exc:
        return fail(EXIT_INVALID, "invalid", str(exc))
    except RedisError as exc:  # e.g. `cache rebuild` with Redis down, or lost mid-way
        return fail(EXIT_UNAVAILABLE, ErrorKind.UNAVAILABLE.value, str(exc))
    except (OSError, MigrationError, sqlite3.Error, psycopg.Error) as exc:
        return fail(EXIT_USAGE, "error", str(exc))
    finally:
        services.close()
