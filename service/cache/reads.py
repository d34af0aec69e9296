"""What reads of the ranking cache make of Redis's replies: snapshots as Python values,
and the head of a ranking in the documented total order (the domain's order_key)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from service.domain.blocks import DEADLINE_PASSED, MANUAL_BLOCK, Block
from service.domain.ranking import deadline_passed, held_urgency, order_key


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
    out. A hash without `raw` holds it as its score."""
    out = []
    for goal_id, values in rows:
        if not values[0]:
            continue
        held = [text(v) if v else "" for v in values]  # a field the hash lacks: ""
        score, raw, placement, deadline, created, category, version = held
        out.append({
            "id": goal_id, "score": float(score), "raw": float(raw or score),
            "blocked": placement == "blocked",
            "deadline": instant(deadline) if deadline else None, "created": instant(created),
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


def instant(held: str) -> float:
    """An instant as a hash holds it, in epoch seconds: the hash holds whole epoch
    microseconds, or seconds with a point or an exponent (encoding.instants(); an older
    GoalStore wrote seconds). Either reads back as the float it was written from."""
    if "." in held or "e" in held or "E" in held:
        return float(held)
    return int(held) / 1e6


def decode(goal_id: str, raw: dict[Any, Any]) -> dict[str, Any]:
    """A goal's hash as Python values: every fact of its snapshot, the fields left out
    (encoding.py) read as what they stand for, and, for a scored goal, its explanation as
    the cache keeps it: `urgency` (derived from the deadline and computed_at), `alignment`
    and `blocked_by`. (The terms are not kept: GET /v1/goals/{id}/score has them.)"""
    fields = {text(k): text(v) for k, v in raw.items()}
    placement = fields.get("placement", "none")
    score, deadline = fields.get("score"), fields.get("deadline")
    out: dict[str, Any] = {
        "id": goal_id,
        "state": fields.get("state", "adopted" if placement != "none" else ""),
        "placement": placement,
        "category": fields.get("category", ""),
        "version": int(fields["version"]),
        "score": float(score) if score else None,
        "raw": float(fields.get("raw") or score) if score else None,
        "blocked": placement == "blocked",
        "deadline": instant(deadline) if deadline else None,
        "created": instant(fields["created"]),
        "deleted": fields.get("deleted") == "1",
        "seq": int(fields["seq"]),
        "computed_at": instant(fields["computed_at"]),
        "assigned_to": fields.get("assigned_to"),
        "related": fields.get("related", "").split(),  # ids; "+N": N more (encoding.py)
        "parent_id": fields.get("parent_id"),
        "progress": float(fields.get("progress") or 0.0),
    }
    if score:
        out["urgency"] = held_urgency(out["deadline"], out["computed_at"])
        out["alignment"] = float(fields.get("alignment") or 0.0)
        out["blocked_by"] = blocked_by(
            fields.get("blocked_by", ""), out["deadline"], fields.get("manual_block", "")
        )
    return out


def blocked_by(held: str, deadline: float | None, manual: str = "") -> list[dict[str, object]]:
    """The blocks a hash's `blocked_by` holds (encoding.blocked_text()), as served; a
    manual block's reason is the hash's `manual_block` field."""
    found = []
    for part in held.split():
        reason, _, ref = part.partition(":")
        if reason == DEADLINE_PASSED and deadline is not None:
            found.append(deadline_passed(deadline).as_dict())
        elif reason == MANUAL_BLOCK:
            found.append(Block(reason, ref=manual or "-").as_dict())
        else:
            found.append(Block(reason, ref=ref).as_dict())
    return found
