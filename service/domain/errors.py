"""Domain exceptions, each with its kind. Only the edges translate them.

The kind is the one classification of an error: the API's problem mapping (HTTP
status) and the CLI's exit codes are both tables keyed by it, so an error class
cannot be a 404 on one edge and a "conflict" on the other. `code` names the
problem type (`urn:goalstore:problem:{code}`), `title` its short summary, and
`fields()` what a client needs beyond the message (ids, versions, counts).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar


class ErrorKind(StrEnum):
    NOT_FOUND = "not_found"  # the thing named does not exist (or is deleted)
    CONFLICT = "conflict"  # the current state refuses the change: retry after reading it
    INVALID = "invalid"  # the input itself is wrong: do not retry it as it is
    FORBIDDEN = "forbidden"  # the actor may not do this to this thing (not its owner)
    PRECONDITION = "precondition"  # the change must name the version it is based on
    UNAVAILABLE = "unavailable"  # a collaborator (checker, Redis, a queue) does not answer
    CONFIGURATION = "configuration"  # this deployment lacks what the command needs


class GoalStoreError(Exception):
    """Base of every error a command can raise on purpose."""

    kind: ClassVar[ErrorKind]
    code: ClassVar[str]
    title: ClassVar[str]
    retry_after_s: ClassVar[int] = 5  # what an UNAVAILABLE error asks a client to wait

    def fields(self) -> dict[str, Any]:
        """What a client needs besides the message, e.g. the goal id and versions."""
        return {}


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
    kind = ErrorKind.NOT_FOUND
    code = "goal-not-found"
    title = "Goal not found"

    goal_id: str

    def fields(self) -> dict[str, Any]:
        return {"goal_id": self.goal_id}

    def __str__(self) -> str:
        return f"goal {self.goal_id!r} does not exist"


@dataclass
class BeliefNotFound(GoalStoreError):
    kind = ErrorKind.NOT_FOUND
    code = "belief-not-found"
    title = "Belief not found"

    belief_id: str

    def fields(self) -> dict[str, Any]:
        return {"belief_id": self.belief_id}

    def __str__(self) -> str:
        return f"belief {self.belief_id!r} does not exist"


@dataclass
class DecisionNotFound(GoalStoreError):
    kind = ErrorKind.NOT_FOUND
    code = "decision-not-found"
    title = "Decision not found"

    decision_id: str

    def fields(self) -> dict[str, Any]:
        return {"decision_id": self.decision_id}

    def __str__(self) -> str:
        return f"decision {self.decision_id!r} is not registered"


@dataclass
class GoalAlreadyExists(GoalStoreError):
    kind = ErrorKind.CONFLICT
    code = "goal-exists"
    title = "Goal already exists"

    goal_id: str

    def fields(self) -> dict[str, Any]:
        return {"goal_id": self.goal_id}

    def __str__(self) -> str:
        return f"goal {self.goal_id!r} already exists"


@dataclass
class VersionConflict(GoalStoreError):
    kind = ErrorKind.CONFLICT
    code = "version-conflict"
    title = "Version conflict"

    goal_id: str
    expected_version: int
    current_version: int

    def fields(self) -> dict[str, Any]:
        return {
            "goal_id": self.goal_id,
            "current_version": self.current_version,
            "expected_version": self.expected_version,
        }

    def __str__(self) -> str:
        return (
            f"goal {self.goal_id!r} is at version {self.current_version}, "
            f"not the expected {self.expected_version}"
        )


@dataclass
class PreconditionRequired(GoalStoreError):
    """A change that must name the version it was based on did not."""

    kind = ErrorKind.PRECONDITION
    code = "precondition-required"
    title = "Expected version required"

    goal_id: str
    action: str

    def fields(self) -> dict[str, Any]:
        return {"goal_id": self.goal_id}

    def __str__(self) -> str:
        return (
            f"{self.action} of goal {self.goal_id!r} needs the expected version "
            "(If-Match header or expected_version)"
        )


@dataclass
class IllegalTransition(GoalStoreError):
    kind = ErrorKind.CONFLICT
    code = "illegal-transition"
    title = "Illegal state transition"

    goal_id: str
    current_state: str
    action: str

    def fields(self) -> dict[str, Any]:
        return {"goal_id": self.goal_id, "current_state": self.current_state, "action": self.action}

    def __str__(self) -> str:
        return f"cannot {self.action} goal {self.goal_id!r}: it is {self.current_state}"


@dataclass
class NotPermitted(GoalStoreError):
    """The actor is neither the goal's owner nor acting with admin rights. The owner is
    not named: the refused caller learns only who may (see service/domain/authz.py)."""

    kind = ErrorKind.FORBIDDEN
    code = "not-permitted"
    title = "Not permitted"

    goal_id: str
    action: str

    def fields(self) -> dict[str, Any]:
        return {"goal_id": self.goal_id, "action": self.action}

    def __str__(self) -> str:
        return f"only goal {self.goal_id!r}'s owner or an admin may {self.action} it"


@dataclass
class InvalidInput(GoalStoreError):
    """Arguments a command cannot act on, each with its field path."""

    kind = ErrorKind.INVALID
    code = "invalid-input"
    title = "Invalid input"

    errors: list[FieldError] = field(default_factory=list)

    def fields(self) -> dict[str, Any]:
        return {"errors": [e.as_dict() for e in self.errors]}

    def __str__(self) -> str:
        return "; ".join(f"{'.'.join(map(str, e.loc))}: {e.msg}" for e in self.errors)


class InvalidGoal(InvalidInput):
    """Field values that are each well-formed but do not make a valid goal together."""

    code = "invalid-goal"
    title = "Invalid goal"


@dataclass
class RedisRequired(GoalStoreError):
    """The command needs Redis (the ranking cache, a queue) and none is configured."""

    kind = ErrorKind.CONFIGURATION
    code = "redis-required"
    title = "Redis required"

    what: str

    def __str__(self) -> str:
        return f"GOALSTORE_REDIS_URL is unset: {self.what} needs Redis"
