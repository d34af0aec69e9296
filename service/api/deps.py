"""What routes receive: the services, the caller's command context, version preconditions."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from service.api.errors import RateLimited
from service.auth import ApiKey, Scope, authenticate, presented_key
from service.commands import Context
from service.runtime import Services
from service.usecases import GoalStore

ANONYMOUS = "anonymous"


# The dependencies are `async def` though they do not await: they do no I/O, and FastAPI
# runs a sync dependency in the thread pool: a hop per dependency per request.


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def get_goalstore(services: Annotated[Services, Depends(get_services)]) -> GoalStore:
    return services.goalstore


def _caller(request: Request, services: Services) -> ApiKey | None:
    if not services.api_keys:
        return None
    presented = presented_key(
        request.headers.get("authorization"), request.headers.get("x-api-key")
    )
    key = authenticate(services.api_keys, presented)
    if key is None:
        raise HTTPException(401, "a valid API key is required (Authorization: Bearer <key>)")
    return key


async def context_of(
    request: Request, services: Services, key: ApiKey | None, scope: Scope
) -> Context:
    """The Context of a caller holding `key` (None: no keys configured), once the key
    holds `scope` (403 otherwise) and, for any scope but read, its actor's write limit
    allows one more (RateLimited otherwise). The console signs its callers in with the
    same keys and calls this too."""
    if key is not None and not key.allows(scope):
        raise HTTPException(403, f"this API key lacks the {scope.value} scope")
    actor = key.actor if key else ANONYMOUS
    limiter = services.rate_limiter
    if scope is not Scope.READ and limiter is not None:  # reads are never limited
        wait_s = await run_in_threadpool(limiter.wait_s, actor)  # Redis: not on the loop
        if wait_s > 0:
            raise RateLimited(actor, wait_s)
    admin = key.admin if key is not None else True
    return Context(actor=actor, trace=request.state.trace, admin=admin)


def require(scope: Scope) -> object:
    """The caller's Context, once its key holds `scope`. Its actor is the key's (never the
    key itself); it acts as admin with an admin key, and without keys configured (every
    caller is `anonymous`, the keyless quick start: the owner rule would only lock it
    out of goals the CLI or a scenario created)."""

    async def context(
        request: Request, services: Annotated[Services, Depends(get_services)]
    ) -> Context:
        return await context_of(request, services, _caller(request, services), scope)

    return Depends(context)


GS = Annotated[GoalStore, Depends(get_goalstore)]
Svc = Annotated[Services, Depends(get_services)]
Reader = Annotated[Context, require(Scope.READ)]
Writer = Annotated[Context, require(Scope.WRITE)]
Executor = Annotated[Context, require(Scope.EXECUTE)]  # the scheduler: select, task reports
Admin = Annotated[Context, require(Scope.ADMIN)]

_ETAG = re.compile(r'^"(\d{1,18})"$')
# What if_match() takes, for the OpenAPI document (empty: as if absent).
_IF_MATCH_PATTERN = r'^\s*(\*|"\d{1,18}")?\s*$'
ANY_VERSION = 0  # If-Match: * -- the caller asks for the change whatever the version


def etag(version: int) -> str:
    return f'"{version}"'


async def if_match(
    value: Annotated[
        str | None,
        Header(
            alias="If-Match",
            description='The goal\'s ETag, e.g. "3", or * for any version (anything else: 400).',
            json_schema_extra={"pattern": _IF_MATCH_PATTERN},
        ),
    ] = None,
) -> int | None:
    if value is None or not value.strip():  # an empty If-Match names no version: absent
        return None
    if value.strip() == "*":
        return ANY_VERSION
    match = _ETAG.match(value.strip())
    if match is None:
        raise HTTPException(400, 'If-Match must be one strong ETag as returned, e.g. "3", or *')
    return int(match.group(1))


def expected_version(header: int | None, body: int | None) -> int | None:
    """The version a change is based on, from If-Match or the body (they must agree)."""
    if header is not None and body is not None and header not in (body, ANY_VERSION):
        raise HTTPException(400, "If-Match and expected_version name different versions")
    chosen = header if header is not None else body
    return None if chosen == ANY_VERSION else chosen


IfMatch = Annotated[int | None, Depends(if_match)]
