"""`goalstore`: JSON on stdout, logs on stderr, and exit codes a script can act on.

Exit codes: 0 done; 1 a check failed (ledger verify, replay --check, a scenario);
2 usage; 3 not found; 4 conflict (version, state, duplicate); 5 invalid input.
"""

from __future__ import annotations

import argparse
import logging
import sqlite3
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError
from redis.exceptions import RedisError

from service import commands
from service.api.schemas import GoalPublic, LedgerEventPublic
from service.commands import Context
from service.config import Settings, settings_problems
from service.domain.errors import (
    BeliefNotFound,
    DecisionNotFound,
    GoalAlreadyExists,
    GoalNotFound,
    GoalStoreError,
    IllegalTransition,
    InvalidInput,
    PreconditionRequired,
    VersionConflict,
)
from service.domain.goal import Goal, GoalCategory, GoalState
from service.domain.inputs import GoalCreate, GoalUpdate
from service.domain.ledger import Checkpoint
from service.logs import configure_logging
from service.runtime import Services, build_services
from service.scenario import UnsafePath, apply_scenario, load_scenario
from service.store.migrate import MigrationError, ensure_schema, migrate

log = logging.getLogger("goalstore")

EXIT_OK, EXIT_CHECK_FAILED, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_CONFLICT, EXIT_INVALID = range(6)


def emit(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


def _goal(goal: Goal) -> dict[str, Any]:
    return GoalPublic.of(goal).model_dump(mode="json")


def _read_json(source: str) -> Any:
    data = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
    return orjson.loads(data)


def _ctx(args: argparse.Namespace) -> Context:
    return Context(actor=args.actor)


# --- subcommands: each takes the parsed args and the services, returns an exit code ---


def cmd_serve(args: argparse.Namespace, services: Services) -> int:
    """The API; with GOALSTORE_REDIS_URL unset, in the embedded mode (workers/embedded.py)."""
    import uvicorn

    from service.api.app import create_app
    from workers.embedded import Embedded, embedded_redis

    settings = services.settings
    embedded = None
    if services.redis is None:
        services = replace(services, redis=embedded_redis())
        embedded = Embedded(services)
    uvicorn.run(
        create_app(services, background=embedded),
        host=args.host or settings.host,
        port=args.port if args.port is not None else settings.port,
        log_config=None,  # keep our JSON log lines
        access_log=False,
    )
    return EXIT_OK


def cmd_worker(args: argparse.Namespace, services: Services) -> int:
    from workers import events

    if services.settings.redis_url is None:
        return _fail(
            EXIT_USAGE, "configuration", "GOALSTORE_REDIS_URL is unset: the worker needs Redis"
        )
    emit(events.run(services, burst=args.burst))
    return EXIT_OK


def cmd_scheduler(args: argparse.Namespace, services: Services) -> int:
    from workers import scheduler

    if services.settings.redis_url is None:
        return _fail(EXIT_USAGE, "configuration", "GOALSTORE_REDIS_URL is unset: it needs Redis")
    emit(scheduler.run(services, burst=args.burst))
    return EXIT_OK


def cmd_selector(args: argparse.Namespace, services: Services) -> int:
    from workers import scheduler

    if services.settings.redis_url is None or services.settings.scheduler_depth <= 0:
        needs = "the selector needs GOALSTORE_REDIS_URL and GOALSTORE_SCHEDULER_DEPTH > 0"
        return _fail(EXIT_USAGE, "configuration", needs)
    emit(scheduler.top_up(services, once=args.once))
    return EXIT_OK


def cmd_select(args: argparse.Namespace, services: Services) -> int:
    selection = services.selector.select(_ctx(args))
    emit({"mode": selection.mode, "goal_id": selection.goal.id if selection.goal else None,
          "task_id": selection.task.task_id if selection.task else None,
          "skipped": [list(s) for s in selection.skipped]})  # fmt: skip
    return EXIT_OK


def cmd_bench(args: argparse.Namespace, services: Services) -> int:
    from service import bench

    url = args.redis_url or services.settings.redis_url
    if url is None:
        return _fail(EXIT_USAGE, "configuration", "bench needs Redis: set GOALSTORE_REDIS_URL")
    emit(bench.run(url, bench.QUICK if args.quick else bench.FULL))
    return EXIT_OK


def cmd_migrate(args: argparse.Namespace, services: Services) -> int:
    applied = migrate(services.db)
    emit({"applied": applied, "database": str(services.db.path)})
    return EXIT_OK


def cmd_goals_list(args: argparse.Namespace, services: Services) -> int:
    page = commands.list_goals(
        services.db,
        state=args.state,
        category=args.category,
        include_deleted=args.include_deleted,
        cursor=args.cursor,
        limit=args.limit,
    )
    next_cursor = None if page.next_cursor is None else str(page.next_cursor)
    emit({"data": [_goal(g) for g in page.goals], "count": page.count,
          "next_cursor": next_cursor})  # fmt: skip
    return EXIT_OK


def cmd_goals_show(args: argparse.Namespace, services: Services) -> int:
    emit(_goal(commands.get_goal(services.db, args.goal_id, include_deleted=True)))
    return EXIT_OK


def cmd_goals_create(args: argparse.Namespace, services: Services) -> int:
    spec = GoalCreate.model_validate(_read_json(args.file))
    emit(_goal(commands.create_goal(services.db, _ctx(args), spec)))
    return EXIT_OK


def cmd_goals_update(args: argparse.Namespace, services: Services) -> int:
    patch = GoalUpdate.model_validate(_read_json(args.file))
    change = commands.update_goal(
        services.db, _ctx(args), args.goal_id, patch, args.expected_version
    )
    emit(_goal(change.goal) | {"changed": change.changed})
    return EXIT_OK


Command = Callable[..., commands.Change]


def _state_command(pick: Callable[[Services], Command]) -> Callable[..., int]:
    """`pick` chooses the command with the services at hand (adopt: the configured
    checker and threshold, as the API uses them)."""

    def run(args: argparse.Namespace, services: Services) -> int:
        change = pick(services)(services.db, _ctx(args), args.goal_id, args.expected_version)
        emit(_goal(change.goal) | {"changed": change.changed, "warnings": list(change.warnings)})
        return EXIT_OK

    return run


def cmd_ledger_verify(args: argparse.Namespace, services: Services) -> int:
    checkpoint = Checkpoint.parse(args.checkpoint) if args.checkpoint else None
    report = commands.verify_ledger(services.db, checkpoint)
    emit(report.as_dict())
    if not report.ok:
        log.error("ledger broken at seq %s: %s (%s)", report.first_bad_seq, report.damage,
                  report.reason)  # fmt: skip
    return EXIT_OK if report.ok else EXIT_CHECK_FAILED


def cmd_ledger_timeline(args: argparse.Namespace, services: Services) -> int:
    rows = commands.goal_history(services.db, args.goal_id, limit=args.limit)
    emit({"goal_id": args.goal_id,
          "data": [LedgerEventPublic.of(r).model_dump(mode="json") for r in rows]})  # fmt: skip
    return EXIT_OK


def cmd_ledger_checkpoint(args: argparse.Namespace, services: Services) -> int:
    checkpoint = commands.ledger_checkpoint(services.db)
    emit({"seq": checkpoint.seq, "hash": checkpoint.hash, "checkpoint": str(checkpoint)})
    return EXIT_OK


def cmd_ledger_replay(args: argparse.Namespace, services: Services) -> int:
    report = commands.replay_check(services.db)
    emit({"ok": report.ok, "goals": report.goals, "differences": report.differences})
    return EXIT_OK if report.ok else EXIT_CHECK_FAILED


def cmd_cache_rebuild(args: argparse.Namespace, services: Services) -> int:
    cache = services.cache
    if cache is None:
        return _fail(
            EXIT_USAGE, "error", "GOALSTORE_REDIS_URL is unset: there is no Redis to rebuild"
        )
    emit(commands.rebuild_cache(services.db, cache))
    return EXIT_OK


def cmd_apply_scenario(args: argparse.Namespace, services: Services) -> int:
    scenario = load_scenario(args.file, Path.cwd())
    result = apply_scenario(services.db, scenario)
    emit(result)
    return EXIT_OK if result["ok"] else EXIT_CHECK_FAILED


# --- parser --------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="goalstore", description=__doc__.splitlines()[0])
    parser.add_argument("--database", type=Path, help="SQLite file (default: $GOALSTORE_DATABASE)")
    parser.add_argument("--actor", default="cli", help="who the ledger records (default: cli)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the REST API")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.set_defaults(run=cmd_serve)

    sub.add_parser("migrate", help="apply pending migrations").set_defaults(run=cmd_migrate)
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
    sub.add_parser("select", help="select one goal now (as POST /v1/goals/select)").set_defaults(
        run=cmd_select
    )
    bench = sub.add_parser(
        "bench", help="measure the ranking targets; JSON on stdout, progress on stderr"
    )
    bench.add_argument("--quick", action="store_true", help="small sizes: check that it runs")
    bench.add_argument("--redis-url", help="Redis to use (default: GOALSTORE_REDIS_URL)")
    bench.set_defaults(run=cmd_bench)

    goals = sub.add_parser("goals", help="manage goals").add_subparsers(
        dest="goals_command", required=True, metavar="ACTION"
    )
    listing = goals.add_parser("list", help="list goals")
    listing.add_argument("--state", choices=[s.value for s in GoalState])
    listing.add_argument("--category", choices=[c.value for c in GoalCategory])
    listing.add_argument("--include-deleted", action="store_true")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--cursor", type=int, default=0)
    listing.set_defaults(run=cmd_goals_list)
    show = goals.add_parser("show", help="show one goal")
    show.add_argument("goal_id")
    show.set_defaults(run=cmd_goals_show)
    create = goals.add_parser("create", help="create a goal from a JSON file (- for stdin)")
    create.add_argument("file")
    create.set_defaults(run=cmd_goals_create)
    update = goals.add_parser("update", help="change a goal from a JSON file (- for stdin)")
    update.add_argument("goal_id")
    update.add_argument("file")
    update.add_argument("--expected-version", type=int, required=True)
    update.set_defaults(run=cmd_goals_update)
    for name, action in (
        ("adopt", lambda services: partial(commands.adopt_goal, vetting=services.vetting)),
        ("abandon", lambda services: commands.abandon_goal),
        ("delete", lambda services: commands.delete_goal),
    ):
        state = goals.add_parser(name, help=f"{name} a goal")
        state.add_argument("goal_id")
        state.add_argument("--expected-version", type=int)
        state.set_defaults(run=_state_command(action))

    ledger = sub.add_parser("ledger", help="audit the ledger").add_subparsers(
        dest="ledger_command", required=True, metavar="ACTION"
    )
    verify = ledger.add_parser("verify", help="check the hash chain")
    verify.add_argument("--checkpoint", help="SEQ:HASH from `ledger checkpoint`")
    verify.set_defaults(run=cmd_ledger_verify)
    timeline = ledger.add_parser("timeline", help="one goal's events")
    timeline.add_argument("--goal-id", required=True)
    timeline.add_argument("--limit", type=int, default=1000)
    timeline.set_defaults(run=cmd_ledger_timeline)
    ledger.add_parser("checkpoint", help="print the head hash to anchor elsewhere").set_defaults(
        run=cmd_ledger_checkpoint
    )
    replay = ledger.add_parser("replay", help="rebuild goals from the ledger and compare")
    replay.add_argument("--check", action="store_true", required=True)
    replay.set_defaults(run=cmd_ledger_replay)

    cache = sub.add_parser("cache", help="the Redis ranking cache").add_subparsers(
        dest="cache_command", required=True, metavar="ACTION"
    )
    cache.add_parser("rebuild", help="rebuild the Redis ranking from SQLite").set_defaults(
        run=cmd_cache_rebuild
    )

    scenario = sub.add_parser("apply-scenario", help="replay a JSON scenario of commands")
    scenario.add_argument("file", help="path relative to the working directory")
    scenario.set_defaults(run=cmd_apply_scenario)
    return parser


def _fail(code: int, kind: str, detail: str, **extra: Any) -> int:
    emit({"error": kind, "detail": detail, **extra})
    log.error("%s: %s", kind, detail)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings()
        if args.database is not None:
            settings = settings.model_copy(update={"database": args.database})
        configure_logging(settings.log_level)
        services = build_services(settings)
    except ValidationError as exc:
        return _fail(EXIT_USAGE, "configuration", settings_problems(exc))
    except ValueError as exc:  # e.g. a malformed GOALSTORE_API_KEYS entry
        return _fail(EXIT_USAGE, "configuration", str(exc))
    try:
        if args.command not in ("serve", "migrate", "bench"):
            ensure_schema(services.db)
        code: int = args.run(args, services)
        return code
    except (GoalNotFound, BeliefNotFound, DecisionNotFound) as exc:
        return _fail(EXIT_NOT_FOUND, "not_found", str(exc))
    except (VersionConflict, IllegalTransition, GoalAlreadyExists) as exc:
        return _fail(EXIT_CONFLICT, "conflict", str(exc))
    except InvalidInput as exc:
        return _fail(EXIT_INVALID, "invalid", str(exc), errors=[e.as_dict() for e in exc.errors])
    except ValidationError as exc:
        errors = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]
        return _fail(EXIT_INVALID, "invalid", f"{exc.error_count()} validation error(s)",
                     errors=errors)  # fmt: skip
    except (PreconditionRequired, UnsafePath, orjson.JSONDecodeError, ValueError) as exc:
        return _fail(EXIT_INVALID, "invalid", str(exc))
    except (OSError, MigrationError, RedisError, sqlite3.Error) as exc:
        return _fail(EXIT_USAGE, "error", str(exc))
    except GoalStoreError as exc:  # a new domain error nobody mapped yet
        return _fail(EXIT_CONFLICT, "error", str(exc))
    finally:
        services.close()


if __name__ == "__main__":
    sys.exit(main())
