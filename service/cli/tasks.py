"""`goalstore tasks list|add|report|verify|reject`: a goal's tasks as the REST API has
them (JSON on stdout)."""

from __future__ import annotations

import argparse
from typing import Any

import orjson

from service.api.schemas import TaskPublic
from service.cli.goals import context
from service.cli.output import EXIT_OK, emit
from service.domain.tasks import Task, TaskState
from service.runtime import Services


def _json(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


def _task(task: Task) -> dict[str, Any]:
    return TaskPublic.of(task).model_dump(mode="json")


def cmd_list(args: argparse.Namespace, services: Services) -> int:
    emit([_task(t) for t in services.goalstore.list_tasks(args.goal_id)])
    return EXIT_OK


def cmd_add(args: argparse.Namespace, services: Services) -> int:
    task = services.goalstore.create_task(
        context(args), args.goal_id, evidence=_json(args.evidence), note=args.note,
        expected_version=args.expected_version,
    )  # fmt: skip
    emit(_task(task))
    return EXIT_OK


def cmd_report(args: argparse.Namespace, services: Services) -> int:
    task = services.goalstore.report_task(
        context(args), args.task_id, TaskState(args.state), evidence=_json(args.evidence),
        reason=args.reason,
    )  # fmt: skip
    emit(_task(task))
    return EXIT_OK


def cmd_review(args: argparse.Namespace, services: Services) -> int:
    task = services.goalstore.review_task(
        context(args), args.goal_id, args.task_id, args.review, reason=args.reason,
        expected_version=args.expected_version,
    )  # fmt: skip
    emit(_task(task))
    return EXIT_OK


def add_commands(sub: Any) -> None:
    tasks = sub.add_parser("tasks", help="a goal's tasks: list, add, report, verify, reject")
    actions = tasks.add_subparsers(dest="tasks_command", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="a goal's tasks, oldest attempt first")
    listing.add_argument("--goal-id", required=True)
    listing.set_defaults(run=cmd_list)
    add = actions.add_parser("add", help="record work done outside selection (a manual task)")
    add.add_argument("goal_id")
    add.add_argument("--evidence", help="JSON (text as a JSON string)")
    add.add_argument("--note")
    add.add_argument("--expected-version", type=int, help="the goal's version")
    add.set_defaults(run=cmd_add)
    report = actions.add_parser("report", help="report a task running, succeeded or failed")
    report.add_argument("task_id")
    report.add_argument("--state", required=True, choices=["running", "succeeded", "failed"])
    report.add_argument("--evidence", help="JSON (text as a JSON string)")
    report.add_argument("--reason")
    report.set_defaults(run=cmd_report)
    for review in ("verify", "reject"):
        step = actions.add_parser(review, help=f"{review} a succeeded task")
        step.add_argument("goal_id")
        step.add_argument("task_id")
        step.add_argument("--reason")
        step.add_argument("--expected-version", type=int, help="the task's version")
        step.set_defaults(run=cmd_review, review=review)
