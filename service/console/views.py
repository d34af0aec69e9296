"""What the templates draw, made from the commands' results: no I/O here."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from service.api.errors import HTTP_STATUS
from service.domain.errors import GoalStoreError
from service.domain.goal import TERMINAL_STATES, Goal, GoalState
from service.domain.ranking import Score
from service.domain.timefmt import parse_ts

# The score's terms a bar draws, in the order /score lists them (the penalty is not drawn:
# a blocked goal is listed apart, with its reasons).
BAR_TERMS = ("value", "effort", "risk", "urgency", "alignment")

# What each block reason reads as, for people.
REASONS = {
    "contradicts_belief": "contradicts the active belief",
    "dependency_unsatisfied": "waits on the unsatisfied goal",
    "deadline_passed": "its deadline passed at",
    "manual_block": "blocked by hand:",
    "open_children": "has open children, e.g.",
    "ancestor_blocked": "an ancestor is blocked:",
    "child_abandoned": "holds an abandoned child:",
}


@dataclass(frozen=True)
class Segment:
    term: str
    value: float
    percent: float  # of the bar, which spans scores 0..1


def segments(score: Score) -> list[Segment]:
    """One segment per drawn term: its width is the term's share of the 0..1 scale (of
    the terms' sum instead when that passes 1: weights may add up to more than 1)."""
    scale = max(1.0, sum(max(0.0, score.terms[name]) for name in BAR_TERMS))
    return [
        Segment(name, score.terms[name], round(max(0.0, score.terms[name]) / scale * 100, 3))
        for name in BAR_TERMS
    ]


def described(score: Score) -> str:
    """The bar in words, for screen readers: the score, then every term."""
    terms = ", ".join(f"{name} {score.terms[name]:.3f}" for name in BAR_TERMS)
    return f"score {score.score:.3f}: {terms}"


def reasons(score: Score) -> list[dict[str, object]]:
    """The blocks, each as served by /score, with its text for people."""
    return [{**b.as_dict(), "text": REASONS.get(b.reason, b.reason)} for b in score.blocked_by]


def can_adopt(goal: Goal) -> bool:
    return goal.state is GoalState.PROPOSED and not goal.is_deleted


def can_abandon(goal: Goal) -> bool:
    return goal.state not in TERMINAL_STATES and not goal.is_deleted


def when(value: datetime | str | float | None) -> str:
    """A time as people read it here: UTC to the second. Takes a datetime, ISO 8601 text
    or epoch seconds (as text too: the cache's meta keeps them so)."""
    if value is None or value == "":
        return "-"
    moment: datetime
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    elif isinstance(value, str) and not _is_number(value):
        moment = parse_ts(value)
    else:
        moment = datetime.fromtimestamp(float(value), UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Problem:
    """An error as a page shows it: what REST would answer, in words."""

    status: int
    title: str
    detail: str
    lines: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, exc: GoalStoreError) -> Problem:
        found: dict[str, Any] = exc.fields()
        lines = []
        if "current_version" in found:
            lines.append(
                f"This goal is now at version {found['current_version']}; the page showed "
                f"version {found.get('expected_version')}. Read it again and decide anew."
            )
        for err in found.get("errors", []):
            lines.append(f"{'.'.join(map(str, err.get('loc', ())))}: {err.get('msg', '')}")
        for block in found.get("reasons", []):  # vetting's refusal: every reason, its beliefs
            beliefs = ", ".join(block.get("belief_ids", ())) or block.get("ref", "")
            lines.append(f"{block.get('reason')}: {block.get('detail') or ''} ({beliefs})")
        detail = "" if found.get("errors") else str(exc)  # the lines name every field
        return cls(HTTP_STATUS[exc.kind], exc.title, detail, lines)
