"""A scenario file's schema: its steps, each a Pydantic model validated before any runs.

Every step names its `op` and, but for `create` and `select`, the goal it acts on
(`goal_id`). A step's body is the same model REST validates (a note is a NoteCreate, a
link a LinkCreate, a report a TaskReport…), so a scenario accepts what REST accepts.

Steps on a task (`report`, `verify`, `reject`) name it with `task`:
- `"latest"` (the default): the goal's newest live task, whoever made it;
- `"$last"`: the task made by the closest `select` or `add_task` step before it in
  this file (the file is refused when there is none);
- a task id (`"t-…"`), to name one made outside the scenario.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from service.api.schemas.tasks import SatisfyBody, TaskReport, TaskReview
from service.domain.annotations import (
    BlockCreate,
    CriterionReview,
    LinkCreate,
    NoteCreate,
)
from service.domain.inputs import (
    Evidence,
    ExpectedVersion,
    GoalCreate,
    GoalUpdate,
    Identifier,
    Subgoals,
    Version,
)

Expect = Literal["ok", "conflict"]
LATEST, LAST = "latest", "$last"
TaskRef = Annotated[
    Literal["latest", "$last"] | Identifier,
    Field(description='"latest" (the goal\'s newest live task), "$last" (the task of the '
                      "closest select or add_task step before), or a task id"),
]  # fmt: skip


class _Step(BaseModel):
    model_config = ConfigDict(extra="forbid")

    actor: Identifier | None = None
    expect: Expect = "ok"


class _GoalStep(_Step):
    goal_id: Identifier


class CreateStep(_Step):
    op: Literal["create"]
    goal: GoalCreate


class UpdateStep(_GoalStep):
    op: Literal["update"]
    expected_version: Version
    changes: GoalUpdate


class StateStep(_GoalStep):
    op: Literal["adopt", "abandon", "delete"]
    expected_version: ExpectedVersion = None


class DecomposeStep(_GoalStep, Subgoals):
    """Children for the goal, all created or none (POST /v1/goals/{id}/subgoals); a child
    may omit parent_id."""

    op: Literal["decompose"]
    expected_version: ExpectedVersion = None


class SelectStep(_GoalStep):
    """Select now (POST /v1/goals/select); `goal_id` is the goal the file expects to be
    handed out, and any other outcome (another goal, none, shadow mode) fails the run."""

    op: Literal["select"]


class AddTaskStep(_GoalStep):
    """A task recorded by hand for work done outside selection (POST …/tasks)."""

    op: Literal["add_task"]
    evidence: Evidence = None
    note: str | None = Field(default=None, max_length=2_000)
    expected_version: ExpectedVersion = None


class ReportStep(_GoalStep, TaskReport):
    """The executor's report of a task: running, succeeded (with evidence) or failed."""

    op: Literal["report"]
    task: TaskRef = LATEST


class ReviewStep(_GoalStep, TaskReview):
    """The owner's review of a succeeded task; `expected_version` is the task's."""

    op: Literal["verify", "reject"]
    task: TaskRef = LATEST
    expected_version: ExpectedVersion = None


class SatisfyStep(_GoalStep, SatisfyBody):
    """Through the verification gate, with a result valid for the goal's type."""

    op: Literal["satisfy"]


class NoteStep(_GoalStep, NoteCreate):
    op: Literal["note"]


class BlockStep(_GoalStep, BlockCreate):
    op: Literal["block"]


class UnblockStep(_GoalStep):
    op: Literal["unblock"]
    expected_version: ExpectedVersion = None


class LinkStep(_GoalStep, LinkCreate):
    op: Literal["link"]


class CriterionStep(_GoalStep, CriterionReview):
    op: Literal["review_criterion"]
    criterion_id: Identifier


AnyStep = (
    CreateStep | UpdateStep | StateStep | DecomposeStep | SelectStep | AddTaskStep
    | ReportStep | ReviewStep | SatisfyStep | NoteStep | BlockStep | UnblockStep | LinkStep
    | CriterionStep
)  # fmt: skip
Step = Annotated[AnyStep, Field(discriminator="op")]
TASK_MAKERS = ("select", "add_task")


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    actor: Identifier = "scenario"
    steps: list[Step] = Field(min_length=1, max_length=10_000)

    @model_validator(mode="after")
    def _last_has_a_maker(self) -> Scenario:
        check_task_refs(self, 1)
        return self


def check_task_refs(scenario: Scenario, from_step: int) -> None:
    """ValueError unless every `"$last"` from step `from_step` on follows a step (from
    `from_step` on: an earlier one does not run) that makes a task."""
    made = False
    for number, step in enumerate(scenario.steps[from_step - 1 :], start=from_step):
        if step.op in TASK_MAKERS:
            made = True
        elif isinstance(step, ReportStep | ReviewStep) and step.task == LAST and not made:
            raise ValueError(
                f'step {number} ({step.op}) names the task "$last", and no select or add_task '
                f"step runs before it (from step {from_step}); name the task, or use "
                '"latest" for the goal\'s newest task'
            )


def check_from_step(scenario: Scenario, from_step: int) -> None:
    """ValueError unless the run may start at step `from_step` (1-based)."""
    if not 1 <= from_step <= len(scenario.steps):
        raise ValueError(
            f"--from-step {from_step}: this scenario has steps 1 to {len(scenario.steps)}"
        )
    check_task_refs(scenario, from_step)


def describe(step: AnyStep) -> str:
    """What a step does, for messages: `create goal G-1`, `note on goal G-1`."""
    if isinstance(step, CreateStep):
        return f"create goal {step.goal.id}" if step.goal.id else "create a goal"
    if isinstance(step, SelectStep):
        return f"select goal {step.goal_id}"
    if isinstance(step, ReportStep | ReviewStep):
        return f"{step.op} the task {step.task} of goal {step.goal_id}"
    on = " on" if step.op in ("note", "link", "review_criterion") else ""
    return f"{step.op}{on} goal {step.goal_id}"
