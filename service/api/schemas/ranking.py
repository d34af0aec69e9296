"""What ranks goals, as served: beliefs, the goal_selected decision and its outcomes,
a goal's score term by term, and the prioritized list."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from service.api.schemas.goals import GoalPublic
from service.commands.kinds import FallbackReason, RankingSource
from service.domain.beliefs import Belief
from service.domain.decisions import Decision
from service.domain.goal import Goal, GoalState
from service.domain.ranking import Score


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
    reason: str = Field(
        description="manual_block, contradicts_belief, dependency_unsatisfied, deadline_passed, "
        "open_children, ancestor_blocked or child_abandoned"
    )
    ref: str = Field(
        description="The person's reason, the belief id, goal id (the dependency, open child, "
        "blocked ancestor or abandoned child) or deadline."
    )


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
    source: RankingSource = Field(
        description="Where the ranking was read: the Redis cache, or the store (`sqlite` or "
        "`postgresql`, the fallback)."
    )
    fallback_reason: FallbackReason | None = Field(
        default=None, description="Why the store was read instead of Redis."
    )
