"""Vetting as the commands run it: consult the checker, then apply the rules (§3.4)."""

from __future__ import annotations

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
        self, conn: Connection, goal: Goal, consistency: Consistency, now: datetime
    ) -> Verdict:
        """The rules over the beliefs as they are inside the caller's transaction."""
        beliefs = {b.id: b for b in belief_table.listing(conn)}
        return vet(goal, VettingInputs(beliefs, consistency, now, self.threshold))
