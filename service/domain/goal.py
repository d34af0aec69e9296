"""The goal: its fields, its lifecycle, and its stored record form."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import orjson

from service.domain.errors import FieldError, IllegalTransition
from service.domain.timefmt import format_ts, parse_ts


class GoalCategory(StrEnum):
    INTROSPECTION = "introspection"
    EXPLORATION = "exploration"
    MAINTENANCE = "maintenance"
    USER_REQUESTED = "user_requested"


class GoalState(StrEnum):
    PROPOSED = "proposed"
    ADOPTED = "adopted"
    EXECUTING = "executing"
    SATISFIED = "satisfied"
    ABANDONED = "abandoned"


TERMINAL_STATES = frozenset({GoalState.SATISFIED, GoalState.ABANDONED})


@dataclass(frozen=True, slots=True)
class Criterion:
    """An acceptance criterion (seed 001): what must hold before the goal is satisfied.
    `met` is None until a reviewer decides, then True or False with the evidence."""

    id: str
    text: str
    met: bool | None = None
    evidence: Any = None
    reviewed_by: str | None = None
    reviewed_at: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.text, "met": self.met, "evidence": self.evidence,
                "reviewed_by": self.reviewed_by, "reviewed_at": self.reviewed_at}  # fmt: skip

    @classmethod
    def of(cls, record: dict[str, Any]) -> Criterion:
        return cls(record["id"], record["text"], record.get("met"), record.get("evidence"),
                   record.get("reviewed_by"), record.get("reviewed_at"))  # fmt: skip


@dataclass(frozen=True, slots=True)
class Goal:
    id: str
    text: str
    category: GoalCategory
    value: float
    effort: float
    risk: float
    owner: str
    created_at: datetime
    updated_at: datetime
    goal_type: str = "generic"
    horizon_min_min: int = 0
    horizon_max_min: int | None = None
    aligns_with: tuple[str, ...] = ()
    contradicts: tuple[str, ...] = ()
    depends_on: tuple[str, ...] = ()
    success_metrics: dict[str, float] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    state: GoalState = GoalState.PROPOSED
    version: int = 1
    deleted_at: datetime | None = None
    # What the seeds keep besides the ranking inputs (migrations/*/0006_goal_details.sql).
    assigned_to: str | None = None
    related: tuple[str, ...] = ()  # other goals, for reference only: they block nothing
    criteria: tuple[Criterion, ...] = ()
    manual_block: dict[str, Any] | None = None  # {reason, actor, at}: never selected
    links: tuple[dict[str, Any], ...] = ()  # external work: {kind, ref, url, actor, at}
    result: Any = None  # the typed result it was satisfied with
    last_failure: dict[str, Any] | None = None  # the last GoalFailure recorded
    progress: float = 0.0  # in [0, 1]: from tasks, or the children's (derived: no version bump)
    # Goal trees (migrations/*/0007_goal_trees.sql, domain/trees.py).
    parent_id: str | None = None
    completion_policy: str = "all"  # all | any | manual: see domain/trees.py
    tree_block: dict[str, Any] | None = None  # {reason: child_abandoned, ref, at} (derived)

    @property
    def deadline(self) -> datetime | None:
        return deadline_after(self.created_at, self.horizon_max_min)

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    def unmet_criteria(self) -> list[str]:
        """The ids of the criteria not (yet) reviewed as met: the gate needs none."""
        return [c.id for c in self.criteria if c.met is not True]


def mint_goal_id() -> str:
    """`g-` and 16 hex chars: 64 random bits, so collisions are not a practical concern."""
    return "g-" + secrets.token_hex(8)


# --- lifecycle ---------------------------------------------------------------

# action -> (states it may start from, state it leads to)
_TRANSITIONS: dict[str, tuple[frozenset[GoalState], GoalState]] = {
    "adopt": (frozenset({GoalState.PROPOSED}), GoalState.ADOPTED),
    "start": (frozenset({GoalState.ADOPTED}), GoalState.EXECUTING),
    "retry": (frozenset({GoalState.EXECUTING}), GoalState.ADOPTED),
    "satisfy": (frozenset({GoalState.EXECUTING}), GoalState.SATISFIED),
    # A goal with children is satisfied by them (its policy) or through the gate, from
    # any open state: its work was its children's, so it is never executing itself.
    "complete": (
        frozenset({GoalState.PROPOSED, GoalState.ADOPTED, GoalState.EXECUTING}),
        GoalState.SATISFIED,
    ),
    "abandon": (
        frozenset({GoalState.PROPOSED, GoalState.ADOPTED, GoalState.EXECUTING}),
        GoalState.ABANDONED,
    ),
}

LIFECYCLE_ACTIONS = frozenset(_TRANSITIONS)


def target_state(action: str) -> GoalState:
    return _TRANSITIONS[action][1]


def transition(goal: Goal, action: str, now: datetime) -> Goal:
    """The goal after `action`, or IllegalTransition naming its current state."""
    sources, target = _TRANSITIONS[action]
    if goal.state not in sources:
        raise IllegalTransition(goal.id, goal.state.value, action)
    return bump(replace(goal, state=target), now)


def bump(goal: Goal, now: datetime) -> Goal:
    """Every mutation advances the version and the update time together."""
    return replace(goal, version=goal.version + 1, updated_at=now)


# --- cross-field rules ---------------------------------------------------------


def goal_problems(goal: Goal) -> list[FieldError]:
    """Rules that span fields, checked after create and after every update."""
    problems: list[FieldError] = []
    if goal.horizon_max_min is not None and goal.horizon_max_min < goal.horizon_min_min:
        problems.append(
            FieldError(
                ("horizon_max_min",),
                f"must be at least horizon_min_min ({goal.horizon_min_min})",
            )
        )
    if goal.id in goal.depends_on:
        problems.append(FieldError(("depends_on",), "a goal cannot depend on itself"))
    if goal.parent_id is not None and goal.parent_id == goal.id:
        problems.append(FieldError(("parent_id",), "a goal cannot be its own parent"))
    if goal.id in goal.related:
        problems.append(FieldError(("related",), "a goal cannot be related to itself"))
    ids = [c.id for c in goal.criteria]
    if len(set(ids)) != len(ids):
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        problems.append(FieldError(("criteria",), f"repeated criterion ids: {', '.join(repeated)}"))
    return problems


# --- stored record form --------------------------------------------------------

RECORD_FIELDS: tuple[str, ...] = (
    "id", "text", "category", "goal_type", "value", "effort", "risk",
    "horizon_min_min", "horizon_max_min", "aligns_with", "contradicts", "depends_on",
    "success_metrics", "metadata", "state", "version", "owner",
    "created_at", "updated_at", "deleted_at",
    "assigned_to", "related", "criteria", "manual_block", "links", "result", "last_failure",
    "progress", "parent_id", "completion_policy", "tree_block",
)  # fmt: skip
# The stored values of the fields added after goals were first recorded (0006): what a
# goal created before then holds, and what replay starts every goal from.
LATER_FIELD_DEFAULTS: dict[str, Any] = {
    "assigned_to": None, "related": [], "criteria": [], "manual_block": None, "links": [],
    "result": None, "last_failure": None, "progress": 0.0,
    "parent_id": None, "completion_policy": "all", "tree_block": None,
}  # fmt: skip
# Fields the service derives (from tasks, from failures): they change without a version
# bump, so a client's If-Match is not made stale by a task review.
DERIVED_FIELDS = frozenset({"progress", "last_failure", "tree_block"})


def to_record(goal: Goal) -> dict[str, Any]:
    """The goal as plain JSON values: what the table stores and the ledger replays.

    success_metrics and metadata are the goal's own dicts, not copies (asdict's deep
    copy cost more than the rest of a selection's Python): a record is written or
    compared, never changed."""
    record = {name: getattr(goal, name) for name in RECORD_FIELDS}
    record["category"] = goal.category.value
    record["state"] = goal.state.value
    for name in ("aligns_with", "contradicts", "depends_on", "related", "links"):
        record[name] = list(record[name])
    record["criteria"] = [c.as_dict() for c in goal.criteria]
    for name in ("created_at", "updated_at", "deleted_at"):
        moment = getattr(goal, name)
        record[name] = None if moment is None else format_ts(moment)
    return record


def deadline_after(created_at: datetime, horizon_max_min: int | None) -> datetime | None:
    """When a goal's horizon closes: created_at + horizon_max_min (seed 000)."""
    if horizon_max_min is None:
        return None
    return created_at + timedelta(minutes=horizon_max_min)


def from_record(record: dict[str, Any]) -> Goal:
    deleted_at = record.get("deleted_at")
    return Goal(
        id=record["id"],
        text=record["text"],
        category=GoalCategory(record["category"]),
        goal_type=record["goal_type"],
        value=float(record["value"]),
        effort=float(record["effort"]),
        risk=float(record["risk"]),
        horizon_min_min=int(record["horizon_min_min"]),
        horizon_max_min=record["horizon_max_min"],
        aligns_with=tuple(record["aligns_with"]),
        contradicts=tuple(record["contradicts"]),
        depends_on=tuple(record["depends_on"]),
        success_metrics=dict(record["success_metrics"]),
        metadata=dict(record["metadata"]),
        state=GoalState(record["state"]),
        version=int(record["version"]),
        owner=record["owner"],
        created_at=parse_ts(record["created_at"]),
        updated_at=parse_ts(record["updated_at"]),
        deleted_at=None if deleted_at is None else parse_ts(deleted_at),
        assigned_to=record["assigned_to"],
        related=tuple(record["related"]),
        criteria=tuple(Criterion.of(c) for c in record["criteria"]),
        manual_block=record["manual_block"],
        links=tuple(record["links"]),
        result=record["result"],
        last_failure=record["last_failure"],
        progress=float(record["progress"]),
        parent_id=record["parent_id"],
        completion_policy=record["completion_policy"],
        tree_block=record["tree_block"],
    )


def record_changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The fields whose stored value differs: what a ledger event must carry to replay.

    Compared as JSON, not with Python's ==, for which 1 == 1.0 == True.
    """
    return {
        name: after[name]
        for name in RECORD_FIELDS
        if name not in before or _json(before[name]) != _json(after[name])
    }


def _json(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
