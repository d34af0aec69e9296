"""What a client may send to create or change a goal, validated once for every entry point.

The API uses these models as request bodies, the CLI and scenarios feed them
parsed JSON: one set of rules, whichever way a goal arrives.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

from service.domain import limits
from service.domain.errors import FieldError, IllegalTransition, InvalidGoal, InvalidInput
from service.domain.goal import (
    Criterion,
    Goal,
    GoalCategory,
    bump,
    goal_problems,
    mint_goal_id,
    record_changes,
    to_record,
)
from service.domain.goal_types import goal_type_problems, known_goal_type
from service.domain.trees import MAX_CHILDREN

Identifier = Annotated[
    str,
    StringConstraints(min_length=1, max_length=limits.MAX_ID_LENGTH, pattern=limits.ID_PATTERN),
]
# strict: a JSON `true` or "0.5" is a client bug to report, not a number to guess at.


def _not_a_route_word(goal_id: str) -> str:
    if goal_id in limits.RESERVED_GOAL_IDS:
        raise ValueError(f"{goal_id!r} is reserved by the API's routes")
    return goal_id


GoalId = Annotated[Identifier, AfterValidator(_not_a_route_word)]
Unit = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False, strict=True)]
# A version a change is based on: an integer as JSON writes it (strict: `true` is no
# version, though Python's bool is an int).
Version = Annotated[int, Field(ge=1, strict=True)]
ExpectedVersion = Annotated[
    Version | None, Field(description="The version this change is based on (or If-Match).")
]
Minutes = Annotated[int, Field(ge=0, le=limits.MAX_HORIZON_MIN, strict=True)]
IdList = Annotated[list[Identifier], Field(max_length=limits.MAX_LIST_ITEMS)]
MetricName = Annotated[str, StringConstraints(min_length=1, max_length=limits.MAX_KEY_LENGTH)]
Metrics = Annotated[
    dict[MetricName, Annotated[float, Field(allow_inf_nan=False, strict=True)]],
    Field(max_length=limits.MAX_MAP_KEYS),
]


def check_json_value(value: Any) -> Any:
    """Bound free-form JSON (metadata): depth, size, string length; finite numbers only."""
    nodes = 0

    def walk(node: Any, depth: int) -> None:
        nonlocal nodes
        nodes += 1
        if nodes > limits.MAX_JSON_NODES:
            raise ValueError(f"more than {limits.MAX_JSON_NODES} values")
        if depth > limits.MAX_JSON_DEPTH:
            raise ValueError(f"nested deeper than {limits.MAX_JSON_DEPTH} levels")
        if isinstance(node, float) and not math.isfinite(node):
            raise ValueError("numbers must be finite")
        if isinstance(node, str) and len(node) > limits.MAX_JSON_STRING:
            raise ValueError(f"strings are limited to {limits.MAX_JSON_STRING} characters")
        if isinstance(node, dict):
            if len(node) > limits.MAX_MAP_KEYS:
                raise ValueError(f"objects are limited to {limits.MAX_MAP_KEYS} keys")
            for key, child in node.items():
                if len(key) > limits.MAX_KEY_LENGTH:
                    raise ValueError(f"keys are limited to {limits.MAX_KEY_LENGTH} characters")
                walk(child, depth + 1)
        elif isinstance(node, list):
            for child in node:
                walk(child, depth + 1)

    walk(value, 1)
    return value


Metadata = Annotated[dict[str, Any], AfterValidator(check_json_value)]
# What an executor or a reviewer supplies: text, a URL or any JSON, bounded like metadata.
Evidence = Annotated[Any, AfterValidator(check_json_value)]


def checked_evidence(value: Any) -> Any:
    """`value` if it is evidence within the bounds, else InvalidInput naming `evidence`:
    the commands check it too, for the entry points that skip the models (the CLI)."""
    try:
        return check_json_value(value)
    except ValueError as exc:
        raise InvalidInput([FieldError(("evidence",), str(exc))]) from None


def stripped(value: str) -> str:
    """Text as kept: without surrounding whitespace, and not blank. Applied after the
    length limits, so that they hold for the text as sent, as the JSON Schema's
    maxLength says (stripping first let a text of maxLength plus spaces through)."""
    value = value.strip()
    if not value:
        raise ValueError("must not be blank")
    return value


GoalText = Annotated[
    str,
    StringConstraints(min_length=1, max_length=limits.MAX_TEXT_LENGTH),
    AfterValidator(stripped),
]


def _known_type(name: str) -> str:
    if not known_goal_type(name):
        raise ValueError(f"unknown goal type {name!r} (see GET /v1/goal-types)")
    return name


GoalTypeName = Annotated[str, Field(max_length=limits.MAX_ID_LENGTH), AfterValidator(_known_type)]


class CriterionSpec(BaseModel):
    """An acceptance criterion as a client writes it; reviews are recorded separately."""

    model_config = ConfigDict(extra="forbid")

    id: Identifier
    text: GoalText


Criteria = Annotated[list[CriterionSpec], Field(max_length=limits.MAX_CRITERIA)]
Policy = Literal["all", "any", "manual"]  # domain/trees.py POLICIES


def criteria_of(
    specs: list[CriterionSpec], before: tuple[Criterion, ...] = ()
) -> tuple[Criterion, ...]:
    """The goal's criteria from a client's list. A criterion whose id and text are unchanged
    keeps its review; a new or reworded one starts unreviewed."""
    kept = {(c.id, c.text): c for c in before}
    return tuple(kept.get((spec.id, spec.text), Criterion(spec.id, spec.text)) for spec in specs)


EXAMPLE_GOAL: dict[str, Any] = {
    "id": "goal_001",
    "text": "Conduct weekly self-reflection on identity coherence",
    "category": "introspection",
    "value": 0.8,
    "effort": 0.3,
    "risk": 0.1,
    "horizon_min_min": 0,
    "horizon_max_min": 10080,
    "aligns_with": ["core.ontological.consciousness"],
    "contradicts": [],
    "success_metrics": {"coherence_delta": 0.05},
    "state": "proposed",
    "created_at": "2025-11-08T12:00:00Z",
    "updated_at": "2025-11-08T12:00:00Z",
    "metadata": {},
}


class GoalCreate(BaseModel):
    """A proposed goal. `state` may only be `proposed`; timestamps are the server's."""

    model_config = ConfigDict(
        extra="forbid",
        allow_inf_nan=False,
        json_schema_extra={"examples": [EXAMPLE_GOAL]},
    )

    id: GoalId | None = Field(
        default=None, description="Client-chosen id; minted as g- + 16 hex chars when absent."
    )
    text: GoalText
    category: GoalCategory
    goal_type: GoalTypeName = "generic"
    value: Unit
    effort: Unit
    risk: Unit
    horizon_min_min: Minutes = 0
    horizon_max_min: Minutes | None = Field(
        default=None, description="Deadline, in minutes after creation."
    )
    aligns_with: IdList = Field(default_factory=list, description="Belief ids.")
    contradicts: IdList = Field(default_factory=list, description="Belief ids.")
    depends_on: IdList = Field(default_factory=list, description="Goal ids.")
    success_metrics: Metrics = Field(default_factory=dict)
    metadata: Metadata = Field(default_factory=dict)
    assigned_to: Identifier | None = Field(default=None, description="The actor working on it.")
    related: IdList = Field(
        default_factory=list,
        description="Goal ids for reference; unlike depends_on, they block nothing.",
    )
    criteria: Criteria = Field(
        default_factory=list,
        description="Acceptance criteria: satisfying the goal needs each reviewed as met.",
    )
    parent_id: GoalId | None = Field(
        default=None, description="The goal this one is a part of (goal trees)."
    )
    completion_policy: Policy = Field(
        default="all",
        description="When the children's satisfaction satisfies this goal: all, any, manual.",
    )
    state: Literal["proposed"] = Field(
        default="proposed", description="Goals are always created proposed."
    )
    created_at: AwareDatetime | None = Field(
        default=None, description="Accepted for compatibility and ignored: the server sets it."
    )
    updated_at: AwareDatetime | None = Field(
        default=None, description="Accepted for compatibility and ignored: the server sets it."
    )

    def build(self, owner: str, now: datetime) -> Goal:
        """The new goal, or InvalidGoal when its fields do not fit together."""
        goal = Goal(
            id=self.id or mint_goal_id(),
            text=self.text,
            category=self.category,
            goal_type=self.goal_type,
            value=self.value,
            effort=self.effort,
            risk=self.risk,
            horizon_min_min=self.horizon_min_min,
            horizon_max_min=self.horizon_max_min,
            aligns_with=tuple(self.aligns_with),
            contradicts=tuple(self.contradicts),
            depends_on=tuple(self.depends_on),
            success_metrics=dict(self.success_metrics),
            metadata=dict(self.metadata),
            owner=owner,
            created_at=now,
            updated_at=now,
            assigned_to=self.assigned_to,
            related=tuple(self.related),
            criteria=criteria_of(self.criteria),
            parent_id=self.parent_id,
            completion_policy=self.completion_policy,
        )
        ensure_valid(goal)
        return goal


_NULLABLE = frozenset({"horizon_max_min", "assigned_to", "parent_id"})
_UPDATABLE = (
    "text", "category", "goal_type", "value", "effort", "risk", "horizon_min_min",
    "horizon_max_min", "aligns_with", "contradicts", "depends_on", "success_metrics", "metadata",
    "assigned_to", "related", "criteria", "parent_id", "completion_policy",
)  # fmt: skip


def drop_null(schema: dict[str, Any]) -> None:
    """A JSON Schema of `X | None` as the schema of X (the null branch of anyOf removed)."""
    branches = schema.pop("anyOf", None)
    if branches is not None:
        kept = [branch for branch in branches if branch != {"type": "null"}]
        schema.update(kept[0] if len(kept) == 1 else {"anyOf": kept})


def _update_schema(schema: dict[str, Any]) -> None:
    """GoalUpdate's published schema says what the model accepts: a field may be absent,
    but only the nullable ones may be null (the `| None` of the others means "absent")."""
    schema["examples"] = [{"value": 0.9, "horizon_max_min": 1440}]
    for name, field in schema.get("properties", {}).items():
        if name in _NULLABLE or name not in _UPDATABLE or "anyOf" not in field:
            continue
        drop_null(field)
        field.pop("default", None)  # null: what "absent" is in Python, not a value to send


class GoalUpdate(BaseModel):
    """A partial change: fields present replace the stored ones; absent ones stay.

    Only `horizon_max_min` (it removes the deadline), `assigned_to` and `parent_id` (the
    goal becomes a root) may be set to null.
    """

    model_config = ConfigDict(
        extra="forbid",
        allow_inf_nan=False,
        json_schema_extra=lambda schema, _model: _update_schema(schema),
    )

    text: GoalText | None = None
    category: GoalCategory | None = None
    goal_type: GoalTypeName | None = None
    value: Unit | None = None
    effort: Unit | None = None
    risk: Unit | None = None
    horizon_min_min: Minutes | None = None
    horizon_max_min: Minutes | None = None
    aligns_with: IdList | None = None
    contradicts: IdList | None = None
    depends_on: IdList | None = None
    success_metrics: Metrics | None = None
    metadata: Metadata | None = None
    assigned_to: Identifier | None = Field(default=None, description="null: nobody.")
    related: IdList | None = None
    criteria: Criteria | None = Field(
        default=None,
        description="Replaces the list; a criterion with the same id and text keeps its review.",
    )
    parent_id: GoalId | None = Field(default=None, description="Moves the goal; null: a root.")
    completion_policy: Policy | None = None
    expected_version: ExpectedVersion = None

    @field_validator(*(name for name in _UPDATABLE if name not in _NULLABLE), mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("may not be null")
        return value

    def changes(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _UPDATABLE if name in self.model_fields_set}

    def apply(self, goal: Goal, now: datetime) -> Goal:
        """The goal with these changes, or the goal itself when nothing would change."""
        if goal.is_terminal:
            raise IllegalTransition(goal.id, goal.state.value, "update")
        changes = self.changes()
        for name in ("aligns_with", "contradicts", "depends_on", "related"):
            if name in changes:
                changes[name] = tuple(changes[name])
        if "criteria" in changes:
            changes["criteria"] = criteria_of(changes["criteria"], goal.criteria)
        changed = replace(goal, **changes)
        if not record_changes(to_record(goal), to_record(changed)):
            return goal
        ensure_valid(changed)
        return bump(changed, now)


def ensure_valid(goal: Goal) -> None:
    problems: list[FieldError] = goal_problems(goal) + goal_type_problems(goal)
    if problems:
        raise InvalidGoal(problems)


class Subgoals(BaseModel):
    """A goal decomposed into children, all created in one transaction (or none)."""

    model_config = ConfigDict(extra="forbid")

    children: list[GoalCreate] = Field(
        min_length=1, max_length=MAX_CHILDREN,
        description="The new children; each may omit parent_id (it is the goal decomposed).",
    )  # fmt: skip
