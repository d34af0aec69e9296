"""Who is using the console, and whether a form post is theirs.

With GOALSTORE_API_KEYS set, the sign-in form takes an API key and keeps a session for it
in a cookie (HttpOnly: no script reads it; SameSite=Strict: no other site's page sends it;
Secure over HTTPS). The cookie holds no key: it holds when the session began and an HMAC
of that time keyed by the key's SHA-256 digest, which only the key's holder and the
servers (which keep the digests) can make. So a stolen cookie is not a REST credential,
it expires (SESSION_TTL_S), and removing the key from GOALSTORE_API_KEYS ends its
sessions on every node at their next request. Scopes apply as in REST. Without keys (the
embedded quick start) everyone is `anonymous`, as over REST, and there is no sign-in.

Every form carries a CSRF token that must equal the value of a cookie the page set
(double submit): another site can make a browser post, but can neither read that cookie
nor, with SameSite=Strict, have it sent. A post must not come from another site either,
when the browser says where it comes from (Origin, Sec-Fetch-Site).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from service.auth import ApiKey, Scope

SESSION_COOKIE = "goalstore_session"
CSRF_COOKIE = "goalstore_csrf"
CSRF_FIELD = "csrf"
COOKIE_PATH = "/ui"
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}$")  # secrets.token_urlsafe(32)
_SESSION = re.compile(r"^([0-9]{1,12})\.([0-9a-f]{64})$")  # began.mac
SESSION_TTL_S = 12 * 3600  # a session ends this long after its sign-in
_SKEW_S = 60  # a session may say it began this far ahead of this node's clock


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
    key = session_key(keys, request.cookies.get(SESSION_COOKIE, ""), int(time.time()))
    return None if key is None else Viewer(key, csrf, new)


def _mac(key: ApiKey, began: int) -> str:
    message = f"goalstore-console-session:{began}".encode()
    return hmac.new(key.digest, message, hashlib.sha256).hexdigest()


def session_token(key: ApiKey, began: int) -> str:
    """The cookie's value for a session of `key` begun at `began` (epoch seconds)."""
    return f"{began}.{_mac(key, began)}"


def session_key(keys: list[ApiKey], token: str, now: int) -> ApiKey | None:
    """The key whose session `token` is, if it has not expired; every key is tried, in
    constant time, as authenticate() tries them."""
    match = _SESSION.match(token)
    if match is None:
        return None
    began, mac = int(match.group(1)), match.group(2)
    if not now - SESSION_TTL_S <= began <= now + _SKEW_S:
        return None
    found = None
    for key in keys:
        if hmac.compare_digest(_mac(key, began), mac):
            found = key
    return found


def post_is_genuine(request: Request, form: dict[str, str]) -> bool:
    """Whether a form post came from one of our pages: its token equals its cookie's, and
    its Origin, when the browser sent one, is this server's."""
    cookie, sent = request.cookies.get(CSRF_COOKIE, ""), form.get(CSRF_FIELD, "")
    if not (_TOKEN.match(cookie) and hmac.compare_digest(cookie, sent)):
        return False
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
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


def sign_in(response: Response, request: Request, key: ApiKey) -> None:
    """Begin a session of `key` (the cookie has no Max-Age: it ends with the browser
    session, or SESSION_TTL_S after now, whichever comes first)."""
    response.set_cookie(
        SESSION_COOKIE, session_token(key, int(time.time())), path=COOKIE_PATH,
        httponly=True, samesite="strict", secure=_secure(request),
    )  # fmt: skip


def sign_out(response: Response, request: Request) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict",
        secure=_secure(request),
    )  # fmt: skip
