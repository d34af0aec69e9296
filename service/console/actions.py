"""The console's form posts: sign in and out, adopt, abandon, change a weight.

Each is refused unless it carries the page's CSRF token (403), and acts with the signed-in
key's scopes and write limit exactly as REST does (service/api/deps.py context_of()), by
calling the same GoalStore methods. Success answers 303 to the page to read next (so a
reload does not post again); a refusal shows the page again with the problem inline.
"""

from __future__ import annotations

import math
import re
from urllib.parse import parse_qsl

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from service.api.deps import context_of
from service.auth import Scope, authenticate
from service.commands import Context
from service.console import views
from service.console.app import render
from service.console.pages import beliefs_context, goal_context, services_of
from service.console.session import (
    CSRF_FIELD,
    Viewer,
    csrf_of,
    post_is_genuine,
    sign_in,
    sign_out,
    viewer_of,
)
from service.domain.decisions import GOAL_SELECTED, DecisionChange
from service.domain.errors import GoalStoreError
from service.usecases import STATE_COMMANDS

router = APIRouter()
MAX_FORM_FIELDS = 64


async def form_of(request: Request) -> dict[str, str]:
    """The urlencoded form posted (the body limit has bounded it); 400 with more fields
    than any of our forms has, 403 without the page's CSRF token or from another site."""
    body = (await request.body()).decode("utf-8", "replace")
    try:
        pairs = parse_qsl(body, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
    except ValueError:  # past max_num_fields
        raise HTTPException(400, f"a form of more than {MAX_FORM_FIELDS} fields") from None
    form = dict(pairs)
    if not post_is_genuine(request, form):
        raise HTTPException(403, "this form post lacks the page's CSRF token: reload the page")
    return form


async def acting(request: Request, scope: Scope) -> tuple[Viewer, Context]:
    """The signed-in viewer and their Context for `scope`, or a refusal: 401 signed out,
    403 without the scope, 429 past the write limit (a token spent: check the form first)."""
    services = services_of(request)
    viewer = viewer_of(request, services.api_keys)
    if viewer is None:
        raise HTTPException(401, "sign in first")
    return viewer, await context_of(request, services, viewer.key, scope)


_WHOLE = re.compile(r"[0-9]{1,18}")  # as If-Match takes a version: ASCII digits


def _version(form: dict[str, str]) -> int:
    text = form.get("version", "")
    if not _WHOLE.fullmatch(text):
        raise HTTPException(422, "version: the page's version of the goal, a whole number")
    return int(text)


# The lifecycle commands a goal's page offers, as the CLI and scenarios name them.
GOAL_ACTIONS = {name: STATE_COMMANDS[name] for name in ("adopt", "abandon")}


@router.post("/goals/{goal_id}/{action}")
async def goal_action(request: Request, goal_id: str, action: str) -> Response:
    """Adopt or abandon the goal at the version the page showed (as If-Match does)."""
    run = GOAL_ACTIONS.get(action)
    if run is None:
        raise HTTPException(404, f"no action {action!r}: adopt or abandon")
    version = _version(await form_of(request))
    viewer, ctx = await acting(request, Scope.WRITE)
    services = services_of(request)
    try:
        await run_in_threadpool(run, services.goalstore, ctx, goal_id, version)
    except GoalStoreError as exc:  # the goal's page again, with the problem on it
        context = await run_in_threadpool(goal_context, services, goal_id)
        problem = views.Problem.of(exc)
        return render(request, "goal.html", viewer, problem.status, problem=problem, **context)
    base = request.scope.get("root_path", "")
    return RedirectResponse(f"{base}/goals/{goal_id}", status_code=303)


@router.post("/decisions/goal_selected")
async def change_weights(request: Request) -> Response:
    """New weights for goal_selected: the command of PUT /v1/decisions/goal_selected."""
    form = await form_of(request)
    viewer, ctx = await acting(request, Scope.ADMIN)
    services = services_of(request)
    entered = {k: v for k, v in form.items() if k != CSRF_FIELD}
    gs = services.goalstore
    try:
        # Only the weights changed: a current value need not sit on its own step (the
        # seed's urgency and alignment weights do not), and only a change is checked.
        current = (await run_in_threadpool(gs.get_decision, GOAL_SELECTED)).current_values()
        changed = {k: v for k, v in entered.items() if current.get(k) != _number(k, v)}
        if changed:
            change = DecisionChange(parameters={k: _number(k, v) for k, v in changed.items()})
            await run_in_threadpool(gs.change_decision, ctx, GOAL_SELECTED, change)
    except (GoalStoreError, ValueError) as exc:  # the form again, with what was entered
        problem = (
            views.Problem.of(exc) if isinstance(exc, GoalStoreError)
            else views.Problem(422, "Invalid weights", "", [str(exc)])
        )  # fmt: skip
        context = await run_in_threadpool(beliefs_context, services, entered)
        return render(request, "beliefs.html", viewer, problem.status, problem=problem,
                      **context)  # fmt: skip
    return RedirectResponse(f"{request.scope.get('root_path', '')}/beliefs", status_code=303)


def _number(name: str, text: str) -> float:
    """A weight as entered, or ValueError naming it (NaN and infinities are no weight)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ValueError(f"parameters.{name}: {text[:40]!r} is not a finite number")
    return value


@router.get("/signin")
def signin_page(request: Request, next: str = "") -> Response:
    csrf, new = csrf_of(request)
    return render(request, "signin.html", Viewer(None, csrf, new), next=_local(request, next),
                  signin=True)  # fmt: skip


@router.post("/signin")
async def signin(request: Request) -> Response:
    """Check the key and keep it in the session cookie; 401 and the form again if wrong."""
    form = await form_of(request)
    keys = services_of(request).api_keys
    target = _local(request, form.get("next", ""))
    key = authenticate(keys, form.get("key", "").strip()) if keys else None
    if keys and key is None:
        csrf, new = csrf_of(request)
        problem = views.Problem(401, "Not signed in", "that is not a valid API key")
        return render(request, "signin.html", Viewer(None, csrf, new), 401, problem=problem,
                      next=target, signin=True)  # fmt: skip
    response = RedirectResponse(target, status_code=303)
    if key is not None:
        sign_in(response, request, key)
    return response


@router.post("/signout")
async def signout(request: Request) -> Response:
    await form_of(request)
    response = RedirectResponse(f"{request.scope.get('root_path', '')}/signin", status_code=303)
    sign_out(response, request)
    return response


def _local(request: Request, target: str) -> str:
    """Where to go after signing in: a path of the console only (never another site)."""
    base = request.scope.get("root_path", "")
    if target.startswith(f"{base}/") and not target.startswith("//") and "\\" not in target:
        return target
    return f"{base}/"
