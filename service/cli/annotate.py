"""`goalstore notes add|list`, `block`, `unblock`, `link` and `criteria review`: what people
add to a goal besides its fields, with the same rules as REST (docs/api.md)."""

from __future__ import annotations

import argparse
from typing import Any

import orjson

from service.api.schemas import NotePublic
from service.cli.goals import context
from service.cli.output import EXIT_OK, emit, goal_json
from service.commands import Change
from service.domain.annotations import NoteKind
from service.runtime import Services


def _changed(change: Change) -> int:
    emit(goal_json(change.goal) | {"changed": change.changed})
    return EXIT_OK


def cmd_note_add(args: argparse.Namespace, services: Services) -> int:
    note = services.goalstore.add_note(context(args), args.goal_id, args.kind, args.text)
    emit(NotePublic.of(note).model_dump(mode="json"))
    return EXIT_OK


def cmd_note_list(args: argparse.Namespace, services: Services) -> int:
    page = services.goalstore.list_notes(args.goal_id, cursor=args.cursor, limit=args.limit)
    next_cursor = None if page.next_cursor is None else str(page.next_cursor)
    emit({"data": [NotePublic.of(n).model_dump(mode="json") for n in page.notes],
          "next_cursor": next_cursor})  # fmt: skip
    return EXIT_OK


def cmd_block(args: argparse.Namespace, services: Services) -> int:
    gs = services.goalstore
    return _changed(gs.block_goal(context(args), args.goal_id, args.reason, args.expected_version))


def cmd_unblock(args: argparse.Namespace, services: Services) -> int:
    gs = services.goalstore
    return _changed(gs.unblock_goal(context(args), args.goal_id, args.expected_version))


def cmd_link(args: argparse.Namespace, services: Services) -> int:
    return _changed(services.goalstore.link_work(
        context(args), args.goal_id, args.kind, args.ref, args.url, args.expected_version
    ))  # fmt: skip


def cmd_review(args: argparse.Namespace, services: Services) -> int:
    evidence = None if args.evidence is None else orjson.loads(args.evidence)
    return _changed(services.goalstore.review_criterion(
        context(args), args.goal_id, args.criterion_id, args.met, evidence,
        args.expected_version,
    ))  # fmt: skip


def _goal_command(sub: Any, name: str, help: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help)
    parser.add_argument("goal_id")
    return parser


def _versioned(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--expected-version", type=int, help="refuse unless at this version")


def add_commands(sub: Any) -> None:
    notes = sub.add_parser("notes", help="a goal's notes (decisions, blockers, info)")
    actions = notes.add_subparsers(dest="notes_command", required=True, metavar="ACTION")
    add = _goal_command(actions, "add", "append a note to a goal, in any state")
    add.add_argument("--kind", required=True, choices=[k.value for k in NoteKind])
    add.add_argument("--text", required=True)
    add.set_defaults(run=cmd_note_add)
    listing = _goal_command(actions, "list", "a goal's notes, newest first")
    listing.add_argument("--cursor", type=int, help="the next_cursor of the previous page")
    listing.add_argument("--limit", type=int, default=50)
    listing.set_defaults(run=cmd_note_list)

    block = _goal_command(sub, "block", "hold a goal: never selected until unblocked")
    block.add_argument("--reason", required=True)
    _versioned(block)
    block.set_defaults(run=cmd_block)
    unblock = _goal_command(sub, "unblock", "lift a goal's manual block")
    _versioned(unblock)
    unblock.set_defaults(run=cmd_unblock)

    link = _goal_command(sub, "link", "link external work (a session, a pull request…)")
    link.add_argument("--kind", required=True, help="e.g. session, pull_request, issue")
    link.add_argument("--ref", required=True, help="its identity where it lives")
    link.add_argument("--url", help="an http(s) URL to it")
    _versioned(link)
    link.set_defaults(run=cmd_link)

    criteria = sub.add_parser("criteria", help="a goal's acceptance criteria")
    verbs = criteria.add_subparsers(dest="criteria_command", required=True, metavar="ACTION")
    review = _goal_command(verbs, "review", "mark one criterion met or not, with evidence")
    review.add_argument("criterion_id")
    decision = review.add_mutually_exclusive_group(required=True)
    decision.add_argument("--met", dest="met", action="store_true")
    decision.add_argument("--not-met", dest="met", action="store_false")
    review.add_argument("--evidence", help='JSON, e.g. \'{"ci": "green"}\'')
    _versioned(review)
    review.set_defaults(run=cmd_review)
