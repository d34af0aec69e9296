"""Health probes and the goal-type registry."""

from __future__ import annotations

import logging
import sqlite3

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError

from service.api.deps import DB, Reader
from service.api.schemas import GoalTypePublic, GoalTypesPublic
from service.domain.goal_types import goal_types

router = APIRouter()
log = logging.getLogger(__name__)


@router.get("/livez", tags=["health"])
def livez() -> dict[str, str]:
    """The process is up. Checks no dependency, so a slow database never restarts it."""
    return {"status": "ok"}


@router.get("/readyz", tags=["health"], responses={503: {"description": "Not ready"}})
def readyz(db: DB, request: Request) -> JSONResponse:
    """Ready to serve: SQLite answers (schema migrated), and Redis answers a PING."""
    checks: dict[str, str] = {}
    try:
        db.connection().execute("SELECT 1 FROM schema_migrations LIMIT 1").fetchall()
        checks["sqlite"] = "ok"
    except sqlite3.Error:
        log.exception("readiness check: SQLite does not answer")
        checks["sqlite"] = "unavailable"
    redis = request.app.state.services.redis
    if redis is None:
        checks["redis"] = "not configured"  # only a hand-built app; `serve` embeds one
    else:
        try:
            redis.ping()
            checks["redis"] = "ok"
        except RedisError as exc:
            log.warning("readiness check: Redis does not answer (%s)", exc)
            checks["redis"] = "unavailable"
    ready = checks["sqlite"] == "ok" and checks["redis"] != "unavailable"
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
