"""Goals as served: one goal, a page of them, its ledger events, the goal types and
the problem+json body of every error."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from service.domain.goal import Goal, GoalCategory, GoalState
from service.domain.inputs import EXAMPLE_GOAL, ExpectedVersion, Policy
from service.domain.ledger import LedgerRow

_EXAMPLE_PUBLIC = {
    **EXAMPLE_GOAL,
    "goal_type": "generic",
    "depends_on": [],
    "version": 1,
    "owner": "alice",
    "created_at": "2026-11-22T09:30:00.000000Z",
    "updated_at": "2026-11-22T09:30:00.000000Z",
    "deleted_at": None,
    "deadline": "2026-11-29T09:30:00.000000Z",
    "assigned_to": None,
    "related": [],
    "criteria": [],
    "manual_block": None,
    "links": [],
    "result": None,
    "last_failure": None,
    "progress": 0.0,
    "parent_id": None,
    "completion_policy": "all",
    "tree_block": None,
}


class CriterionPublic(BaseModel):
    id: str
    text: str
    met: bool | None = Field(description="null until reviewed; the gate needs every one true.")
    evidence: Any
    reviewed_by: str | None
    reviewed_at: str | None


class ManualBlockPublic(BaseModel):
    reason: str
    actor: str
    at: str


class LinkPublic(BaseModel):
    kind: str
    ref: str
    url: str | None
    actor: str
    at: str


class GoalFailurePublic(BaseModel):
    """The last GoalFailure (seed 002): why the goal's result or execution failed."""

    model_config = ConfigDict(extra="allow")

    error_type: str = Field(description="validation, execution or address.")
    detail: str
    suggestions: list[str]
    debug_info: dict[str, Any]
    at: str


class TreeBlockPublic(BaseModel):
    """Why a parent is held: a child was abandoned (replace it, or change the parent)."""

    reason: str = Field(description="child_abandoned.")
    ref: str = Field(description="The abandoned child's id.")
    at: str


class GoalPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE_PUBLIC]})

    id: str
    text: str
    category: GoalCategory
    goal_type: str
    value: float
    effort: float
    risk: float
    horizon_min_min: int
    horizon_max_min: int | None
    aligns_with: list[str]
    contradicts: list[str]
    depends_on: list[str]
    success_metrics: dict[str, float]
    metadata: dict[str, Any]
    state: GoalState
    version: int
    owner: str
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None
    deadline: datetime | None = Field(description="created_at + horizon_max_min, if set.")
    assigned_to: str | None
    related: list[str] = Field(description="Other goals, for reference; they block nothing.")
    criteria: list[CriterionPublic]
    manual_block: ManualBlockPublic | None = Field(
        description="Set by POST …/block: the goal is never selected until unblocked."
    )
    links: list[LinkPublic] = Field(description="External work linked to the goal.")
    result: Any = Field(description="The typed result the goal was satisfied with, else null.")
    last_failure: GoalFailurePublic | None
    progress: float = Field(
        ge=0, le=1,
        description="A leaf's: verified live tasks / live tasks (1 once satisfied); a "
        "parent's: the value-weighted mean of its children's (abandoned ones left out).",
    )  # fmt: skip
    parent_id: str | None = Field(description="The goal this one is a part of; null: a root.")
    completion_policy: Policy = Field(
        description="all, any or manual: when its children's satisfaction satisfies it."
    )
    tree_block: TreeBlockPublic | None = Field(
        description="Set while an abandoned child holds the goal: it is not completed by "
        "its children until the child is replaced or the goal is changed."
    )
    warnings: list[str] = Field(
        default_factory=list,
        description="Adoption: aligns_with ids that are not known beliefs (they do not block).",
    )

    @classmethod
    def of(cls, goal: Goal, warnings: tuple[str, ...] = ()) -> GoalPublic:
        return cls(
            warnings=list(warnings),
            id=goal.id,
            text=goal.text,
            category=goal.category,
            goal_type=goal.goal_type,
            value=goal.value,
            effort=goal.effort,
            risk=goal.risk,
            horizon_min_min=goal.horizon_min_min,
            horizon_max_min=goal.horizon_max_min,
            aligns_with=list(goal.aligns_with),
            contradicts=list(goal.contradicts),
            depends_on=list(goal.depends_on),
            success_metrics=goal.success_metrics,
            metadata=goal.metadata,
            state=goal.state,
            version=goal.version,
            owner=goal.owner,
            created_at=goal.created_at,
            updated_at=goal.updated_at,
            deleted_at=goal.deleted_at,
            deadline=goal.deadline,
            assigned_to=goal.assigned_to,
            related=list(goal.related),
            criteria=[CriterionPublic(**c.as_dict()) for c in goal.criteria],
            manual_block=goal.manual_block,
            links=list(goal.links),
            result=goal.result,
            last_failure=goal.last_failure,
            progress=goal.progress,
            parent_id=goal.parent_id,
            completion_policy=goal.completion_policy,
            tree_block=goal.tree_block,
        )


class GoalsPublic(BaseModel):
    data: list[GoalPublic]
    count: int = Field(description="How many goals match the filters, over all pages.")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


class VersionPrecondition(BaseModel):
    """Optional body of adopt/abandon: the version the caller acts on (or send If-Match)."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"expected_version": 1}]}
    )

    expected_version: ExpectedVersion = None


class LedgerEventPublic(BaseModel):
    seq: int
    ts: str
    event_type: str
    goal_id: str | None
    actor: str
    trace_id: str | None
    span_id: str | None
    payload: dict[str, Any]
    prev_hash: str
    hash: str

    @classmethod
    def of(cls, row: LedgerRow) -> LedgerEventPublic:
        return cls(**row.as_dict())


class GoalHistoryPublic(BaseModel):
    goal_id: str
    data: list[LedgerEventPublic]


class GoalTypePublic(BaseModel):
    name: str
    description: str
    result_schema: dict[str, Any]


class GoalTypesPublic(BaseModel):
    data: list[GoalTypePublic]


class Problem(BaseModel):
    """An RFC 9457 problem detail, with GoalStore's extension members."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "type": "urn:goalstore:problem:version-conflict",
                    "title": "Version conflict",
                    "status": 409,
                    "detail": "goal 'goal_001' is at version 3, not the expected 2",
                    "instance": "/v1/goals/goal_001",
                    "goal_id": "goal_001",
                    "current_version": 3,
                    "expected_version": 2,
                }
            ]
        },
    )

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
