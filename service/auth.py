"""API keys: who is calling (the actor the ledger records) and what they may do."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from dataclasses import dataclass
from enum import StrEnum


class Scope(StrEnum):
    READ = "read"  # every GET
    WRITE = "write"  # create goals, change one's own, beliefs, outcomes
    EXECUTE = "execute"  # the scheduler's: select goals, report their tasks
    ADMIN = "admin"  # everything, any goal, the decision's weights


# admin may do everything; write and execute may also read. Write does not imply
# execute: a goal's author may not start goals or report tasks as if it ran them.
_IMPLIED = {
    Scope.ADMIN: frozenset(Scope),
    Scope.WRITE: frozenset({Scope.WRITE, Scope.READ}),
    Scope.EXECUTE: frozenset({Scope.EXECUTE, Scope.READ}),
    Scope.READ: frozenset({Scope.READ}),
}


@dataclass(frozen=True)
class ApiKey:
    actor: str
    scopes: frozenset[Scope]
    digest: bytes  # sha256 of the key: the key itself is not kept

    def allows(self, scope: Scope) -> bool:
        return any(scope in _IMPLIED[held] for held in self.scopes)

    @property
    def admin(self) -> bool:
        """Acts with admin rights: may change goals it does not own."""
        return self.allows(Scope.ADMIN)


def parse_api_keys(spec: str | None) -> list[ApiKey]:
    """`actor:read+write:key,ops:admin:key2` into keys; ValueError naming a bad entry (and
    never the key it holds)."""
    keys: list[ApiKey] = []
    for index, part in enumerate((spec or "").split(",")):
        entry = part.strip()
        if not entry:
            continue
        actor, _, rest = entry.partition(":")
        scopes_text, _, key = rest.partition(":")
        try:
            scopes = frozenset(Scope(s) for s in scopes_text.split("+"))
        except ValueError:
            scopes = frozenset()
        if not actor or not scopes or len(key) < 16:
            raise ValueError(
                f"GOALSTORE_API_KEYS entry {index + 1} must be actor:scope[+scope]:key "
                "with scopes from read, write, execute, admin and a key of at least "
                "16 characters"
            )
        digest = hashlib.sha256(key.encode()).digest()
        if any(hmac.compare_digest(digest, known.digest) for known in keys):
            raise ValueError(f"GOALSTORE_API_KEYS entry {index + 1} repeats an earlier key")
        keys.append(ApiKey(actor, scopes, digest))
    return keys


def authenticate(keys: list[ApiKey], presented: str | None) -> ApiKey | None:
    """The key matching `presented`, comparing against every key in constant time."""
    if not presented:
        return None
    digest = hashlib.sha256(presented.encode()).digest()
    found = None
    for key in keys:  # no early exit: the time taken does not depend on which key matched
        if hmac.compare_digest(digest, key.digest):
            found = key
    return found


def presented_key(authorization: str | None, x_api_key: str | None) -> str | None:
    """The key a request presents: `Authorization: Bearer <key>`, else `X-API-Key`."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return x_api_key or None


def anonymous_exposure(host: str, keys: list[ApiKey], allow_anonymous: bool) -> str | None:
    """Why serving on `host` must not start, or None. Without keys every request acts
    as `anonymous`, writes included: fine on loopback (the embedded quick start), refused
    on any other address unless anonymous access is asked for explicitly."""
    if keys or allow_anonymous or _is_loopback(host):
        return None
    return (
        f"refusing to serve on {host} without API keys: anyone who reaches it could change "
        "every goal. Set GOALSTORE_API_KEYS (`actor:scope+scope:key`, from a secret), bind "
        "127.0.0.1, or set GOALSTORE_ALLOW_ANONYMOUS=true to serve anonymously on purpose"
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False
