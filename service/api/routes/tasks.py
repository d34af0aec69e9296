"""/v1/goals: select, a goal's tasks (report, verify, reject), and satisfy (the gate)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from service.api.deps import GS, Executor, IfMatch, Reader, Writer, etag, expected_version
from service.api.middleware import StrictJsonRoute
from service.api.routes.responses import EXECUTE_ONLY, OWNER_ONLY
from service.api.schemas import (
    GoalPublic,
    Problem,
    SatisfyBody,
    SelectionPublic,
    SkippedPublic,
    TaskPublic,
    TaskReport,
    TaskReview,
    TasksPublic,
)
from service.domain.tasks import TaskState, progress

router = APIRouter(prefix="/v1/goals", tags=["selection and tasks"], route_class=StrictJsonRoute)

_P = {"model": Problem, "content": {"application/problem+json": {}}}
_ERRORS: dict[int | str, dict[str, Any]] = {401: _P, 403: _P, 404: _P, 409: _P, 422: _P}
_WRITE_ERRORS = {**_ERRORS, 429: _P}  # a write may meet the actor's write limit
_EXECUTE_ERRORS = {**_WRITE_ERRORS, 403: EXECUTE_ONLY}
_OWNER_ERRORS = {**_WRITE_ERRORS, 403: OWNER_ONLY}


@router.post("/select", responses={**_EXECUTE_ERRORS, 503: _P})
def select_goal(ctx: Executor, gs: GS) -> SelectionPublic:
    """The scheduler's (execute scope): claim the best selectable goal, re-vet it, start
    it and put its task on the scheduler queue (one RQ job, job id = task id, the
    caller's trace in `meta`).
    Concurrent calls never emit the same goal version twice. With `GOAL_SHADOW` on the
    answer names the goal that would have been selected and nothing is emitted; with
    `GOAL_SYSTEM` off nothing is selected."""
    selection = gs.select(ctx)
    return SelectionPublic(
        mode=selection.mode,
        goal=GoalPublic.of(selection.goal) if selection.goal else None,
        task=TaskPublic.of(selection.task) if selection.task else None,
        skipped=[SkippedPublic(goal_id=g, reason=r) for g, r in selection.skipped],
    )


@router.get("/{goal_id}/tasks", responses=_ERRORS)
def list_tasks(goal_id: str, _: Reader, gs: GS) -> TasksPublic:
    """Every task of the goal, oldest attempt first, and its progress."""
    tasks = gs.list_tasks(goal_id)
    return TasksPublic(data=[TaskPublic.of(t) for t in tasks], progress=progress(tasks))


@router.post("/{goal_id}/tasks/{task_id}/report", responses=_EXECUTE_ERRORS)
def report_task(goal_id: str, task_id: str, body: TaskReport, ctx: Executor, gs: GS) -> TaskPublic:
    """The executor's report (execute scope). A failed task returns the goal to adopted
    for another attempt (up to GOALSTORE_MAX_ATTEMPTS, then the goal is abandoned)."""
    task = gs.report_task(ctx, task_id, TaskState(body.state), evidence=body.evidence,
        reason=body.reason, goal_id=goal_id
    )  # fmt: skip
    return TaskPublic.of(task)


def _review_route(action: str, summary: str) -> None:
    def route(
        goal_id: str, task_id: str, ctx: Writer, gs: GS, body: TaskReview | None = None
    ) -> TaskPublic:
        task = gs.review_task(ctx, goal_id, task_id, action, reason=body.reason if body else None
        )  # fmt: skip
        return TaskPublic.of(task)

    router.add_api_route(f"/{{goal_id}}/tasks/{{task_id}}/{action}", route, methods=["POST"],
                         name=f"{action}_task", description=summary,
                         responses=_OWNER_ERRORS)  # fmt: skip


_review_route("verify", "Accept a succeeded task's evidence (the goal's owner or an admin).")
_review_route(
    "reject", "Refuse a succeeded task's evidence: a failed attempt (the goal's owner or an admin)."
)


@router.post("/{goal_id}/satisfy", responses=_OWNER_ERRORS)
def satisfy_goal(
    goal_id: str, body: SatisfyBody, version: IfMatch, ctx: Writer, gs: GS, response: Response
) -> GoalPublic:
    """The verification gate, for the goal's owner or an admin: every live task verified
    (else 409 with the counts) and a result valid for the goal's type (else 422 listing
    every error, kept in the goal's history as a GoalFailure). Satisfying again changes
    nothing."""
    goal = gs.satisfy_goal(
        ctx, goal_id, body.result, expected_version(version, body.expected_version)
    )
    response.headers["ETag"] = etag(goal.version)
    return GoalPublic.of(goal)
