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

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.errors import send_problem
from service.api.middleware import replaying
from service.auth import authenticate, presented_key
from service.cache.idempotency import IdempotencyUnavailable
from service.runtime import Services

log = logging.getLogger(__name__)

# Not traceparent: a replay is answered in the trace of the request that asked for it.
_KEPT_HEADERS = {b"content-type", b"etag", b"location"}


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app, self.services = app, services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope.get("headers", ()))
        raw_key = headers.get(b"idempotency-key")
        if scope["type"] != "http" or scope["method"] != "POST" or raw_key is None:
            await self.app(scope, receive, send)
            return
        if not 1 <= len(raw_key) <= 255:
            await send_problem(send, scope, 400, "bad-idempotency-key", "Bad Idempotency-Key",
                               "Idempotency-Key must be 1 to 255 characters")  # fmt: skip
            return
        body = await _read(receive)
        fingerprint = hashlib.sha256(
            scope["method"].encode() + b" " + scope["path"].encode() + b"\n" + body
        ).hexdigest()
        actor, key = self._actor(headers), raw_key.decode("latin-1")
        records = self.services.idempotency
        try:
            held = await run_in_threadpool(records.begin, actor, key, fingerprint)
        except IdempotencyUnavailable as exc:
            log.warning("Idempotency-Key refused: %s", exc)
            await send_problem(send, scope, 503, exc.code, exc.title, str(exc))
            return
        if held is not None:
            await self._answer_repeat(scope, send, held, fingerprint)
            return
        await self._run_and_keep(scope, replaying(body, receive), send, (actor, key), fingerprint)

    def _actor(self, headers: dict[bytes, bytes]) -> str:
        keys = self.services.api_keys
        if not keys:
            return "anonymous"
        authorization = headers.get(b"authorization", b"").decode("latin-1")
        presented = presented_key(authorization, headers.get(b"x-api-key", b"").decode("latin-1"))
        found = authenticate(keys, presented)
        return found.actor if found else "unauthenticated"

    async def _answer_repeat(
        self, scope: Scope, send: Send, record: dict[str, Any], fingerprint: str
    ) -> None:
        if record.get("fingerprint") != fingerprint:
            await send_problem(send, scope, 422, "idempotency-key-reused", "Idempotency-Key reused",
                               "this Idempotency-Key was used for a different request")  # fmt: skip
            return
        if record.get("state") != "done":
            running = "the first request with this Idempotency-Key is still running"
            await send_problem(send, scope, 409, "idempotency-in-flight", "Request in flight",
                               running)  # fmt: skip
            return
        kept = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in record["headers"]]
        await send({"type": "http.response.start", "status": record["status"],
                    "headers": [*kept, (b"idempotent-replayed", b"true")]})  # fmt: skip
        await send({"type": "http.response.body", "body": record["body"].encode()})

    async def _run_and_keep(
        self, scope: Scope, receive: Receive, send: Send, held: tuple[str, str], fingerprint: str
    ) -> None:
        """Run the request; keep its response before the client sees the last of it, so a
        retry sent the moment the response arrives is a replay, not a 409 "still running"."""
        status, finished = 500, False
        kept: list[tuple[str, str]] = []
        parts: list[bytes] = []
        records = self.services.idempotency

        async def keep() -> None:
            try:
                if status >= 500:
                    await run_in_threadpool(records.release, *held)  # let the client retry
                    return
                # A response cut short (the app failed after a 2xx start) is kept as far
                # as it went: its command may have committed, so it must not run again.
                record = {"fingerprint": fingerprint, "status": status, "headers": kept,
                          "body": b"".join(parts).decode()}  # fmt: skip
                await run_in_threadpool(records.keep, *held, record)
            except (IdempotencyUnavailable, UnicodeDecodeError) as exc:  # the response goes out
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
