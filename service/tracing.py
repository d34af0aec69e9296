"""W3C trace context: read an incoming `traceparent`, or start a new trace.

The ids travel with every command into the ledger and the outbox, and on into
jobs, so one trace id ties a request to everything it caused.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")
_INVALID_TRACE = "0" * 32
_INVALID_SPAN = "0" * 16


@dataclass(frozen=True, slots=True)
class TraceContext:
    trace_id: str
    span_id: str
    sampled: bool = True

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{'01' if self.sampled else '00'}"

    def child(self) -> TraceContext:
        """A new span in the same trace, for work this span hands on."""
        return TraceContext(self.trace_id, secrets.token_hex(8), self.sampled)


def new_trace() -> TraceContext:
    return TraceContext(secrets.token_hex(16), secrets.token_hex(8))


def parse_traceparent(header: str | None) -> TraceContext | None:
    """The caller's context, or None when the header is absent or malformed (per the spec)."""
    if not header:
        return None
    match = _TRACEPARENT.match(header.strip())
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest) or _INVALID_TRACE == trace_id:
        return None
    if span_id == _INVALID_SPAN:
        return None
    return TraceContext(trace_id, span_id, bool(int(flags, 16) & 1))


def continue_trace(header: str | None) -> TraceContext:
    """A span of this service's own, in the caller's trace if one came in."""
    parent = parse_traceparent(header)
    return parent.child() if parent else new_trace()
