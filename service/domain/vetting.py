"""Adoption vetting (DESIGN §3.4): may this goal be adopted, or selected, now?

A goal is blocked when the belief-consistency checker's severity reaches the
threshold, when it contradicts an active belief, or when its deadline has passed.
`aligns_with` ids that are not known beliefs warn and never block.

The built-in checker is deterministic and explainable: a belief whose statement
forbids something ("never ...", "do not ...", "don't ...", "avoid ...", "must not
...", "no ...") conflicts with a goal whose text contains the forbidden words.
Its severity is the share of the forbidden phrase's content words (three letters
or more, stop words aside) found in the goal text; the most severe belief wins,
and every belief that reaches the threshold is named.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from service.domain.beliefs import Belief
from service.domain.blocks import CONTRADICTS_BELIEF, DEADLINE_PASSED, SEVERITY
from service.domain.blocks import Block as Block  # re-exported: selection adds its own blocks
from service.domain.errors import ErrorKind, GoalStoreError
from service.domain.goal import Goal


@dataclass(frozen=True, slots=True)
class Consistency:
    """A checker's answer: how inconsistent (0..1), and with which beliefs."""

    severity: float
    belief_ids: tuple[str, ...] = ()


class BeliefConsistencyChecker(Protocol):
    def check_consistency(
        self, query: str, beliefs: Sequence[Belief], memories: Sequence[str]
    ) -> Consistency: ...


@dataclass
class CheckerUnavailable(GoalStoreError):
    """The checker failed or timed out: adoption is refused, never silently allowed."""

    kind = ErrorKind.UNAVAILABLE
    code = "checker-unavailable"
    title = "Checker unavailable"

    detail: str

    def fields(self) -> dict[str, Any]:
        return {"retry_after_s": self.retry_after_s}

    def __str__(self) -> str:
        return f"the belief-consistency checker did not answer: {self.detail}"


@dataclass
class GoalBlocked(GoalStoreError):
    """Vetting refused the goal: every reason, and the beliefs involved."""

    kind = ErrorKind.CONFLICT
    code = "goal-blocked"
    title = "Blocked by vetting"

    goal_id: str
    verdict: Verdict

    def fields(self) -> dict[str, Any]:
        v = self.verdict
        return {"goal_id": self.goal_id, "belief_ids": v.belief_ids,
                "reasons": [b.as_dict() for b in v.blocks], "severity": v.severity}  # fmt: skip

    def __str__(self) -> str:
        reasons = "; ".join(b.detail for b in self.verdict.blocks)
        return f"goal {self.goal_id!r} is blocked: {reasons}"


_NEGATIONS = re.compile(
    r"\b(?:never|avoid|do not|don't|must not|mustn't|should not|shouldn't|no)\b\s+(.*)",
    re.IGNORECASE,
)
_WORD = re.compile(r"[a-z0-9]{3,}")
_STOP = frozenset(
    [
        "the",
        "and",
        "for",
        "with",
        "any",
        "from",
        "into",
        "that",
        "this",
        "than",
        "then",
        "them",
        "they",
        "their",
        "all",
    ]
)


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP}


class BuiltinChecker:
    """The deterministic checker described in this module's docstring."""

    def check_consistency(
        self, query: str, beliefs: Sequence[Belief], memories: Sequence[str]
    ) -> Consistency:
        goal_words = _words(query)
        found: list[tuple[float, str]] = []
        for belief in beliefs:
            if not belief.active:
                continue
            match = _NEGATIONS.search(belief.statement)
            forbidden = _words(match.group(1)) if match else set()
            if forbidden:
                found.append((len(forbidden & goal_words) / len(forbidden), belief.id))
        if not found:
            return Consistency(0.0)
        severity = max(s for s, _ in found)
        return Consistency(severity, tuple(b for s, b in found if s > 0 and s == severity))


@dataclass(frozen=True)
class Verdict:
    blocks: tuple[Block, ...] = ()
    warnings: tuple[str, ...] = ()
    severity: float = 0.0

    @property
    def allowed(self) -> bool:
        return not self.blocks

    @property
    def belief_ids(self) -> list[str]:
        return sorted({b for block in self.blocks for b in block.belief_ids})


@dataclass(frozen=True)
class VettingInputs:
    beliefs: Mapping[str, Belief]
    consistency: Consistency
    now: datetime
    threshold: float  # GOALSTORE_VET_THRESHOLD, from the composition root


def vet(goal: Goal, inputs: VettingInputs) -> Verdict:
    """The rules of §3.4 over a goal and what the checker said of it."""
    blocks: list[Block] = []
    c = inputs.consistency
    if c.severity >= inputs.threshold:
        blocks.append(
            Block(SEVERITY, f"consistency severity {c.severity:.2f} >= {inputs.threshold}",
                  tuple(sorted(c.belief_ids)))
        )  # fmt: skip
    active = sorted(b for b in goal.contradicts if b in inputs.beliefs and inputs.beliefs[b].active)
    if active:
        blocks.append(Block(CONTRADICTS_BELIEF, "contradicts an active belief", tuple(active)))
    deadline = goal.deadline
    if deadline is not None and deadline <= inputs.now:
        blocks.append(Block(DEADLINE_PASSED, f"the deadline {deadline.isoformat()} has passed"))
    unknown = [b for b in goal.aligns_with if b not in inputs.beliefs]
    warnings = tuple(f"aligns_with names an unknown belief: {b}" for b in unknown)
    return Verdict(tuple(blocks), warnings, c.severity)
