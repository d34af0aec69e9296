"""Health probes, the goal-type registry and the task payload's schema."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from service.api.deps import GS, Reader
from service.api.schemas import GoalTypePublic, GoalTypesPublic
from service.domain.goal_types import goal_types
from service.domain.tasks import TaskPayload

router = APIRouter()


@router.get("/livez", tags=["health"])
def livez() -> dict[str, str]:
    """The process is up. Checks no dependency, so a slow database never restarts it."""
    return {"status": "ok"}


@router.get("/readyz", tags=["health"], responses={503: {"description": "Not ready"}})
def readyz(gs: GS) -> JSONResponse:
    """Ready to serve: the store answers (schema migrated; the check is named `sqlite` or
    `postgresql`), and Redis answers a PING."""
    checks = gs.readiness()
    ready = all(state != "unavailable" for state in checks.values())
    return JSONResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks},
        status_code=200 if ready else 503,
    )


@router.get("/v1/goal-types", tags=["goal types"])
def list_goal_types(_: Reader) -> GoalTypesPublic:
    """The registered goal types, each with the JSON Schema its result must satisfy."""
    return GoalTypesPublic(
        data=[
            GoalTypePublic(name=t.name, description=t.description, result_schema=t.json_schema())
            for t in goal_types()
        ]
    )


@router.get("/v1/schemas/task-payload", tags=["selection and tasks"])
def task_payload_schema(_: Reader) -> dict[str, Any]:
    """The JSON Schema of a scheduler job's payload: the contract an executor is written
    against (docs/executors.md). Fields are added, never renamed or removed, within a
    `payload_version`."""
    return TaskPayload.model_json_schema()
