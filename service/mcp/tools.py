"""The tools: each a GoalStore use case, its arguments and its answer the REST models.

A tool is its name, what it takes (service/mcp/args.py), what it answers (the REST
response model), the scope its key must hold, the hints MCP clients show, and a short
function that calls GoalStore and builds the answer, as a REST route does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from service.api.schemas import (
    BeliefPublic,
    BeliefsPublic,
    GoalHistoryPublic,
    GoalPublic,
    GoalsPublic,
    LedgerEventPublic,
    NotePublic,
    PrioritizedPublic,
    RankedGoalPublic,
    ScorePublic,
    SelectionPublic,
    TaskPublic,
)
from service.api.schemas.trees import DecompositionPublic, GoalTreePublic
from service.auth import Scope
from service.commands import Context
from service.domain.errors import FieldError, InvalidInput
from service.domain.inputs import GoalCreate, Subgoals
from service.domain.tasks import TaskState
from service.mcp import args as a
from service.usecases import GoalStore


class ExplainedGoalPublic(RankedGoalPublic):
    explanation: ScorePublic | None = Field(
        default=None, description="With explain: the goal's score now, term by term."
    )


class RankedGoalsPublic(PrioritizedPublic):
    data: list[ExplainedGoalPublic]  # type: ignore[assignment]  # a subclass of each item


Run = Callable[[GoalStore, Context, Any], BaseModel]


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    args: type[BaseModel]
    result: type[BaseModel]
    scope: Scope
    run: Run
    read_only: bool = False
    idempotent: bool = False
    destructive: bool = False


def _propose(gs: GoalStore, ctx: Context, spec: GoalCreate) -> GoalPublic:
    return GoalPublic.of(gs.create_goal(ctx, spec))


def _get(gs: GoalStore, _: Context, x: a.GetGoalArgs) -> GoalPublic:
    return GoalPublic.of(gs.get_goal(x.goal_id, include_deleted=x.include_deleted))


def _list(gs: GoalStore, _: Context, x: a.ListGoalsArgs) -> GoalsPublic:
    page = gs.list_goals(
        state=x.state, category=x.category, include_deleted=x.include_deleted,
        cursor=int(x.cursor or 0), limit=x.limit, assigned_to=x.assigned_to,
        parent_id=x.parent_id,
    )  # fmt: skip
    return GoalsPublic(
        data=[GoalPublic.of(goal) for goal in page.goals],
        count=page.count,
        next_cursor=None if page.next_cursor is None else str(page.next_cursor),
    )


def _ranked(gs: GoalStore, _: Context, x: a.RankedGoalsArgs) -> RankedGoalsPublic:
    view = gs.ranked_view(limit=x.limit, category=x.category, include_blocked=x.include_blocked)
    data = []
    for n, r in enumerate(view.items, start=1):
        explanation = ScorePublic.of(*gs.goal_score(r.goal.id)) if x.explain else None
        data.append(ExplainedGoalPublic(
            rank=n, goal_id=r.goal.id, score=r.ranked.score, blocked=r.ranked.blocked,
            goal=GoalPublic.of(r.goal), explanation=explanation,
        ))  # fmt: skip
    return RankedGoalsPublic(data=data, source=view.source, fallback_reason=view.reason)


def _explain(gs: GoalStore, _: Context, x: a.GoalArgs) -> ScorePublic:
    return ScorePublic.of(*gs.goal_score(x.goal_id))


def _update(gs: GoalStore, ctx: Context, x: a.UpdateGoalArgs) -> GoalPublic:
    named = x.changes.expected_version
    if named is not None and named != x.expected_version:
        raise InvalidInput([FieldError(("changes", "expected_version"),
                                       "names a version other than expected_version")])  # fmt: skip
    return GoalPublic.of(gs.update_goal(ctx, x.goal_id, x.changes, x.expected_version).goal)


def _adopt(gs: GoalStore, ctx: Context, x: a.StateArgs) -> GoalPublic:
    change = gs.adopt_goal(ctx, x.goal_id, x.expected_version)
    return GoalPublic.of(change.goal, change.warnings)


def _abandon(gs: GoalStore, ctx: Context, x: a.AbandonArgs) -> GoalPublic:
    return GoalPublic.of(
        gs.abandon_goal(ctx, x.goal_id, x.expected_version, cascade=x.cascade).goal
    )


def _decompose(gs: GoalStore, ctx: Context, x: a.DecomposeGoalArgs) -> DecompositionPublic:
    spec = Subgoals(children=x.children)
    done = gs.decompose_goal(ctx, x.goal_id, spec, x.expected_version)
    children = [GoalPublic.of(child) for child in done.children]
    return DecompositionPublic(parent=GoalPublic.of(done.parent), children=children)


def _tree(gs: GoalStore, _: Context, x: a.GoalTreeArgs) -> GoalTreePublic:
    return GoalTreePublic.of_tree(gs.goal_tree(x.goal_id, depth=x.depth))


def _unblock(gs: GoalStore, ctx: Context, x: a.StateArgs) -> GoalPublic:
    return GoalPublic.of(gs.unblock_goal(ctx, x.goal_id, x.expected_version).goal)


def _block(gs: GoalStore, ctx: Context, x: a.BlockGoalArgs) -> GoalPublic:
    return GoalPublic.of(gs.block_goal(ctx, x.goal_id, x.reason, x.expected_version).goal)


def _link(gs: GoalStore, ctx: Context, x: a.LinkWorkArgs) -> GoalPublic:
    change = gs.link_work(ctx, x.goal_id, x.kind, x.ref, x.url, x.expected_version)
    return GoalPublic.of(change.goal)


def _note(gs: GoalStore, ctx: Context, x: a.AddNoteArgs) -> NotePublic:
    return NotePublic.of(gs.add_note(ctx, x.goal_id, x.kind.value, x.text))


def _select(gs: GoalStore, ctx: Context, _: a.NoArgs) -> SelectionPublic:
    return SelectionPublic.of(gs.select(ctx))


def _report(gs: GoalStore, ctx: Context, x: a.ReportTaskArgs) -> TaskPublic:
    task = gs.report_task(ctx, x.task_id, TaskState(x.state), evidence=x.evidence,
                          reason=x.reason, goal_id=x.goal_id)  # fmt: skip
    return TaskPublic.of(task)


def _beliefs(gs: GoalStore, _: Context, x: a.ListBeliefsArgs) -> BeliefsPublic:
    beliefs = gs.list_beliefs(x.active)
    return BeliefsPublic(data=[BeliefPublic.of(b) for b in beliefs], count=len(beliefs))


def _put_belief(gs: GoalStore, ctx: Context, x: a.PutBeliefArgs) -> BeliefPublic:
    return BeliefPublic.of(gs.put_belief(ctx, x.belief_id, x)[0])  # x is a BeliefPut


def _history(gs: GoalStore, _: Context, x: a.HistoryArgs) -> GoalHistoryPublic:
    rows = gs.goal_history(x.goal_id, after=x.after, limit=x.limit)
    return GoalHistoryPublic(goal_id=x.goal_id, data=[LedgerEventPublic.of(r) for r in rows])


R, W, X = Scope.READ, Scope.WRITE, Scope.EXECUTE
TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec("propose_goal", "Propose a goal: it starts `proposed`, at version 1, owned by the "
             "caller. Adopt it to have it ranked.", GoalCreate, GoalPublic, W, _propose),
    ToolSpec("get_goal", "One goal, with its version (pass it as expected_version to change it).",
             a.GetGoalArgs, GoalPublic, R, _get, read_only=True, idempotent=True),
    ToolSpec("list_goals", "Goals in creation order, filtered by state, category, assignee and "
             "parent, a page at a time (pass next_cursor as cursor).", a.ListGoalsArgs,
             GoalsPublic, R, _list, read_only=True, idempotent=True),
    ToolSpec("ranked_goals", "Adopted goals, best first, each with its score; with explain, "
             "each score term by term. Blocked goals come last, and only with include_blocked.",
             a.RankedGoalsArgs, RankedGoalsPublic, R, _ranked, read_only=True, idempotent=True),
    ToolSpec("explain_score", "A goal's score now, term by term; for a blocked goal, every "
             "reason.", a.GoalArgs, ScorePublic, R, _explain, read_only=True, idempotent=True),
    ToolSpec("update_goal", "Change some fields of a goal (its owner or an admin). "
             "expected_version is required: a stale one is a version-conflict error naming "
             "the current version.", a.UpdateGoalArgs, GoalPublic, W, _update, idempotent=True),
    ToolSpec("adopt_goal", "Adopt a proposed goal once vetting allows it; a refusal "
             "(goal-blocked) names every reason and belief. Adopting again changes nothing.",
             a.StateArgs, GoalPublic, W, _adopt, idempotent=True),
    ToolSpec("abandon_goal", "Abandon a goal that is not finished (its owner or an admin), "
             "with its open descendants unless cascade is false. It leaves the ranking for "
             "good.", a.AbandonArgs, GoalPublic, W, _abandon, idempotent=True, destructive=True),
    ToolSpec("decompose_goal", "Decompose a goal into children (up to 100 a goal, 8 levels "
             "a tree), all created or none; each child may omit parent_id. The goal's "
             "progress is then its children's, and it is satisfied by them (its "
             "completion_policy).", a.DecomposeGoalArgs, DecompositionPublic, W, _decompose),
    ToolSpec("goal_tree", "A goal and its descendants, nested, each with its progress, state "
             "and score now (blocked, and why); depth limits the levels.", a.GoalTreeArgs,
             GoalTreePublic, R, _tree, read_only=True, idempotent=True),
    ToolSpec("select_next_goal", "The scheduler's hand-off: claim the best selectable goal, "
             "start it and queue its task (exactly once across callers). mode `shadow` says "
             "which goal WOULD have been handed over; nothing was started.", a.NoArgs,
             SelectionPublic, X, _select),
    ToolSpec("report_task", "Report a selected goal's task: running, succeeded (with evidence) "
             "or failed (with a reason).", a.ReportTaskArgs, TaskPublic, X, _report,
             idempotent=True),
    ToolSpec("list_beliefs", "Every belief, or only the active (or inactive) ones.",
             a.ListBeliefsArgs, BeliefsPublic, R, _beliefs, read_only=True, idempotent=True),
    ToolSpec("put_belief", "Create or update a belief. Adoption vetting and the ranking read "
             "them.", a.PutBeliefArgs, BeliefPublic, W, _put_belief, idempotent=True),
    ToolSpec("goal_history", "A goal's ledger events, oldest first: who did what, when, in "
             "which trace.", a.HistoryArgs, GoalHistoryPublic, R, _history, read_only=True,
             idempotent=True),
    ToolSpec("add_note", "Append a note (decision, blocker, info) to a goal; its version "
             "stays.", a.AddNoteArgs, NotePublic, W, _note),
    ToolSpec("block_goal", "Hold an unfinished goal by hand: never selected until unblocked.",
             a.BlockGoalArgs, GoalPublic, W, _block, idempotent=True),
    ToolSpec("unblock_goal", "Lift a manual block.", a.StateArgs, GoalPublic, W, _unblock,
             idempotent=True),
    ToolSpec("link_work", "Link external work (a session, a pull request, an issue) to an "
             "unfinished goal.", a.LinkWorkArgs, GoalPublic, W, _link, idempotent=True),
)  # fmt: skip
BY_NAME = {tool.name: tool for tool in TOOLS}
