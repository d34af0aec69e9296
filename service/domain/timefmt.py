"""One text form for instants: ISO 8601 in UTC, microseconds, a trailing Z.

Stored rows, ledger payloads and API responses all use it, so equal instants
are equal strings (which the ledger's hash chain and replay rely on).
"""

from __future__ import annotations

from datetime import UTC, datetime


def format_ts(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
