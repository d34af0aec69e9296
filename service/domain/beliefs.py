"""Beliefs: statements from the agent's belief kernel, mirrored here, active or not."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from service.domain import limits

Statement = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=limits.MAX_TEXT_LENGTH)
]


@dataclass(frozen=True, slots=True)
class Belief:
    id: str
    statement: str
    active: bool
    version: int
    created_at: datetime
    updated_at: datetime


class BeliefPut(BaseModel):
    """A belief as the kernel holds it now; PUT creates it or brings it up to date."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"statement": "I maintain a coherent identity over time", "active": True}]
        },
    )

    statement: Statement
    active: bool = Field(default=True, strict=True)

    def new(self, belief_id: str, now: datetime) -> Belief:
        return Belief(belief_id, self.statement, self.active, 1, now, now)

    def apply(self, belief: Belief, now: datetime) -> Belief:
        """The belief brought up to date, or the same object when nothing differs."""
        if (belief.statement, belief.active) == (self.statement, self.active):
            return belief
        return replace(
            belief,
            statement=self.statement,
            active=self.active,
            version=belief.version + 1,
            updated_at=now,
        )
