"""`goalstore goals tree|decompose` (`goal` is an alias of `goals`): goal trees.

`tree` prints what GET /v1/goals/{id}/tree answers, or with `--format text` an indented
outline, one line per goal: its progress bar, percentage, state, id and text.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from service.api.schemas import GoalPublic
from service.api.schemas.trees import DecompositionPublic, GoalTreePublic
from service.cli.goals import context, read_json
from service.cli.output import EXIT_OK, emit
from service.commands.tree_view import GoalTree
from service.domain.inputs import Subgoals
from service.domain.trees import MAX_TREE_DEPTH, TreeNode
from service.runtime import Services

BAR_WIDTH = 10
INDENT = "  "


def progress_bar(progress: float) -> str:
    """`[#####-----]  50%`: rounded down, so a full bar and 100% mean done."""
    filled = int(progress * BAR_WIDTH + 1e-9)
    percent = int(progress * 100 + 1e-9)
    return f"[{'#' * filled}{'-' * (BAR_WIDTH - filled)}] {percent:3d}%"


def outline(tree: GoalTree) -> list[str]:
    """The tree as indented lines, parents before their children; a node whose children
    were left out (the depth asked for) is followed by a line counting them."""
    lines = []
    for level, node in tree.root.walk():
        lines.append(INDENT * level + _line(tree, node))
        if node.more:
            lines.append(INDENT * (level + 1) + f"… {node.more} more (raise --depth)")
    return lines


def _line(tree: GoalTree, node: TreeNode) -> str:
    goal = node.goal
    line = f"{progress_bar(goal.progress)}  {goal.state.value:<9}  {goal.id}  {goal.text}"
    score = tree.score_of(goal.id)
    if score is not None and score.blocked:
        line += f"  (blocked: {', '.join(b.reason for b in score.blocked_by)})"
    return line


def cmd_tree(args: argparse.Namespace, services: Services) -> int:
    tree = services.goalstore.goal_tree(args.goal_id, depth=args.depth)
    if args.format == "text":
        sys.stdout.write("\n".join(outline(tree)) + "\n")
    else:
        emit(GoalTreePublic.of_tree(tree).model_dump(mode="json"))
    return EXIT_OK


def cmd_decompose(args: argparse.Namespace, services: Services) -> int:
    data: Any = read_json(args.file)
    spec = Subgoals.model_validate({"children": data} if isinstance(data, list) else data)
    done = services.goalstore.decompose_goal(
        context(args), args.goal_id, spec, args.expected_version
    )
    children = [GoalPublic.of(child) for child in done.children]
    emit(DecompositionPublic(parent=GoalPublic.of(done.parent), children=children).model_dump(
        mode="json"
    ))  # fmt: skip
    return EXIT_OK


def add_tree_commands(goals: Any) -> None:
    """`tree` and `decompose`, under the `goals` group's subparsers."""
    tree = goals.add_parser("tree", help="a goal and its descendants (JSON, or a text outline)")
    tree.add_argument("goal_id")
    tree.add_argument(
        "--depth", type=int, default=MAX_TREE_DEPTH,
        help=f"levels shown, the goal being level 1 (1-{MAX_TREE_DEPTH}, default "
        f"{MAX_TREE_DEPTH})",
    )  # fmt: skip
    tree.add_argument("--format", choices=["json", "text"], default="json")
    tree.set_defaults(run=cmd_tree)
    decompose = goals.add_parser(
        "decompose",
        help='decompose a goal into children from a JSON file (- for stdin): {"children": '
        "[goal, ...]} or the list itself",
    )
    decompose.add_argument("goal_id")
    decompose.add_argument("--file", required=True)
    decompose.add_argument("--expected-version", type=int)
    decompose.set_defaults(run=cmd_decompose)
