"""`goalstore goals list|show|create|update|adopt|abandon|delete|satisfy` (and `tree`,
`decompose`: service/cli/trees.py; `goal` is an alias of `goals`) and `goalstore select`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from service.cli.output import EXIT_OK, emit, goal_json
from service.commands import Change, Context
from service.domain.goal import GoalCategory, GoalState
from service.domain.inputs import GoalCreate, GoalUpdate
from service.runtime import Services
from service.usecases import STATE_COMMANDS, GoalStore, StateCommand


def read_json(source: str) -> Any:
    data = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
    return orjson.loads(data)


def context(args: argparse.Namespace) -> Context:
    """The operator's: whoever runs the CLI holds the store's credentials, so it acts with
    admin rights (any goal, whoever owns it); `--actor` names who the ledger records."""
    return Context(actor=args.actor, admin=True)


def cmd_select(args: argparse.Namespace, services: Services) -> int:
    selection = services.goalstore.select(context(args))
    emit({"mode": selection.mode, "goal_id": selection.goal.id if selection.goal else None,
          "task_id": selection.task.task_id if selection.task else None,
          "skipped": [list(s) for s in selection.skipped]})  # fmt: skip
    return EXIT_OK


def cmd_list(args: argparse.Namespace, services: Services) -> int:
    page = services.goalstore.list_goals(
        state=args.state,
        category=args.category,
        include_deleted=args.include_deleted,
        cursor=args.cursor,
        limit=args.limit,
        assigned_to=args.assigned_to,
        parent_id=args.parent_id,
    )
    next_cursor = None if page.next_cursor is None else str(page.next_cursor)
    emit({"data": [goal_json(g) for g in page.goals], "count": page.count,
          "next_cursor": next_cursor})  # fmt: skip
    return EXIT_OK


def cmd_show(args: argparse.Namespace, services: Services) -> int:
    emit(goal_json(services.goalstore.get_goal(args.goal_id, include_deleted=True)))
    return EXIT_OK


def cmd_create(args: argparse.Namespace, services: Services) -> int:
    spec = GoalCreate.model_validate(read_json(args.file))
    emit(goal_json(services.goalstore.create_goal(context(args), spec)))
    return EXIT_OK


def cmd_update(args: argparse.Namespace, services: Services) -> int:
    patch = GoalUpdate.model_validate(read_json(args.file))
    change = services.goalstore.update_goal(
        context(args), args.goal_id, patch, args.expected_version
    )
    emit(goal_json(change.goal) | {"changed": change.changed})
    return EXIT_OK


def cmd_satisfy(args: argparse.Namespace, services: Services) -> int:
    result = orjson.loads(args.result)
    goal = services.goalstore.satisfy_goal(
        context(args), args.goal_id, result, args.expected_version
    )
    emit(goal_json(goal))
    return EXIT_OK


def _state_command(command: StateCommand) -> Callable[[argparse.Namespace, Services], int]:
    def run(args: argparse.Namespace, services: Services) -> int:
        change = command(services.goalstore, context(args), args.goal_id, args.expected_version)
        emit(
            goal_json(change.goal) | {"changed": change.changed, "warnings": list(change.warnings)}
        )
        return EXIT_OK

    return run


def _closing_command(
    command: Callable[..., Change],
) -> Callable[[argparse.Namespace, Services], int]:
    """abandon and delete: with the goal's open children too, unless --no-cascade."""

    def run(args: argparse.Namespace, services: Services) -> int:
        change = command(services.goalstore, context(args), args.goal_id,
                         args.expected_version, cascade=args.cascade)  # fmt: skip
        emit(
            goal_json(change.goal) | {"changed": change.changed, "warnings": list(change.warnings)}
        )
        return EXIT_OK

    return run


CLOSING: dict[str, Callable[..., Change]] = {
    "abandon": GoalStore.abandon_goal,
    "delete": GoalStore.delete_goal,
}


def add_commands(sub: Any) -> None:
    from service.cli.trees import add_tree_commands  # it imports this module

    sub.add_parser("select", help="select one goal now (as POST /v1/goals/select)").set_defaults(
        run=cmd_select
    )
    goals = sub.add_parser("goals", aliases=["goal"], help="manage goals").add_subparsers(
        dest="goals_command", required=True, metavar="ACTION"
    )
    listing = goals.add_parser("list", help="list goals")
    listing.add_argument("--state", choices=[s.value for s in GoalState])
    listing.add_argument("--category", choices=[c.value for c in GoalCategory])
    listing.add_argument("--include-deleted", action="store_true")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--cursor", type=int, default=0)
    listing.add_argument("--assigned-to", help="only goals assigned to this actor")
    listing.add_argument("--parent-id", help="only the children of this goal")
    listing.set_defaults(run=cmd_list)
    show = goals.add_parser("show", help="show one goal")
    show.add_argument("goal_id")
    show.set_defaults(run=cmd_show)
    create = goals.add_parser("create", help="create a goal from a JSON file (- for stdin)")
    create.add_argument("file")
    create.set_defaults(run=cmd_create)
    update = goals.add_parser("update", help="change a goal from a JSON file (- for stdin)")
    update.add_argument("goal_id")
    update.add_argument("file")
    update.add_argument("--expected-version", type=int, required=True)
    update.set_defaults(run=cmd_update)
    for name, command in STATE_COMMANDS.items():
        state = goals.add_parser(name, help=f"{name} a goal")
        state.add_argument("goal_id")
        state.add_argument("--expected-version", type=int)
        state.set_defaults(run=_state_command(command))
        if name in CLOSING:
            state.add_argument(
                "--cascade", action=argparse.BooleanOptionalAction, default=True,
                help="also close its open children (default); --no-cascade: refused "
                "(exit 4, children-open) while it has any",
            )  # fmt: skip
            state.set_defaults(run=_closing_command(CLOSING[name]))
    satisfy = goals.add_parser("satisfy", help="close a goal through the verification gate")
    satisfy.add_argument("goal_id")
    satisfy.add_argument("--result", required=True, help="the typed result, JSON")
    satisfy.add_argument("--expected-version", type=int)
    satisfy.set_defaults(run=cmd_satisfy)
    add_tree_commands(goals)
