"""Vetting as the commands run it: consult the checker, then apply the rules (§3.4)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from service.domain.beliefs import Belief
from service.domain.goal import Goal
from service.domain.vetting import (
    BeliefConsistencyChecker,
    Consistency,
    Verdict,
    VettingInputs,
    vet,
)
from service.store import beliefs as belief_table
from service.store.db import Connection


@dataclass(frozen=True)
class Vetting:
    """Which checker to ask and the severity that blocks."""

    checker: BeliefConsistencyChecker
    threshold: float  # GOALSTORE_VET_THRESHOLD

    def consult(self, goal: Goal, beliefs: list[Belief]) -> Consistency:
        """Ask the checker about a goal. Called outside any transaction: it may be HTTP."""
        active = [b for b in beliefs if b.active]
        return self.checker.check_consistency(goal.text, active, ())

    def verdict(
        self, conn: Connection, goal: Goal, consistency: Consistency, now: datetime,
        beliefs: Sequence[Belief] | None = None,
    ) -> Verdict:  # fmt: skip
        """The rules over the beliefs as they are inside the caller's transaction
        (`beliefs`: as it has read them already; None: read now)."""
        inside = belief_table.listing(conn) if beliefs is None else beliefs
        by_id = {b.id: b for b in inside}
        return vet(goal, VettingInputs(by_id, consistency, now, self.threshold))
