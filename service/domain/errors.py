"""Domain exceptions. Only the edges (api/errors.py, cli.py) translate them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class GoalStoreError(Exception):
    """Base of every error a command can raise on purpose."""


@dataclass
class FieldError:
    """One validation problem: where (a field path) and what."""

    loc: tuple[str | int, ...]
    msg: str
    type: str = "value_error"

    def as_dict(self) -> dict[str, Any]:
        return {"loc": list(self.loc), "msg": self.msg, "type": self.type}


@dataclass
class GoalNotFound(GoalStoreError):
    goal_id: str

    def __str__(self) -> str:
        return f"goal {self.goal_id!r} does not exist"


@dataclass
class BeliefNotFound(GoalStoreError):
    belief_id: str

    def __str__(self) -> str:
        return f"belief {self.belief_id!r} does not exist"


@dataclass
class DecisionNotFound(GoalStoreError):
    decision_id: str

    def __str__(self) -> str:
        return f"decision {self.decision_id!r} is not registered"


@dataclass
class GoalAlreadyExists(GoalStoreError):
    goal_id: str

    def __str__(self) -> str:
        return f"goal {self.goal_id!r} already exists"


@dataclass
class VersionConflict(GoalStoreError):
    goal_id: str
    expected_version: int
    current_version: int

    def __str__(self) -> str:
        return (
            f"goal {self.goal_id!r} is at version {self.current_version}, "
            f"not the expected {self.expected_version}"
        )


@dataclass
class PreconditionRequired(GoalStoreError):
    """A change that must name the version it was based on did not."""

    goal_id: str
    action: str

    def __str__(self) -> str:
        return (
            f"{self.action} of goal {self.goal_id!r} needs the expected version "
            "(If-Match header or expected_version)"
        )


@dataclass
class IllegalTransition(GoalStoreError):
    goal_id: str
    current_state: str
    action: str

    def __str__(self) -> str:
        return f"cannot {self.action} goal {self.goal_id!r}: it is {self.current_state}"


@dataclass
class InvalidInput(GoalStoreError):
    """Arguments a command cannot act on, each with its field path."""

    errors: list[FieldError] = field(default_factory=list)

    def __str__(self) -> str:
        return "; ".join(f"{'.'.join(map(str, e.loc))}: {e.msg}" for e in self.errors)


class InvalidGoal(InvalidInput):
    """Field values that are each well-formed but do not make a valid goal together."""
