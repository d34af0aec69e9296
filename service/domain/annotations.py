"""What people add to a goal besides its fields (seed 001): notes, linked work, reviews of
its acceptance criteria, manual blocks. Input models and the pure rules; no I/O.

A note is commentary: a ledger event, not a field, so it changes neither the goal nor
its version. A link, a criterion's review and a block are changes of the goal (a new
version, owner or admin only) and are refused once the goal is finished.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    StrictBool,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)

from service.domain import limits
from service.domain.errors import (
    ErrorKind,
    FieldError,
    GoalStoreError,
    IllegalTransition,
    InvalidInput,
)
from service.domain.goal import Goal, bump
from service.domain.inputs import Evidence, ExpectedVersion, GoalText, Identifier, stripped
from service.domain.timefmt import format_ts

NOTE_EVENT = "goal_note_added"


class NoteKind(StrEnum):
    DECISION = "decision"
    BLOCKER = "blocker"
    INFO = "info"


_HTTP_URL: TypeAdapter[HttpUrl] = TypeAdapter(HttpUrl)


def _http_url(value: str) -> str:
    """An absolute http(s) URL with a host, kept exactly as the client wrote it."""
    try:
        _HTTP_URL.validate_python(value)
    except ValidationError:
        raise ValueError("must be an absolute http(s) URL with a host") from None
    return value


Ref = Annotated[
    str,
    StringConstraints(min_length=1, max_length=limits.MAX_REF_LENGTH),
    AfterValidator(stripped),
]
Url = Annotated[str, StringConstraints(max_length=limits.MAX_URL_LENGTH), AfterValidator(_http_url)]


class NoteCreate(BaseModel):
    """A note on a goal: a decision, a blocker met, or plain information."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"kind": "decision", "text": "Ship behind a flag."}]},
    )

    kind: NoteKind
    text: GoalText


class BlockCreate(BaseModel):
    """Hold a goal by hand: it is never selected until unblocked."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"reason": "Waiting for the vendor's API key."}]},
    )

    reason: GoalText
    expected_version: ExpectedVersion = None


class LinkCreate(BaseModel):
    """External work done for a goal: a chat session, a pull request, an issue…"""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"kind": "pull_request", "ref": "org/repo#42",
                 "url": "https://github.com/org/repo/pull/42"}
            ]
        },
    )  # fmt: skip

    kind: Identifier = Field(description="What the work is, e.g. session, pull_request, issue.")
    ref: Ref = Field(description="Its identity where it lives (1-512 characters).")
    url: Url | None = Field(default=None, description="An http(s) URL to it.")
    expected_version: ExpectedVersion = None


class CriterionReview(BaseModel):
    """A reviewer's decision on one acceptance criterion, with what it rests on."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"met": True, "evidence": {"ci": "run 1234 green"}}]},
    )

    met: StrictBool
    evidence: Evidence = Field(default=None, description="Any JSON (bounded like metadata).")
    expected_version: ExpectedVersion = None


M = TypeVar("M", bound=BaseModel)


def validated(model: type[M], **values: Any) -> M:
    """`model` built from `values`, or InvalidInput listing each bad field: the same
    error whether the values came from REST, the CLI or a scenario."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise InvalidInput(
            [FieldError(tuple(e["loc"]), e["msg"], e["type"]) for e in exc.errors()]
        ) from None


@dataclass(frozen=True)
class Note:
    """A note as the ledger holds it: its event's seq, who wrote it, in which trace."""

    seq: int
    goal_id: str
    kind: str
    text: str
    actor: str
    trace_id: str | None
    at: str

    @classmethod
    def of(cls, seq: int, goal_id: str, ts: str, actor: str, trace_id: str | None,
           payload: dict[str, Any]) -> Note:  # fmt: skip
        return cls(seq, goal_id, payload["kind"], payload["text"], actor, trace_id, ts)


@dataclass
class CriterionNotFound(GoalStoreError):
    kind = ErrorKind.NOT_FOUND
    code = "criterion-not-found"
    title = "Criterion not found"

    goal_id: str
    criterion_id: str

    def fields(self) -> dict[str, Any]:
        return {"goal_id": self.goal_id, "criterion_id": self.criterion_id}

    def __str__(self) -> str:
        return f"goal {self.goal_id!r} has no acceptance criterion {self.criterion_id!r}"


def _unfinished(goal: Goal, action: str) -> None:
    if goal.is_terminal:
        raise IllegalTransition(goal.id, goal.state.value, action)


def has_link(goal: Goal, kind: str, ref: str) -> bool:
    return any(link["kind"] == kind and link["ref"] == ref for link in goal.links)


def with_link(goal: Goal, spec: LinkCreate, actor: str, now: datetime) -> Goal:
    """The goal with `spec` linked. Linking the same kind and ref again is the goal itself
    (the first link stands); a finished goal, or one holding MAX_LINKS, refuses it."""
    if has_link(goal, spec.kind, spec.ref):
        return goal
    _unfinished(goal, "link")
    if len(goal.links) >= limits.MAX_LINKS:
        raise InvalidInput([FieldError(("links",), f"a goal holds at most {limits.MAX_LINKS}")])
    link = {"kind": spec.kind, "ref": spec.ref, "url": spec.url, "actor": actor,
            "at": format_ts(now)}  # fmt: skip
    return bump(replace(goal, links=(*goal.links, link)), now)


def is_reviewed_as(goal: Goal, criterion_id: str, review: CriterionReview) -> bool:
    """Whether the criterion already carries this decision with this evidence."""
    return any(
        c.id == criterion_id and c.met is review.met and c.evidence == review.evidence
        for c in goal.criteria
    )


def with_review(
    goal: Goal, criterion_id: str, review: CriterionReview, actor: str, now: datetime
) -> Goal:
    """The goal with the criterion reviewed; CriterionNotFound for an unknown id, refused
    on a finished goal. The same decision with the same evidence is the goal itself."""
    if is_reviewed_as(goal, criterion_id, review):
        return goal
    _unfinished(goal, "review")
    if all(c.id != criterion_id for c in goal.criteria):
        raise CriterionNotFound(goal.id, criterion_id)
    reviewed = tuple(
        replace(c, met=review.met, evidence=review.evidence, reviewed_by=actor,
                reviewed_at=format_ts(now)) if c.id == criterion_id else c
        for c in goal.criteria
    )  # fmt: skip
    return bump(replace(goal, criteria=reviewed), now)
