"""The console's pages: ranking (and its board, refreshed in place), goal, beliefs and
weights, pipeline. Each reads through the same GoalStore methods as REST."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import RedirectResponse, Response

from service.commands import utcnow
from service.console import views
from service.console.app import render
from service.console.session import Viewer, viewer_of
from service.domain.decisions import GOAL_SELECTED
from service.domain.goal import GoalCategory
from service.runtime import Services
from service.usecases import GoalStore

router = APIRouter()
RANKED, BLOCKED = 20, 10  # goals on the board: the best, and the best blocked ones
TREE_DEPTH = 3  # levels of a goal's tree its page draws
TIMELINE = 200  # a goal's newest events its page shows


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def viewer_or_signin(request: Request) -> Viewer | Response:
    """The viewer, or the sign-in page to go to first (keys configured, none signed in)."""
    viewer = viewer_of(request, services_of(request).api_keys)
    if viewer is not None:
        return viewer
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    base = request.scope.get("root_path", "")
    return RedirectResponse(f"{base}/signin?next={quote(path, safe='')}", status_code=303)


# A text, not the enum: the filter's "all" sends `category=` (empty), which is no filter.
Category = Annotated[str | None, Query(max_length=64)]


def category_of(text: str | None) -> GoalCategory | None:
    """The category a filter names; None for none or "all" (empty); 422 for no category."""
    if not text:
        return None
    try:
        return GoalCategory(text)
    except ValueError:
        names = ", ".join(c.value for c in GoalCategory)
        raise HTTPException(422, f"category: {text!r} is none of {names}") from None


def board_context(gs: GoalStore, text: str | None) -> dict[str, Any]:
    category = category_of(text)
    board = gs.ranking_board(limit=RANKED, blocked_limit=BLOCKED, category=category)
    return {"board": board, "category": category, "views": views}


@router.get("/")
def ranking(request: Request, category: Category = None) -> Response:
    """The ranking: the best goals with their scores as bars, the blocked ones apart."""
    viewer = viewer_or_signin(request)
    if isinstance(viewer, Response):
        return viewer
    gs = services_of(request).goalstore
    return render(request, "ranking.html", viewer, categories=list(GoalCategory),
                  **board_context(gs, category))  # fmt: skip


@router.get("/board")
def board(request: Request, category: Category = None) -> Response:
    """The ranking page's board alone: what its refresh fetches."""
    viewer = viewer_of(request, services_of(request).api_keys)
    if viewer is None:  # signed out since: say so in place of the board (htmx swaps only
        # a 2xx in), and the board it leaves polls no more
        return render(request, "_signed_out.html", None)
    gs = services_of(request).goalstore
    return render(request, "_board.html", viewer, **board_context(gs, category))


@router.get("/goals/{goal_id}")
def goal_page(request: Request, goal_id: str) -> Response:
    """A goal: its fields, tasks, tree and ledger timeline, with its actions."""
    viewer = viewer_or_signin(request)
    if isinstance(viewer, Response):
        return viewer
    return render(request, "goal.html", viewer, **goal_context(services_of(request), goal_id))


def goal_context(services: Services, goal_id: str) -> dict[str, Any]:
    gs = services.goalstore
    goal = gs.get_goal(goal_id, include_deleted=True)
    tree = gs.goal_tree(goal_id, depth=TREE_DEPTH) if not goal.is_deleted else None
    return {
        "goal": goal,
        "tasks": gs.list_tasks(goal_id, include_deleted=True),
        "tree": tree if tree is not None and tree.root.children else None,
        "history": gs.checked_history(goal_id, newest=TIMELINE),
        "can_adopt": views.can_adopt(goal),
        "can_abandon": views.can_abandon(goal),
    }


@router.get("/beliefs")
def beliefs_page(request: Request) -> Response:
    """Beliefs with their active flag, and the goal_selected weights (admins change them)."""
    viewer = viewer_or_signin(request)
    if isinstance(viewer, Response):
        return viewer
    return render(request, "beliefs.html", viewer, **beliefs_context(services_of(request)))


def beliefs_context(services: Services, entered: dict[str, str] | None = None) -> dict[str, Any]:
    gs = services.goalstore
    decision = gs.get_decision(GOAL_SELECTED)
    return {"beliefs": gs.list_beliefs(), "decision": decision, "entered": entered or {}}


@router.get("/pipeline")
def pipeline(request: Request) -> Response:
    """The pipeline's health: the same figures as /metrics, and the workers seen."""
    viewer = viewer_or_signin(request)
    if isinstance(viewer, Response):
        return viewer
    services = services_of(request)
    gs, settings = services.goalstore, services.settings
    now = utcnow()
    observed = gs.redis_figures()
    return render(
        request, "pipeline.html", viewer, figures=gs.store_figures(now), observed=observed,
        staleness=observed.cache_staleness_s(now) if observed is not None else None,
        workers=gs.workers_seen(), readiness=gs.readiness(), page="pipeline",
        queue_roles={settings.events_queue: "events_queue",
                     settings.scheduler_queue: "scheduler_queue"},
    )  # fmt: skip
