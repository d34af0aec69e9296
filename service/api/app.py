"""The FastAPI application factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol

from fastapi import FastAPI

from service import __version__
from service.api import openapi
from service.api.errors import install_error_handlers
from service.api.idempotency import IdempotencyMiddleware
from service.api.metrics import registry_for
from service.api.metrics import router as metrics_router
from service.api.middleware import BodyLimitMiddleware, TraceMiddleware
from service.api.routes import annotations as goal_annotations
from service.api.routes import beliefs, decisions, goals, meta, tasks, trees
from service.console.app import create_console
from service.mcp.http import mcp_route
from service.runtime import Services

log = logging.getLogger(__name__)


class Background(Protocol):
    """Work that lives as long as the app (the embedded mode's workers)."""

    def start(self) -> object: ...
    def stop(self) -> None: ...


def create_app(services: Services, *, background: Background | None = None) -> FastAPI:
    mcp, mcp_endpoint = mcp_route(services)  # MCP at /mcp (docs/mcp.md)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        applied = services.goalstore.migrate()
        if applied:
            log.info("applied migrations", extra={"migrations": applied})
        if not services.api_keys:
            log.warning(
                "GOALSTORE_API_KEYS is unset: serving WITHOUT authentication; "
                "every request acts as 'anonymous'"
            )
        try:
            if background is not None:
                background.start()
            async with mcp_endpoint.running():
                yield
        finally:
            if background is not None:
                background.stop()
            services.close()

    app = FastAPI(
        title="GoalStore",
        version=__version__,
        summary="Durable, ranked goals for autonomous agents, with a hash-chained ledger.",
        lifespan=lifespan,
    )
    app.state.services = services
    app.state.metrics_registry = registry_for(services)
    install_error_handlers(app)
    # The last added is the outermost: the trace first (every answer, a refusal of the
    # body limit or of an Idempotency-Key too, carries its trace id), then the body
    # limit, then idempotency (which reads bodies the limit has already bounded).
    app.add_middleware(IdempotencyMiddleware, services=services)
    app.add_middleware(BodyLimitMiddleware, max_bytes=services.settings.max_body_bytes)
    app.add_middleware(TraceMiddleware)
    app.include_router(meta.router)
    app.include_router(metrics_router)
    app.include_router(goals.router)
    app.include_router(trees.router)
    app.include_router(tasks.router)
    app.include_router(goal_annotations.router)
    app.include_router(beliefs.router)
    app.include_router(decisions.router)
    app.router.routes.insert(0, mcp)  # first: matched before the REST routes are tried
    app.mount("/ui", create_console(services))  # the console (docs/console.md)
    openapi.install(app)
    return app
