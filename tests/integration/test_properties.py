"""Random command sequences against a real SQLite file, checked against a small model.

The model is written from the rules (DESIGN.md §3.1, §5), not from the code:
versions start at 1 and go up by one per change; a stale version is a conflict
that is logged and changes nothing; repeating adopt/abandon/delete changes
nothing; deleted goals are not found; terminal goals cannot change.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from service import commands
from service.domain.errors import (
    GoalAlreadyExists,
    GoalNotFound,
    IllegalTransition,
    VersionConflict,
)
from service.domain.inputs import GoalCreate, GoalUpdate
from service.testing import default_vetting, goal_spec, make_context, migrated_database

GOAL_IDS = ("g-a", "g-b", "g-c")
VALUES = (0.1, 0.6, 0.9)  # 0.6 is goal_spec's value: some updates change nothing
TERMINAL = ("satisfied", "abandoned")
# The version a command is sent with, relative to the current one; None sends no version.
VERSION_OFFSETS = st.sampled_from([0, 0, -1, 1, 2])
OPTIONAL_OFFSETS = st.sampled_from([None, 0, 0, -1, 1])

Outcome = type[Exception] | bool  # an exception the command must raise, or its `changed`


@dataclass
class ModelGoal:
    state: str = "proposed"
    version: int = 1
    deleted: bool = False
    value: float = 0.6


class GoalCommands(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.directory = tempfile.mkdtemp(prefix="goalstore-props-")
        self.db = migrated_database(Path(self.directory) / "goalstore.db")
        self.ctx = make_context("hypothesis")
        self.model: dict[str, ModelGoal] = {}
        self.events = 0

    def teardown(self) -> None:
        self.db.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    # --- helpers ---

    def _sent_version(self, goal_id: str, offset: int | None) -> int | None:
        if offset is None:
            return None
        current = self.model[goal_id].version if goal_id in self.model else 1
        return max(1, current + offset)

    def _stale(self, goal: ModelGoal, sent: int | None) -> bool:
        return sent is not None and sent != goal.version

    def _check(self, outcome: Outcome, call: Callable[[], Any]) -> None:
        if isinstance(outcome, bool):
            assert outcome == call().changed
        else:
            with pytest.raises(outcome):
                call()

    # --- rules ---

    @rule(goal_id=st.sampled_from(GOAL_IDS))
    def create(self, goal_id: str) -> None:
        spec = GoalCreate.model_validate(goal_spec(id=goal_id))
        if goal_id in self.model:  # deleted or not, the id is taken
            self._check(GoalAlreadyExists, lambda: commands.create_goal(self.db, self.ctx, spec))
            return
        commands.create_goal(self.db, self.ctx, spec)
        self.model[goal_id] = ModelGoal()
        self.events += 1

    @rule(goal_id=st.sampled_from(GOAL_IDS), value=st.sampled_from(VALUES), offset=VERSION_OFFSETS)
    def update(self, goal_id: str, value: float, offset: int) -> None:
        sent = self._sent_version(goal_id, offset)
        goal = self.model.get(goal_id)
        outcome: Outcome
        if goal is None or goal.deleted:
            outcome = GoalNotFound
        elif self._stale(goal, sent):
            outcome = VersionConflict
            self.events += 1
        elif goal.state in TERMINAL:
            outcome = IllegalTransition
        elif goal.value == value:
            outcome = False
        else:
            outcome = True
            goal.value, goal.version = value, goal.version + 1
            self.events += 1
        self._check(
            outcome,
            lambda: commands.update_goal(self.db, self.ctx, goal_id, GoalUpdate(value=value), sent),
        )

    @rule(
        goal_id=st.sampled_from(GOAL_IDS),
        action=st.sampled_from(["adopt", "abandon"]),
        offset=OPTIONAL_OFFSETS,
    )
    def lifecycle(self, goal_id: str, action: str, offset: int | None) -> None:
        sources, target = {
            "adopt": (("proposed",), "adopted"),
            "abandon": (("proposed", "adopted", "executing"), "abandoned"),
        }[action]
        sent = self._sent_version(goal_id, offset)
        goal = self.model.get(goal_id)
        outcome: Outcome
        if goal is None:
            outcome = GoalNotFound
        elif (
            goal.state == target and not goal.deleted
        ):  # repeating it is safe, whatever the version
            outcome = False
        elif goal.deleted:
            outcome = GoalNotFound
        elif self._stale(goal, sent):
            outcome = VersionConflict
            self.events += 1
        elif goal.state not in sources:
            outcome = IllegalTransition
        else:
            outcome = True
            goal.state, goal.version = target, goal.version + 1
            self.events += 1
        if action == "adopt":
            vetting = default_vetting()
            self._check(outcome, lambda: commands.adopt_goal(self.db, self.ctx, goal_id, sent,
                                                             vetting=vetting))  # fmt: skip
        else:
            self._check(outcome, lambda: commands.abandon_goal(self.db, self.ctx, goal_id, sent))

    @rule(goal_id=st.sampled_from(GOAL_IDS), offset=OPTIONAL_OFFSETS)
    def delete(self, goal_id: str, offset: int | None) -> None:
        sent = self._sent_version(goal_id, offset)
        goal = self.model.get(goal_id)
        outcome: Outcome
        if goal is None:
            outcome = GoalNotFound
        elif goal.deleted:
            outcome = False
        elif self._stale(goal, sent):
            outcome = VersionConflict
            self.events += 1
        else:
            outcome = True
            goal.deleted, goal.version = True, goal.version + 1
            self.events += 1
        self._check(outcome, lambda: commands.delete_goal(self.db, self.ctx, goal_id, sent))

    # --- invariants ---

    @invariant()
    def table_matches_model(self) -> None:
        rows = self.db.connection().execute(
            "SELECT id, state, version, deleted_at, value FROM goals"
        )
        table = {r["id"]: (r["state"], r["version"], r["deleted_at"] is not None, r["value"])
                 for r in rows}  # fmt: skip
        expected = {goal_id: (g.state, g.version, g.deleted, g.value)
                    for goal_id, g in self.model.items()}  # fmt: skip
        assert expected == table

    @invariant()
    def ledger_verifies(self) -> None:
        report = commands.verify_ledger(self.db)
        assert (True, self.events) == (report.ok, report.rows)

    @invariant()
    def ledger_replays_to_the_table(self) -> None:
        report = commands.replay_check(self.db)
        assert (True, []) == (report.ok, report.differences)

    @invariant()
    def every_event_has_one_outbox_row(self) -> None:
        conn = self.db.connection()
        ledger = conn.execute("SELECT count(*) FROM ledger").fetchone()[0]
        outbox = conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
        assert (self.events, self.events) == (ledger, outbox)


def test_random_commands_keep_table_ledger_and_outbox_consistent() -> None:
    """Any command sequence keeps table == model, the chain whole, replay equal, outbox full."""
    run_state_machine_as_test(
        GoalCommands,
        settings=settings(
            max_examples=30,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
            database=None,  # keep no example database in the working tree
        ),
    )
