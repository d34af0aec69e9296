"""`goalstore ledger verify|timeline|checkpoint|replay`, `cache rebuild`, `apply-scenario`:
auditing what happened, and rebuilding or replaying it.

apply-scenario exits 0 when every step had its expected outcome, 1 when one did not,
4 when its first step was already applied (the scenario ran before: nothing written),
5 when the file (or --from-step) is invalid."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from service.api.schemas import LedgerEventPublic
from service.cli.output import (
    EXIT_CHECK_FAILED,
    EXIT_CONFLICT,
    EXIT_OK,
    EXIT_USAGE,
    emit,
    fail,
    log,
)
from service.domain.ledger import Checkpoint
from service.runtime import Services
from service.scenario import apply_scenario, load_scenario


def cmd_verify(args: argparse.Namespace, services: Services) -> int:
    checkpoint = Checkpoint.parse(args.checkpoint) if args.checkpoint else None
    report = services.goalstore.verify_ledger(checkpoint)
    emit(report.as_dict())
    if not report.ok:
        log.error("ledger broken at seq %s: %s (%s)", report.first_bad_seq, report.damage,
                  report.reason)  # fmt: skip
    return EXIT_OK if report.ok else EXIT_CHECK_FAILED


def cmd_timeline(args: argparse.Namespace, services: Services) -> int:
    if args.goal_id is None and args.trace_id is None and args.task_id is None:
        return fail(EXIT_USAGE, "usage", "name one of --goal-id, --trace-id, --task-id")
    rows = services.goalstore.timeline(goal_id=args.goal_id, trace_id=args.trace_id,
                                       task_id=args.task_id, after=args.after,
                                       limit=args.limit)  # fmt: skip
    next_after = rows[-1].seq if len(rows) == args.limit else None
    emit({"goal_id": args.goal_id, "trace_id": args.trace_id, "task_id": args.task_id,
          "data": [LedgerEventPublic.of(r).model_dump(mode="json") for r in rows],
          "next_after": next_after})  # fmt: skip
    return EXIT_OK


def cmd_checkpoint(args: argparse.Namespace, services: Services) -> int:
    checkpoint = services.goalstore.ledger_checkpoint()
    emit({"seq": checkpoint.seq, "hash": checkpoint.hash, "checkpoint": str(checkpoint)})
    return EXIT_OK


def cmd_replay(args: argparse.Namespace, services: Services) -> int:
    report = services.goalstore.replay_check()
    emit({"ok": report.ok, "goals": report.goals, "differences": report.differences})
    return EXIT_OK if report.ok else EXIT_CHECK_FAILED


def cmd_cache_rebuild(args: argparse.Namespace, services: Services) -> int:
    emit(services.goalstore.rebuild_cache())
    return EXIT_OK


def cmd_apply_scenario(args: argparse.Namespace, services: Services) -> int:
    scenario = load_scenario(args.file, Path.cwd())
    result = apply_scenario(services.goalstore, scenario, from_step=args.from_step)
    emit(result)
    if result.get("already_applied"):
        log.error("%s", result["failure"]["detail"])
        return EXIT_CONFLICT
    return EXIT_OK if result["ok"] else EXIT_CHECK_FAILED


def add_commands(sub: Any) -> None:
    ledger = sub.add_parser("ledger", help="audit the ledger").add_subparsers(
        dest="ledger_command", required=True, metavar="ACTION"
    )
    verify = ledger.add_parser("verify", help="check the hash chain")
    verify.add_argument("--checkpoint", help="SEQ:HASH from `ledger checkpoint`")
    verify.set_defaults(run=cmd_verify)
    timeline = ledger.add_parser(
        "timeline", help="the events of a goal, a trace or a task, oldest first (filters "
        "given together must all match)",
    )  # fmt: skip
    timeline.add_argument("--goal-id", help="a goal's events")
    timeline.add_argument("--trace-id", help="the events written in one trace")
    timeline.add_argument("--task-id", help="a task's: its selection, reports and reviews")
    timeline.add_argument("--after", type=int, default=0, help="only events after this seq")
    timeline.add_argument("--limit", type=int, default=1000)
    timeline.set_defaults(run=cmd_timeline)
    ledger.add_parser("checkpoint", help="print the head hash to anchor elsewhere").set_defaults(
        run=cmd_checkpoint
    )
    replay = ledger.add_parser("replay", help="rebuild goals from the ledger and compare")
    replay.add_argument("--check", action="store_true", required=True)
    replay.set_defaults(run=cmd_replay)

    cache = sub.add_parser("cache", help="the Redis ranking cache").add_subparsers(
        dest="cache_command", required=True, metavar="ACTION"
    )
    cache.add_parser("rebuild", help="rebuild the Redis ranking from SQLite").set_defaults(
        run=cmd_cache_rebuild
    )

    scenario = sub.add_parser("apply-scenario", help="replay a JSON scenario of commands")
    scenario.add_argument("file", help="path relative to the working directory")
    scenario.add_argument(
        "--from-step", type=int, default=1, metavar="N",
        help="start at step N (1-based): resume a run that stopped, or whose first steps "
        "were applied before",
    )  # fmt: skip
    scenario.set_defaults(run=cmd_apply_scenario)
