"""The decision registry: tunable parameters (the ranking weights) with ranges and steps."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from service.domain.errors import FieldError, InvalidInput
from service.domain.inputs import Identifier
from service.domain.ranking import Weights

GOAL_SELECTED = "goal_selected"

# Which weight each goal_selected parameter sets.
WEIGHT_PARAMETERS = {
    "value_weight": "value",
    "effort_weight": "effort",
    "risk_weight": "risk",
    "urgency_weight": "urgency",
    "alignment_weight": "alignment",
}


@dataclass(frozen=True, slots=True)
class Parameter:
    current: float
    min: float
    max: float
    step: float

    def problem(self, value: float) -> str | None:
        """Why `value` cannot be this parameter's value, or None."""
        if not math.isfinite(value) or not self.min <= value <= self.max:
            return f"must be between {self.min} and {self.max}"
        steps = (value - self.min) / self.step
        if abs(steps - round(steps)) > 1e-6:
            return f"must be {self.min} plus a whole number of steps of {self.step}"
        return None

    def as_dict(self) -> dict[str, float]:
        return {"current": self.current, "min": self.min, "max": self.max, "step": self.step}


@dataclass(frozen=True, slots=True)
class Decision:
    decision_id: str
    subsystem: str
    parameters: dict[str, Parameter]
    success_metrics: tuple[str, ...]
    version: int

    def with_values(self, values: dict[str, float]) -> Decision:
        """The decision with new current values, or InvalidInput listing every bad one."""
        problems = []
        for name, value in sorted(values.items()):
            parameter = self.parameters.get(name)
            if parameter is None:
                problems.append(FieldError(("parameters", name), "unknown parameter"))
            elif (why := parameter.problem(value)) is not None:
                problems.append(FieldError(("parameters", name), why))
        if problems:
            raise InvalidInput(problems)
        updated = {
            name: replace(p, current=values.get(name, p.current))
            for name, p in self.parameters.items()
        }
        if updated == self.parameters:
            return self
        return replace(self, parameters=updated, version=self.version + 1)

    def current_values(self) -> dict[str, float]:
        return {name: p.current for name, p in sorted(self.parameters.items())}

    def weights(self) -> Weights:
        return Weights(
            **{field: self.parameters[name].current for name, field in WEIGHT_PARAMETERS.items()}
        )

    def outcome_problems(self, metrics: dict[str, float]) -> list[FieldError]:
        return [
            FieldError(("metrics", name), f"not a success metric of {self.decision_id}")
            for name in sorted(metrics)
            if name not in self.success_metrics
        ]


FiniteFloat = Annotated[float, Field(allow_inf_nan=False, strict=True)]


class DecisionChange(BaseModel):
    """New current values for some of a decision's parameters."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"parameters": {"value_weight": 0.45, "risk_weight": 0.2}}]
        },
    )

    parameters: dict[str, FiniteFloat] = Field(min_length=1, max_length=32)


class OutcomeCreate(BaseModel):
    """What happened after a decision: values of its success metrics, for one goal or overall."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"goal_id": "goal_001", "metrics": {"goal_satisfaction": 1.0}}]
        },
    )

    goal_id: Identifier | None = Field(default=None, description="The goal it concerns, if one.")
    metrics: dict[str, FiniteFloat] = Field(min_length=1, max_length=32)


def decision_from_record(record: dict[str, Any]) -> Decision:
    return Decision(
        decision_id=record["decision_id"],
        subsystem=record["subsystem"],
        parameters={name: Parameter(**p) for name, p in record["parameters"].items()},
        success_metrics=tuple(record["success_metrics"]),
        version=record["version"],
    )
