"""Who is using the console, and whether a form post is theirs.

With GOALSTORE_API_KEYS set, the sign-in form takes an API key and keeps it in a session
cookie (HttpOnly: no script reads it; SameSite=Strict: no other site's page sends it;
Secure over HTTPS). Every page then authenticates that key exactly as REST authenticates
`Authorization: Bearer`, and its scopes apply as in REST. Without keys (the embedded quick
start) everyone is `anonymous`, as over REST, and there is no sign-in.

Every form carries a CSRF token that must equal the value of a cookie the page set
(double submit): another site can make a browser post, but can neither read that cookie
nor, with SameSite=Strict, have it sent. A post also must not name another Origin.
"""

from __future__ import annotations

import hmac
import re
import secrets
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from service.auth import ApiKey, Scope, authenticate

SESSION_COOKIE = "goalstore_session"
CSRF_COOKIE = "goalstore_csrf"
CSRF_FIELD = "csrf"
COOKIE_PATH = "/ui"
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}$")  # secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Viewer:
    """The person at the console: their key (None: no keys configured) and CSRF token."""

    key: ApiKey | None
    csrf: str
    new_csrf: bool  # the token is new: the response sets its cookie

    @property
    def actor(self) -> str:
        return self.key.actor if self.key is not None else "anonymous"

    @property
    def signed_in(self) -> bool:
        """Signed in with a key (keyless mode has no sign-in, so no sign-out)."""
        return self.key is not None

    def allows(self, scope: Scope) -> bool:
        return self.key is None or self.key.allows(scope)

    @property
    def can_write(self) -> bool:
        return self.allows(Scope.WRITE)

    @property
    def is_admin(self) -> bool:
        return self.allows(Scope.ADMIN)


def csrf_of(request: Request) -> tuple[str, bool]:
    """The request's CSRF token, and whether it is new (no valid cookie came)."""
    token = request.cookies.get(CSRF_COOKIE, "")
    if _TOKEN.match(token):
        return token, False
    return secrets.token_urlsafe(32), True


def viewer_of(request: Request, keys: list[ApiKey]) -> Viewer | None:
    """Who is at the console; None when keys are configured and no valid one was signed
    in with (the page then asks for one)."""
    csrf, new = csrf_of(request)
    if not keys:
        return Viewer(None, csrf, new)
    key = authenticate(keys, request.cookies.get(SESSION_COOKIE))
    return None if key is None else Viewer(key, csrf, new)


def post_is_genuine(request: Request, form: dict[str, str]) -> bool:
    """Whether a form post came from one of our pages: its token equals its cookie's, and
    its Origin, when the browser sent one, is this server's."""
    cookie, sent = request.cookies.get(CSRF_COOKIE, ""), form.get(CSRF_FIELD, "")
    if not (_TOKEN.match(cookie) and hmac.compare_digest(cookie, sent)):
        return False
    origin = request.headers.get("origin")  # "null" (an opaque origin) is not ours either
    return origin is None or origin == f"{request.url.scheme}://{request.url.netloc}"


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def keep_csrf(response: Response, request: Request, viewer_csrf: str, new: bool) -> None:
    """Set the CSRF cookie when the token is new."""
    if new:
        response.set_cookie(
            CSRF_COOKIE, viewer_csrf, path=COOKIE_PATH, httponly=True, samesite="strict",
            secure=_secure(request),
        )  # fmt: skip


def sign_in(response: Response, request: Request, key: str) -> None:
    """Keep the key in the session cookie (no Max-Age: it ends with the browser session)."""
    response.set_cookie(
        SESSION_COOKIE, key, path=COOKIE_PATH, httponly=True, samesite="strict",
        secure=_secure(request),
    )  # fmt: skip


def sign_out(response: Response, request: Request) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict",
        secure=_secure(request),
    )  # fmt: skip
