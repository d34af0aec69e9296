"""Notes as served (request bodies are the domain's NoteCreate, BlockCreate, LinkCreate
and CriterionReview; a block, a link or a review answers with the goal)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from service.domain.annotations import Note, NoteKind

_EXAMPLE_NOTE: dict[str, Any] = {
    "seq": 42,
    "goal_id": "goal_001",
    "kind": "decision",
    "text": "Ship behind a flag.",
    "actor": "alice",
    "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
    "at": "2026-11-22T09:30:00.000000Z",
}


class NotePublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE_NOTE]})

    seq: int = Field(description="The seq of its `goal_note_added` ledger event.")
    goal_id: str
    kind: NoteKind
    text: str
    actor: str = Field(description="Who wrote it.")
    trace_id: str | None
    at: str

    @classmethod
    def of(cls, note: Note) -> NotePublic:
        return cls(
            seq=note.seq, goal_id=note.goal_id, kind=NoteKind(note.kind), text=note.text,
            actor=note.actor, trace_id=note.trace_id, at=note.at,
        )  # fmt: skip


class NotesPublic(BaseModel):
    data: list[NotePublic] = Field(description="Newest first.")
    next_cursor: str | None = Field(description="Pass as `cursor` for older notes.")
