"""The ledger's hash chain: how a row is hashed, and how a chain is checked.

hash = sha256(prev_hash || canonical JSON of (seq, ts, event_type, goal_id, actor,
trace_id, span_id, payload)), where canonical JSON sorts keys and has no
whitespace. The first row's prev_hash is GENESIS.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from service.domain.goal import LATER_FIELD_DEFAULTS

GENESIS = "0" * 64
_CHECKPOINT = re.compile(r"([0-9]{1,18}):([0-9a-fA-F]{64})")

HASHED_FIELDS = ("seq", "ts", "event_type", "goal_id", "actor", "trace_id", "span_id", "payload")


def canonical_json(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


@dataclass(frozen=True, slots=True)
class LedgerRow:
    seq: int
    ts: str
    event_type: str
    goal_id: str | None
    actor: str
    trace_id: str | None
    span_id: str | None
    payload: dict[str, Any]
    prev_hash: str
    hash: str

    def content(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in HASHED_FIELDS}

    def as_dict(self) -> dict[str, Any]:
        return {**self.content(), "prev_hash": self.prev_hash, "hash": self.hash}


def chain_hash(prev_hash: str, content: dict[str, Any]) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + canonical_json(content)).hexdigest()


def links(row: LedgerRow, before: str | None, after: str | None) -> bool:
    """Whether `row` holds where it stands in the chain: its hash recomputes from its
    content and its prev_hash; that prev_hash is `before`, the stored hash of the row
    before it (GENESIS for the first row; None: that row is gone); and the row after it,
    if any, names its hash (`after`: that row's prev_hash; None: `row` is the head).
    An edit re-hashed to fit is caught by the row after it; only a rewrite of every row
    from the edit to the head gets past this, and a checkpoint catches that."""
    return (
        row.prev_hash == before
        and row.hash == chain_hash(row.prev_hash, row.content())
        and after in (None, row.hash)
    )


def seal(prev_hash: str, **content: Any) -> LedgerRow:
    """A new row whose hash links it to `prev_hash`."""
    return LedgerRow(**content, prev_hash=prev_hash, hash=chain_hash(prev_hash, content))


Damage = Literal["edited", "deleted", "reordered", "truncated"]


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    rows: int
    head_seq: int
    head_hash: str
    first_bad_seq: int | None = None
    damage: Damage | None = None
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    hash: str

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        match = _CHECKPOINT.fullmatch(text)
        if match is None:
            raise ValueError("a checkpoint is SEQ:HASH, as `goalstore ledger checkpoint` prints")
        return cls(int(match.group(1)), match.group(2).lower())

    def __str__(self) -> str:
        return f"{self.seq}:{self.hash}"


def verify_chain(
    rows: Iterable[LedgerRow],
    find_by_hash: Callable[[str], LedgerRow | None],
    checkpoint: Checkpoint | None = None,
) -> ChainReport:
    """Walk the rows in seq order; report the first one that breaks the chain, and how.

    `find_by_hash` returns the row that now carries a given hash, if any: it tells
    a row that was moved (reordered) from one that is gone (deleted).
    """
    prev_hash, prev_seq, count = GENESIS, 0, 0
    at_checkpoint: LedgerRow | None = None

    def broken(seq: int, damage: Damage, reason: str) -> ChainReport:
        return ChainReport(False, count, prev_seq, prev_hash, seq, damage, reason)

    for row in rows:
        if chain_hash(row.prev_hash, row.content()) != row.hash:
            if row.prev_hash != GENESIS and find_by_hash(row.prev_hash) is None:
                return broken(row.seq, "deleted", "the row it was chained to is gone")
            written = _written_seq(row, find_by_hash)
            if written not in (None, row.seq) and row.hash == chain_hash(
                row.prev_hash, {**row.content(), "seq": written}
            ):
                return broken(row.seq, "reordered", f"this row was written as seq {written}")
            return broken(row.seq, "edited", "its content does not match its hash")
        if row.seq != prev_seq + 1:
            return broken(
                prev_seq + 1, "deleted", f"rows {prev_seq + 1}..{row.seq - 1} are missing"
            )
        if row.prev_hash != prev_hash:
            # This row is intact and in place, so what precedes it was rewritten
            # and re-hashed to look whole.
            return broken(prev_seq or row.seq, "edited", "rewritten with a recomputed hash")
        if checkpoint and row.seq == checkpoint.seq:
            at_checkpoint = row
        prev_hash, prev_seq, count = row.hash, row.seq, count + 1

    if checkpoint is not None and checkpoint.seq == 0:  # taken while the ledger was empty
        if checkpoint.hash != GENESIS:
            return broken(0, "edited", "a checkpoint at seq 0 must carry the genesis hash")
    elif checkpoint is not None:
        if at_checkpoint is None:
            return broken(
                prev_seq + 1,
                "truncated",
                f"the ledger ends at seq {prev_seq}, before checkpoint seq {checkpoint.seq}",
            )
        if at_checkpoint.hash != checkpoint.hash:
            return broken(checkpoint.seq, "edited", "the chain up to the checkpoint was rewritten")
    return ChainReport(True, count, prev_seq, prev_hash)


def _written_seq(row: LedgerRow, find_by_hash: Callable[[str], LedgerRow | None]) -> int | None:
    """The seq a row was written with: the number of links from it back to GENESIS."""
    links, prev, seen = 1, row.prev_hash, {row.hash}
    while prev != GENESIS:
        predecessor = find_by_hash(prev)
        if predecessor is None or prev in seen:  # a gap, or links forged into a loop
            return None
        seen.add(prev)
        links, prev = links + 1, predecessor.prev_hash
    return links


def replay(rows: Iterable[LedgerRow]) -> dict[str, dict[str, Any]]:
    """Fold the goal events' `set` payloads into goal records, as the goals table holds them."""
    records: dict[str, dict[str, Any]] = {}
    for row in rows:
        changes = row.payload.get("set")
        if row.goal_id is None or not changes:
            continue
        if row.goal_id not in records:  # a goal created before later fields were added
            records[row.goal_id] = dict(LATER_FIELD_DEFAULTS)
        records[row.goal_id].update(changes)
    return records
