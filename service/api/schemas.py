"""Response models (request bodies are the domain's GoalCreate / GoalUpdate)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from service.commands.tasks import task_as_dict
from service.domain.beliefs import Belief
from service.domain.decisions import Decision
from service.domain.goal import Goal, GoalCategory, GoalState
from service.domain.inputs import EXAMPLE_GOAL
from service.domain.ledger import LedgerRow
from service.domain.ranking import Score
from service.domain.tasks import Task, TaskState

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
}


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

    expected_version: int | None = Field(default=None, ge=1)


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


class BeliefPublic(BaseModel):
    id: str
    statement: str
    active: bool
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, belief: Belief) -> BeliefPublic:
        return cls(**{name: getattr(belief, name) for name in cls.model_fields})


class BeliefsPublic(BaseModel):
    data: list[BeliefPublic]
    count: int


class ParameterPublic(BaseModel):
    current: float
    min: float
    max: float
    step: float


class DecisionPublic(BaseModel):
    decision_id: str
    subsystem: str
    parameters: dict[str, ParameterPublic]
    success_metrics: list[str]
    version: int

    @classmethod
    def of(cls, decision: Decision) -> DecisionPublic:
        return cls(
            decision_id=decision.decision_id,
            subsystem=decision.subsystem,
            parameters={
                name: ParameterPublic(**p.as_dict()) for name, p in decision.parameters.items()
            },
            success_metrics=list(decision.success_metrics),
            version=decision.version,
        )


class OutcomePublic(BaseModel):
    id: int
    decision_id: str
    goal_id: str | None
    metrics: dict[str, float]
    parameters: dict[str, float] = Field(description="Parameter values in force when recorded.")
    actor: str
    trace_id: str | None
    recorded_at: str


class OutcomesPublic(BaseModel):
    data: list[OutcomePublic]


class BlockPublic(BaseModel):
    reason: str = Field(description="contradicts_belief, dependency_unsatisfied or deadline_passed")
    ref: str = Field(description="The belief id, goal id or deadline.")


class ScorePublic(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "goal_id": "goal_001",
                    "score": 0.785,
                    "raw": 0.785,
                    "blocked": False,
                    "blocked_by": [],
                    "urgency": 0.5,
                    "alignment": 1.0,
                    "terms": {"value": 0.4, "effort": 0.175, "risk": 0.135, "urgency": 0.025,
                              "alignment": 0.05, "penalty": 0.0},
                }
            ]
        }
    )  # fmt: skip

    goal_id: str
    score: float = Field(description="The final score, clamped to [0, 1].")
    raw: float = Field(description="The sum of the terms before clamping.")
    blocked: bool
    blocked_by: list[BlockPublic]
    urgency: float
    alignment: float
    terms: dict[str, float] = Field(description="Each weighted term of the formula.")
    state: GoalState
    version: int

    @classmethod
    def of(cls, goal: Goal, score: Score) -> ScorePublic:
        return cls(**score.as_dict(), state=goal.state, version=goal.version)


class RankedGoalPublic(BaseModel):
    rank: int
    goal_id: str
    score: float
    blocked: bool
    goal: GoalPublic


class PrioritizedPublic(BaseModel):
    data: list[RankedGoalPublic]
    source: Literal["redis", "sqlite"] = Field(
        description="Where the ranking was read: the Redis cache, or SQLite (the fallback)."
    )
    fallback_reason: (
        Literal["no_redis", "redis_unavailable", "cache_cold", "cache_behind"] | None
    ) = Field(default=None, description="Why SQLite was read instead of Redis.")


# --- selection and tasks ------------------------------------------------------------


class TaskPublic(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "task_id": "t-5f2c9a1e0b7d4c3a", "goal_id": "goal_001", "goal_version": 2,
                    "attempt": 1, "state": "queued", "superseded": False, "evidence": None,
                    "reason": None, "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
                    "span_id": "00f067aa0ba902b7",
                    "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                    "created_at": "2026-11-22T09:00:00.000000Z",
                    "updated_at": "2026-11-22T09:00:00.000000Z",
                }
            ]
        }
    )  # fmt: skip

    task_id: str
    goal_id: str
    goal_version: int = Field(description="The adopted version that was selected.")
    attempt: int
    state: TaskState
    superseded: bool = Field(description="A failed attempt another attempt replaced.")
    evidence: Any
    reason: str | None
    trace_id: str
    span_id: str
    traceparent: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, task: Task) -> TaskPublic:
        return cls.model_validate(task_as_dict(task))


class TasksPublic(BaseModel):
    data: list[TaskPublic]
    progress: float = Field(description="Verified live tasks / live tasks (0 without tasks).")


class SkippedPublic(BaseModel):
    goal_id: str
    reason: Literal["claimed", "blocked", "changed"]


class SelectionPublic(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"mode": "emitted", "goal": _EXAMPLE_PUBLIC,
                                         "task": None, "skipped": []}]}
    )  # fmt: skip

    mode: Literal["emitted", "shadow", "off", "not_in_canary", "empty"] = Field(
        description="emitted: a task is on the scheduler queue. shadow (GOAL_SHADOW): the "
        "goal that would have been selected; nothing emitted. off (GOAL_SYSTEM=off), "
        "not_in_canary, empty: nothing selected."
    )
    goal: GoalPublic | None = None
    task: TaskPublic | None = None
    skipped: list[SkippedPublic] = Field(default_factory=list)


class TaskReport(BaseModel):
    """What the executor reports: running, succeeded (with evidence), or failed."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"state": "succeeded",
                                         "evidence": {"summary": "coherence +0.06"}}]},
    )  # fmt: skip

    state: Literal["running", "succeeded", "failed"]
    evidence: Any = Field(default=None, description="Text, a URL or JSON.")
    reason: str | None = Field(default=None, max_length=2_000)


class TaskReview(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"reason": None}]})

    reason: str | None = Field(default=None, max_length=2_000)


class SatisfyBody(BaseModel):
    """The goal's result, validated against its goal type (see /v1/goal-types)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"result": {"summary": "done", "success_metrics": {"coherence": 0.8}}}]
        },
    )

    result: dict[str, Any]
    expected_version: int | None = Field(default=None, ge=1)
