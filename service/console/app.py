"""The console at /ui: server-rendered pages over the same GoalStore methods as REST.

A sub-application mounted in the web app (service/api/app.py), so that its errors are
pages rather than problem+json and its responses are compressed (a refresh of the board
moves a few KB) without touching the API's. Pages are Jinja2 templates, the style one CSS
file, and the only script the vendored htmx (static/htmx.LICENSE), which refreshes the
board in place. Nothing is fetched from elsewhere (the Content-Security-Policy says so).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.gzip import GZipMiddleware

from service.api.errors import RateLimited, validation_errors
from service.console import views
from service.console.session import CSRF_FIELD, Viewer, keep_csrf
from service.domain.errors import GoalStoreError
from service.metrics import RATE_LIMITED, RECORDER
from service.runtime import Services

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.globals.update(when=views.when, CSRF_FIELD=CSRF_FIELD)

REFRESH_S = 3  # the board's refresh
SECURITY_HEADERS = {
    # Scripts and styles from this server only; style attributes are allowed for the bars'
    # widths (the templates escape every value). No framing, no form posts elsewhere.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def render(
    request: Request, template: str, viewer: Viewer | None, status: int = 200, **context: Any
) -> HTMLResponse:
    """A page (or fragment) with the viewer, the CSRF token and the security headers."""
    response = templates.TemplateResponse(
        request, template,
        {"viewer": viewer, "base": request.scope.get("root_path", ""), "refresh_s": REFRESH_S,
         **context},
        status_code=status,
    )  # fmt: skip
    response.headers.update(SECURITY_HEADERS)
    if viewer is not None:
        keep_csrf(response, request, viewer.csrf, viewer.new_csrf)
    return response


def problem_page(
    request: Request, problem: views.Problem, viewer: Viewer | None = None
) -> HTMLResponse:
    return render(request, "problem.html", viewer, problem.status, problem=problem)


def create_console(services: Services) -> FastAPI:
    """The console's application, to mount at /ui."""
    from service.console import actions, pages  # they import render() from here

    console = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    console.state.services = services
    console.add_middleware(GZipMiddleware, minimum_size=1_000)
    console.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    console.include_router(pages.router)
    console.include_router(actions.router)

    @console.exception_handler(GoalStoreError)
    async def on_domain_error(request: Request, exc: GoalStoreError) -> Response:
        return problem_page(request, views.Problem.of(exc))

    @console.exception_handler(RateLimited)
    async def on_rate_limited(request: Request, exc: RateLimited) -> Response:
        RECORDER.inc(RATE_LIMITED, actor=exc.actor)
        response = problem_page(request, views.Problem(429, "Too many writes", str(exc)))
        response.headers["Retry-After"] = str(exc.wait_s)
        return response

    @console.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> Response:
        lines = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in validation_errors(
            exc.errors())]  # fmt: skip
        return problem_page(request, views.Problem(422, "Invalid request", "", lines))

    @console.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> Response:
        title = "Not found" if exc.status_code == 404 else "Refused"
        return problem_page(request, views.Problem(exc.status_code, title, str(exc.detail)))

    @console.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_page(request, views.Problem(500, "Internal error", "see the logs"))

    return console
