"""What each tool takes: the REST request models (GoalCreate, GoalUpdate, Subgoals,
BeliefPut, the task report, notes, blocks, links), plus the ids REST carries in its
paths and queries.

The tools' input schemas are these models' JSON Schema: one place for each rule,
whichever way a request arrives. Every model forbids unknown arguments, as the REST
bodies do.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from service.api.schemas import TaskReport
from service.commands import MAX_PAGE
from service.domain import limits
from service.domain.annotations import BlockCreate, LinkCreate, NoteCreate
from service.domain.beliefs import BeliefPut
from service.domain.goal import GoalCategory, GoalState
from service.domain.inputs import GoalUpdate, Identifier, Subgoals
from service.domain.inputs import Version as GoalVersion
from service.domain.trees import MAX_TREE_DEPTH

GoalRef = Annotated[str, Field(min_length=1, max_length=limits.MAX_ID_LENGTH,
                               description="The goal's id.")]  # fmt: skip
Version = Annotated[GoalVersion, Field(description="The goal's version this change is based on.")]
_STRICT = ConfigDict(extra="forbid")


class NoArgs(BaseModel):
    model_config = _STRICT


class GoalArgs(BaseModel):
    model_config = _STRICT

    goal_id: GoalRef


class GetGoalArgs(GoalArgs):
    include_deleted: bool = False


class ListGoalsArgs(BaseModel):
    model_config = _STRICT

    state: GoalState | None = None
    category: GoalCategory | None = None
    assigned_to: Identifier | None = Field(default=None, description="Only this actor's goals.")
    parent_id: Identifier | None = Field(default=None, description="Only this goal's children.")
    include_deleted: bool = False
    limit: int = Field(default=50, ge=1, le=MAX_PAGE)
    cursor: str | None = Field(
        default=None, pattern=r"^\d{1,18}$", description="A page's next_cursor."
    )


class RankedGoalsArgs(BaseModel):
    model_config = _STRICT

    limit: int = Field(default=20, ge=1, le=MAX_PAGE)
    category: GoalCategory | None = None
    include_blocked: bool = False
    explain: bool = Field(
        default=False, description="Add each goal's score now, term by term (explain_score)."
    )


class UpdateGoalArgs(GoalArgs):
    expected_version: Version
    changes: GoalUpdate = Field(description="The fields to change; absent ones stay.")


class StateArgs(GoalArgs):
    """adopt, abandon, unblock: the version is optional, as on REST."""

    expected_version: Version | None = None


class AbandonArgs(StateArgs):
    cascade: bool = Field(
        default=True,
        description="Also abandon its open descendants; false: refused (children-open) "
        "while it has any.",
    )


class DecomposeGoalArgs(Subgoals):
    """POST /v1/goals/{id}/subgoals: the children, and the goal they are parts of."""

    goal_id: GoalRef
    expected_version: Version | None = None


class GoalTreeArgs(GoalArgs):
    depth: int = Field(
        default=MAX_TREE_DEPTH, ge=1, le=MAX_TREE_DEPTH,
        description="Levels shown, the goal being level 1.",
    )  # fmt: skip


class ReportTaskArgs(TaskReport):
    goal_id: GoalRef
    task_id: str = Field(min_length=1, max_length=limits.MAX_ID_LENGTH)


class ListBeliefsArgs(BaseModel):
    model_config = _STRICT

    active: bool | None = Field(default=None, description="Only active (or inactive) beliefs.")


class PutBeliefArgs(BeliefPut):
    belief_id: Identifier


class HistoryArgs(GoalArgs):
    after: int = Field(default=0, ge=0, le=2**62, description="Only events after this seq.")
    limit: int = Field(default=200, ge=1, le=1000)


class AddNoteArgs(NoteCreate):
    goal_id: GoalRef


class BlockGoalArgs(BlockCreate):
    goal_id: GoalRef


class LinkWorkArgs(LinkCreate):
    goal_id: GoalRef
