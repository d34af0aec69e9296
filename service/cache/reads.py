"""What reads of the ranking cache make of Redis's replies: snapshots as Python values,
and the head of a ranking in the documented total order (the domain's order_key)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from service.domain.ranking import order_key


@dataclass(frozen=True)
class Page:
    """The head of a ranking as read from Redis."""

    items: list[dict[str, Any]]  # ordering fields of each goal, best first
    warm: bool  # a rebuild has populated this Redis (an empty, restarted one has not)
    ranked: int  # entries in the ZSET read


# The snapshot fields a ranked read needs of each goal: what ordering reads, and more.
PLACED_FIELDS = ["score", "raw", "placement", "deadline", "created", "category", "version"]


def placed(rows: Iterable[tuple[str, list[Any]]]) -> list[dict[str, Any]]:
    """What ordering needs of each snapshot, from HMGETs of PLACED_FIELDS (a fraction
    of the snapshot to parse); goals unscored or gone since the ZSET was read are left
    out."""
    out = []
    for goal_id, values in rows:
        if not values[0]:
            continue
        score, raw, placement, deadline, created, category, version = map(text, values)
        out.append({
            "id": goal_id, "score": float(score), "raw": float(raw),
            "blocked": placement == "blocked",
            "deadline": float(deadline) if deadline else None, "created": float(created),
            "category": category, "version": int(version),
        })  # fmt: skip
    return out


def ordered(items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Placed snapshots in the documented total order."""
    return sorted(items, key=_order)


def _order(s: dict[str, Any]) -> tuple[bool, float, float, float, float, str]:
    return order_key(s["blocked"], s["score"], s["raw"], s["deadline"], s["created"], s["id"])


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def decode(raw: dict[Any, Any]) -> dict[str, Any]:
    """A snapshot hash as Python values (fields written empty, for a goal that is not
    scored, come back as None)."""
    fields = {text(k): text(v) for k, v in raw.items()}
    out: dict[str, Any] = dict(fields)
    for name in ("score", "raw", "created", "computed_at", "deadline"):
        out[name] = float(fields[name]) if fields.get(name) else None
    for name in ("version", "seq"):
        out[name] = int(fields[name])
    out["blocked"] = fields.get("placement") == "blocked"
    out["deleted"] = fields.get("deleted") == "1"
    explanation = out.pop("explain", "")
    if explanation:
        out.update(orjson.loads(explanation))
    return out
