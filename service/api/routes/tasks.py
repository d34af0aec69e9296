"""/v1/goals: select, a goal's tasks (report, verify, reject), and satisfy (the gate)."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from service.api.deps import GS, Executor, IfMatch, Reader, Writer, etag, expected_version
from service.api.middleware import StrictJsonRoute
from service.api.routes.responses import (
    EXECUTE_ERRORS,
    OWNER_ERRORS,
    PROBLEM,
    WRITE_ERRORS,
)
from service.api.schemas import (
    GoalPublic,
    SatisfyBody,
    SelectionPublic,
    TaskCreate,
    TaskPublic,
    TaskReport,
    TaskReview,
    TasksPublic,
)
from service.domain.tasks import TaskState, progress

router = APIRouter(prefix="/v1/goals", tags=["selection and tasks"], route_class=StrictJsonRoute)


@router.post("/select", responses={**EXECUTE_ERRORS, 503: PROBLEM})
def select_goal(ctx: Executor, gs: GS) -> SelectionPublic:
    """The scheduler's (execute scope): claim the best selectable goal, re-vet it, start
    it and put its task on the scheduler queue (one RQ job, job id = task id, the
    caller's trace in `meta`).
    Concurrent calls never emit the same goal version twice. With `GOAL_SHADOW` on the
    answer names the goal that would have been selected and nothing is emitted; with
    `GOAL_SYSTEM` off nothing is selected."""
    return SelectionPublic.of(gs.select(ctx))


@router.get("/{goal_id}/tasks", responses=WRITE_ERRORS)
def list_tasks(goal_id: str, _: Reader, gs: GS) -> TasksPublic:
    """Every task of the goal, oldest attempt first, and its progress."""
    tasks = gs.list_tasks(goal_id)
    return TasksPublic(data=[TaskPublic.of(t) for t in tasks], progress=progress(tasks))


@router.post("/{goal_id}/tasks/{task_id}/report", responses=EXECUTE_ERRORS)
def report_task(goal_id: str, task_id: str, body: TaskReport, ctx: Executor, gs: GS) -> TaskPublic:
    """The executor's report (execute scope). A failed task returns the goal to adopted
    for another attempt (up to GOALSTORE_MAX_ATTEMPTS, then the goal is abandoned)."""
    task = gs.report_task(ctx, task_id, TaskState(body.state), evidence=body.evidence,
        reason=body.reason, goal_id=goal_id
    )  # fmt: skip
    return TaskPublic.of(task)


@router.post("/{goal_id}/tasks", status_code=status.HTTP_201_CREATED, responses=OWNER_ERRORS)
def create_task(
    goal_id: str, body: TaskCreate, version: IfMatch, ctx: Writer, gs: GS
) -> TaskPublic:
    """Record work done outside selection (the goal's owner or an admin): a task of
    origin `manual`, created `running`; report it done with the report endpoint, then
    verify it like any task. An adopted goal starts executing; an executing one gains a
    live task (either way the goal's version moves on: `goal_task_added`). 409 on a
    proposed, finished or manually blocked goal."""
    based_on = expected_version(version, body.expected_version)
    task = gs.create_task(
        ctx, goal_id, evidence=body.evidence, note=body.note, expected_version=based_on
    )
    return TaskPublic.of(task)


def _review_route(action: str, summary: str) -> None:
    def route(
        goal_id: str, task_id: str, ctx: Writer, gs: GS, body: TaskReview | None = None
    ) -> TaskPublic:
        task = gs.review_task(ctx, goal_id, task_id, action, reason=body.reason if body else None,
                              expected_version=body.expected_version if body else None)  # fmt: skip
        return TaskPublic.of(task)

    router.add_api_route(f"/{{goal_id}}/tasks/{{task_id}}/{action}", route, methods=["POST"],
                         name=f"{action}_task", description=summary,
                         responses=OWNER_ERRORS)  # fmt: skip


_review_route("verify", "Accept a succeeded task's evidence (the goal's owner or an admin).")
_review_route(
    "reject", "Refuse a succeeded task's evidence: a failed attempt (the goal's owner or an admin)."
)


@router.post("/{goal_id}/satisfy", responses=OWNER_ERRORS)
def satisfy_goal(
    goal_id: str, body: SatisfyBody, version: IfMatch, ctx: Writer, gs: GS, response: Response
) -> GoalPublic:
    """The verification gate, for the goal's owner or an admin: every live task verified
    (a goal with children: none open, else 409 `children-open`; none held abandoned) and
    every acceptance criterion met (else 409 with the counts, `unmet_criteria` and
    `tree_block`)
    and a result valid for the goal's type (else 422 listing every error, with the
    GoalFailure's error_type, suggestions and debug_info; kept as the goal's
    `last_failure`). The goal then shows its typed `result`. A stale version is a 409 and
    a goal_conflict_detected event. Satisfying again changes nothing."""
    goal = gs.satisfy_goal(
        ctx, goal_id, body.result, expected_version(version, body.expected_version)
    )
    response.headers["ETag"] = etag(goal.version)
    return GoalPublic.of(goal)
