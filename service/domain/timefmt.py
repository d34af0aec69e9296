"""One text form for instants: ISO 8601 in UTC, microseconds, a trailing Z.

Stored rows, ledger payloads and API responses all use it, so equal instants
are equal strings (which the ledger's hash chain and replay rely on).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt


def format_ts(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def epoch_us(texts: Sequence[str]) -> npt.NDArray[np.int64]:
    """Many format_ts() texts as epoch microseconds, parsed by NumPy in one
    call rather than parse_ts() one at a time (a rebuild reads 100k of them)."""
    naive = [text.removesuffix("Z") for text in texts]  # format_ts() writes UTC only
    return np.array(naive, dtype="datetime64[us]").astype(np.int64)
