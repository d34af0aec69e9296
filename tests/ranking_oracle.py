"""The seed's ranking formula written out a second time, independently of service/domain, so
tests can check the service's scores against it (goals without a deadline inside 24 h)."""

from __future__ import annotations

from typing import Any

DEFAULT_WEIGHTS = {"value": 0.5, "effort": 0.25, "risk": 0.15, "alignment": 0.05}


def independent_score(goal: dict[str, Any], weights: dict[str, float], active: set[str]) -> float:
    aligned = goal.get("aligns_with", [])
    alignment = sum(b in active for b in aligned) / len(aligned) if aligned else 0.0
    blocked = any(b in active for b in goal.get("contradicts", []))
    total = (
        weights["value"] * goal["value"]
        + weights["effort"] * (1 - goal["effort"])
        + weights["risk"] * (1 - goal["risk"])
        + weights["alignment"] * alignment
        - (1.0 if blocked else 0.0)
    )
    return min(1.0, max(0.0, total))


def is_blocked(goal: dict[str, Any], active: set[str]) -> bool:
    return any(b in active for b in goal.get("contradicts", []))
