"""The registry of goal types: each names the Pydantic model its result must satisfy.

A new type is one decorated model (and, optionally, checks that need the goal):

    @goal_type("doc_written", "A document exists at a URL.")
    class DocWritten(BaseModel):
        url: HttpUrl
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from service.domain import limits
from service.domain.errors import FieldError
from service.domain.tasks import GoalFailure

if TYPE_CHECKING:
    from service.domain.goal import Goal

GoalCheck = Callable[["Goal"], list[FieldError]]
ResultCheck = Callable[["Goal", Any], list[FieldError]]


@dataclass(frozen=True)
class GoalType:
    name: str
    description: str
    result_model: type[BaseModel]
    check_goal: GoalCheck | None = None
    check_result: ResultCheck | None = None

    def json_schema(self) -> dict[str, Any]:
        return self.result_model.model_json_schema()


_REGISTRY: dict[str, GoalType] = {}


def goal_type(
    name: str,
    description: str,
    *,
    check_goal: GoalCheck | None = None,
    check_result: ResultCheck | None = None,
) -> Callable[[type[BaseModel]], type[BaseModel]]:
    """Register the decorated result model as goal type `name`."""

    def register(model: type[BaseModel]) -> type[BaseModel]:
        if name in _REGISTRY:
            raise ValueError(f"goal type {name!r} is registered twice")
        _REGISTRY[name] = GoalType(name, description, model, check_goal, check_result)
        return model

    return register


def known_goal_type(name: str) -> bool:
    return name in _REGISTRY


def get_goal_type(name: str) -> GoalType:
    return _REGISTRY[name]


def goal_types() -> list[GoalType]:
    return sorted(_REGISTRY.values(), key=lambda entry: entry.name)


def goal_type_problems(goal: Goal) -> list[FieldError]:
    entry = _REGISTRY.get(goal.goal_type)
    if entry is None:
        return [FieldError(("goal_type",), f"unknown goal type {goal.goal_type!r}")]
    return entry.check_goal(goal) if entry.check_goal else []


def validate_result(goal: Goal, raw: Any) -> tuple[BaseModel | None, list[FieldError]]:
    """The typed result, or every reason it is not one (field path and message)."""
    entry = _REGISTRY[goal.goal_type]
    try:
        result = entry.result_model.model_validate(raw)
    except ValidationError as exc:
        return None, [
            FieldError(("result", *err["loc"]), err["msg"], err["type"]) for err in exc.errors()
        ]
    problems = entry.check_result(goal, result) if entry.check_result else []
    return (None, problems) if problems else (result, [])


def _suggestion(goal_type: str, error: FieldError) -> str:
    path = ".".join(str(part) for part in error.loc)
    if error.type == "missing":
        return f"add `{path}`: the {goal_type} result requires it"
    if error.type == "extra_forbidden":
        return f"remove `{path}`: it is not a field of a {goal_type} result"
    if error.type == "target_not_met":
        return f"`{path}`: {error.msg}; satisfy the goal once the target is reached"
    return f"fix `{path}`: {error.msg}"


def result_failure(goal_type: str, errors: list[FieldError], at: str) -> GoalFailure:
    """The GoalFailure of a result that does not validate against its goal type: one
    suggestion per error saying which field to fix, the schema's fields to debug with."""
    entry = _REGISTRY.get(goal_type)
    fields = sorted(entry.result_model.model_fields) if entry else []
    listed = tuple(e.as_dict() for e in errors)
    return GoalFailure(
        error_type="validation",
        detail=f"the result is not a valid {goal_type} result ({len(errors)} errors)",
        at=at,
        errors=listed,
        suggestions=(
            *dict.fromkeys(_suggestion(goal_type, e) for e in errors),
            f"the {goal_type} result schema: GET /v1/goal-types",
        ),
        debug_info={"goal_type": goal_type, "errors": list(listed), "result_fields": fields},
    )


# --- built-in types ---------------------------------------------------------------


@goal_type("generic", "Any goal: a free-form summary and, optionally, achieved metric values.")
class GenericResult(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    summary: str = Field(min_length=1, max_length=limits.MAX_TEXT_LENGTH)
    success_metrics: dict[str, float] = Field(
        default_factory=dict, max_length=limits.MAX_MAP_KEYS, description="Achieved values."
    )


def _needs_targets(goal: Goal) -> list[FieldError]:
    if not goal.success_metrics:
        return [FieldError(("success_metrics",), "a metric_delta goal needs at least one target")]
    return []


def _meets_targets(goal: Goal, result: MetricDeltaResult) -> list[FieldError]:
    problems = []
    for name, target in sorted(goal.success_metrics.items()):
        achieved = result.achieved.get(name)
        if achieved is None:
            problems.append(FieldError(("result", "achieved", name), "missing", "missing"))
        elif achieved < target:
            problems.append(
                FieldError(
                    ("result", "achieved", name),
                    f"{achieved} does not meet the target {target}",
                    "target_not_met",
                )
            )
    return problems


@goal_type(
    "metric_delta",
    "A measurable change: every success metric's achieved value meets its target.",
    check_goal=_needs_targets,
    check_result=_meets_targets,
)
class MetricDeltaResult(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    summary: str | None = Field(default=None, max_length=limits.MAX_TEXT_LENGTH)
    achieved: dict[str, float] = Field(min_length=1, max_length=limits.MAX_MAP_KEYS)
