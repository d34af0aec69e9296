"""Selection and tasks as served, and the bodies of task reports, reviews and satisfy."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from service.api.schemas.goals import _EXAMPLE_PUBLIC, GoalPublic
from service.commands.kinds import SelectionMode, SkipReason
from service.commands.selection import Selection
from service.commands.tasks import task_as_dict
from service.domain.inputs import Evidence, ExpectedVersion, Version
from service.domain.tasks import Task, TaskState


class TaskPublic(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "task_id": "t-5f2c9a1e0b7d4c3a", "goal_id": "goal_001", "goal_version": 2,
                    "attempt": 1, "state": "queued", "superseded": False, "version": 1,
                    "origin": "selection", "evidence": None,
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
    version: int = Field(ge=1, description="+1 on every change; a review may name it.")
    origin: Literal["selection", "manual"] = Field(
        description="selection: started by a selection; manual: work recorded by hand "
        "(POST /v1/goals/{goal_id}/tasks)."
    )
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
    reason: SkipReason


class SelectionPublic(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"mode": "emitted", "goal": _EXAMPLE_PUBLIC,
                                         "task": None, "skipped": []}]}
    )  # fmt: skip

    mode: SelectionMode = Field(
        description="emitted: a task is on the scheduler queue. shadow (GOAL_SHADOW): the "
        "goal that would have been selected; nothing emitted. off (GOAL_SYSTEM=off), "
        "not_in_canary, empty: nothing selected."
    )
    goal: GoalPublic | None = None
    task: TaskPublic | None = None
    skipped: list[SkippedPublic] = Field(default_factory=list)

    @classmethod
    def of(cls, selection: Selection) -> SelectionPublic:
        return cls(
            mode=selection.mode,
            goal=GoalPublic.of(selection.goal) if selection.goal else None,
            task=TaskPublic.of(selection.task) if selection.task else None,
            skipped=[SkippedPublic(goal_id=g, reason=r) for g, r in selection.skipped],
        )


class TaskReport(BaseModel):
    """What the executor reports: running, succeeded (with evidence), or failed."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"state": "succeeded",
                                         "evidence": {"summary": "coherence +0.06"}}]},
    )  # fmt: skip

    state: Literal["running", "succeeded", "failed"]
    evidence: Evidence = Field(
        default=None, description="Text, a URL or JSON (bounded like metadata)."
    )
    reason: str | None = Field(default=None, max_length=2_000)


class TaskReview(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"reason": None, "expected_version": 3}]},
    )

    reason: str | None = Field(default=None, max_length=2_000)
    expected_version: Version | None = Field(
        default=None,
        description="The TASK's version this review is based on: a stale one is a 409 "
        "(task-version-conflict) and a goal_conflict_detected event.",
    )  # fmt: skip


class TaskCreate(BaseModel):
    """Work done outside selection (a chat session, a pull request): a manual task."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"evidence": {"session": "chat-42"},
                                         "note": "paired on the fix", "expected_version": 2}]},
    )  # fmt: skip

    evidence: Evidence = Field(
        default=None, description="Text, a URL or JSON (bounded like metadata)."
    )
    note: str | None = Field(default=None, max_length=4_000)
    expected_version: int | None = Field(
        default=None, ge=1, description="The GOAL's version (or send If-Match)."
    )


class SatisfyBody(BaseModel):
    """The goal's result, validated against its goal type (see /v1/goal-types)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"result": {"summary": "done", "success_metrics": {"coherence": 0.8}}}]
        },
    )

    result: dict[str, Any]
    expected_version: ExpectedVersion = None
