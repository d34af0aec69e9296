"""`Idempotency-Key` on POST (IETF draft-ietf-httpapi-idempotency-key-header; DESIGN §7).

The first request with a key runs; its response (status, headers, body) is kept 24 h
under `goalstore:idem:{actor}:{key}` with a fingerprint of the request (method, path,
body). The same key again:

- same fingerprint, first one finished: the first response, replayed as it was
  (`Idempotent-Replayed: true`);
- same fingerprint, first one still running: 409;
- another fingerprint: 422 (the key is being reused for a different request).

Keys are per actor (the API key's actor; `anonymous` without keys). A response of 500
or more is not kept, so the client may retry with the same key. The key needs Redis:
without one (or with Redis down) a request carrying it is refused with 503 rather than
run without the guarantee it asks for.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import orjson
from redis.exceptions import RedisError
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.middleware import replaying
from service.auth import authenticate
from service.runtime import Services

log = logging.getLogger(__name__)

TTL_S = 24 * 3600
IN_FLIGHT_TTL_S = 300  # a request that died mid-flight frees its key after this
_KEPT_HEADERS = {b"content-type", b"etag", b"location", b"traceparent"}


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app, self.services = app, services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope.get("headers", ()))
        key = headers.get(b"idempotency-key")
        if scope["type"] != "http" or scope["method"] != "POST" or key is None:
            await self.app(scope, receive, send)
            return
        if not 1 <= len(key) <= 255:
            await _problem(send, scope, 400, "bad-idempotency-key",
                           "Idempotency-Key must be 1 to 255 characters")  # fmt: skip
            return
        redis = self.services.redis
        if redis is None:
            await _problem(send, scope, 503, "idempotency-unavailable",
                           "Idempotency-Key needs Redis (GOALSTORE_REDIS_URL)")  # fmt: skip
            return
        body = await _read(receive)
        fingerprint = hashlib.sha256(
            scope["method"].encode() + b" " + scope["path"].encode() + b"\n" + body
        ).hexdigest()
        actor = self._actor(headers)
        name = self.services.keys.idempotency(actor, key.decode("latin-1"))
        pending = orjson.dumps({"state": "in_flight", "fingerprint": fingerprint})
        try:
            first = await run_in_threadpool(redis.set, name, pending, nx=True, ex=IN_FLIGHT_TTL_S)
            held = None if first else await run_in_threadpool(redis.get, name)
        except RedisError as exc:
            log.warning("Idempotency-Key refused: Redis does not answer (%s)", exc)
            await _problem(send, scope, 503, "idempotency-unavailable",
                           "Idempotency-Key needs Redis, which does not answer")  # fmt: skip
            return
        if not first:
            await self._answer_repeat(scope, send, held, fingerprint)
            return
        await self._run_and_keep(scope, replaying(body, receive), send, name, fingerprint)

    def _actor(self, headers: dict[bytes, bytes]) -> str:
        keys = self.services.api_keys
        if not keys:
            return "anonymous"
        authorization = headers.get(b"authorization", b"").decode("latin-1")
        scheme, _, token = authorization.partition(" ")
        presented = token.strip() if scheme.lower() == "bearer" and token else None
        presented = presented or headers.get(b"x-api-key", b"").decode("latin-1") or None
        found = authenticate(keys, presented)
        return found.actor if found else "unauthenticated"

    async def _answer_repeat(self, scope: Scope, send: Send, held: Any, fingerprint: str) -> None:
        record: dict[str, Any] = orjson.loads(held) if held else {}
        if record.get("fingerprint") != fingerprint:
            await _problem(send, scope, 422, "idempotency-key-reused",
                           "this Idempotency-Key was used for a different request")  # fmt: skip
            return
        if record.get("state") != "done":
            running = "the first request with this Idempotency-Key is still running"
            await _problem(send, scope, 409, "idempotency-in-flight", running)
            return
        kept = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in record["headers"]]
        await send({"type": "http.response.start", "status": record["status"],
                    "headers": [*kept, (b"idempotent-replayed", b"true")]})  # fmt: skip
        await send({"type": "http.response.body", "body": record["body"].encode()})

    async def _run_and_keep(
        self, scope: Scope, receive: Receive, send: Send, name: str, fingerprint: str
    ) -> None:
        """Run the request; keep its response before the client sees the last of it, so a
        retry sent the moment the response arrives is a replay, not a 409 "still running"."""
        status, finished = 500, False
        kept: list[tuple[str, str]] = []
        parts: list[bytes] = []
        redis = self.services.redis
        assert redis is not None

        async def keep() -> None:
            try:
                if status >= 500:
                    await run_in_threadpool(redis.delete, name)  # let the client retry
                    return
                # A response cut short (the app failed after a 2xx start) is kept as far
                # as it went: its command may have committed, so it must not run again.
                record = orjson.dumps({
                    "state": "done", "fingerprint": fingerprint, "status": status,
                    "headers": kept, "body": b"".join(parts).decode(),
                })  # fmt: skip
                await run_in_threadpool(redis.set, name, record, ex=TTL_S)
            except (RedisError, UnicodeDecodeError) as exc:  # the response still goes out
                log.warning("Idempotency-Key response not kept (%s)", exc)

        async def capture(message: Message) -> None:
            nonlocal status, finished
            if message["type"] == "http.response.start":
                status = message["status"]
                for k, v in message.get("headers", ()):
                    if k.lower() in _KEPT_HEADERS:
                        kept.append((k.decode("latin-1"), v.decode("latin-1")))
            elif message["type"] == "http.response.body":
                parts.append(message.get("body", b""))
                if not message.get("more_body", False):
                    finished = True
                    await keep()
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            if not finished:  # the app failed before its response was whole (or began)
                await keep()


async def _read(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _problem(send: Send, scope: Scope, status: int, slug: str, detail: str) -> None:
    body = orjson.dumps({
        "type": f"urn:goalstore:problem:{slug}", "title": detail, "status": status,
        "detail": detail, "instance": scope.get("path"),
    })  # fmt: skip
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/problem+json")]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})
