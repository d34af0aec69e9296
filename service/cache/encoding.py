"""Snapshots as snapshot.lua reads them: per goal, what the sorted sets need and the
fields of its hash.

A goal's hash is kept small enough for Redis to hold it as a listpack (one allocation,
about a fifth of a hashtable's size): each value far under `hash-max-listpack-value`
(64 bytes by default), and only the fields that say something (docs/ranking.md, "A
goal's hash"):

- instants (created, deadline, computed_at) as integer epoch microseconds, which Redis
  keeps as 8-byte integers: GoalStore's times are whole microseconds, so the text reads
  back as the same float (`int(text) / 1e6`). One that is not is written as seconds, in
  the shortest form that reads back as it, with a point or an exponent (reads.instant()
  tells the two apart);
- `raw` only where it differs from `score`, `state` only where the placement does not
  say it (a ranked or blocked goal is adopted), `deadline`, `alignment`, `blocked_by`,
  `deleted`, `assigned_to`, `related`, `manual_block`, `parent_id` and `progress` only
  where there is one (a progress of 0 is none); text a person wrote (a manual block's
  reason, related ids) cut to 64 bytes (fitted()), an id (`parent_id`) never;
- `deadline` is the one the goal is ranked by: its tree's, when earlier than its own;
- no copy of the id (the key names it) and no explanation's terms: the urgency is
  derived from the deadline and computed_at (held_urgency()), the terms are
  GET /v1/goals/{id}/score's, computed from the store on demand.

Numbers travel as text, in the shortest form that reads back as the same float: Lua
would spend more formatting them than Redis does storing the whole hash. A batch is
encoded column by column, numbers formatted by orjson a column at a time, not goal by
goal.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from itertools import repeat
from typing import NamedTuple

import numpy as np
import orjson

from service.domain.blocks import DEADLINE_PASSED, MANUAL_BLOCK, Block
from service.domain.ranking import Floats, Snapshots

# One snapshot as snapshot.lua reads it (its header lists the fields; False: none).
Row = tuple[str | bool, ...]


class Encoded(NamedTuple):
    """A batch as snapshot.lua reads it, and the text columns a rebuild places goals by."""

    rows: list[Row]  # one per goal
    ids: Sequence[str]
    placement: Sequence[str]
    category: Sequence[str]
    deadline: list[str | bool]  # epoch seconds (False: none)
    score: list[str | bool]  # False: not scored
    raw: list[str | bool]


def encoded(batch: Snapshots) -> Encoded:
    """A batch as snapshot.lua reads it: its row's fields, in snapshot.lua's header. What
    a sorted set needs (placement, deadline in seconds, score, raw) and what its hash
    holds; a field the hash leaves out is False."""
    t, fa, sc = batch.table, batch.facts, batch.scores
    n, scored = len(batch), batch.rankable
    seq, computed_at = stamp(batch)
    deadline = [False if d == "null" else d for d in texts(t.deadline)]  # null: inf, none
    score = [v if ok else False for v, ok in zip(texts(sc.score), scored, strict=True)]
    raw = [v if ok else False for v, ok in zip(texts(sc.raw), scored, strict=True)]
    held_raw = [False if r == s else r for r, s in zip(raw, score, strict=True)]
    state = [False if p != "none" else s for p, s in zip(batch.placement, fa.state, strict=True)]
    alignment = [
        False if a == "0.0" or not ok else a
        for a, ok in zip(texts(sc.alignment), scored, strict=True)
    ]  # fmt: skip
    blocked_by: list[str | bool] = [False] * n
    for i, found in batch.blocked_by.items():
        blocked_by[i] = blocked_text(found)
    columns = [
        t.ids, repeat(seq, n), repeat(computed_at, n), batch.placement, deadline,
        fa.category, map(str, fa.version), state, instants(t.created),
        ["1" if deleted else False for deleted in fa.deleted], score, held_raw,
        instants(t.deadline), alignment, blocked_by,
    ]  # fmt: skip
    columns += details(batch)
    rows = list(zip(*columns, strict=True))
    return Encoded(rows, t.ids, batch.placement, fa.category, deadline, score, raw)


def details(batch: Snapshots) -> list[list[str | bool]]:
    """The columns after blocked_by, for the batch's goals: assigned_to, related (ids
    space apart) and the reason of a manual block, each cut to what a listpack holds
    (fitted()), then the parent's id and the progress. Most goals have none of them: the
    columns from the last one any goal of the batch has on are left out, and snapshot.lua
    reads a missing one as none."""
    fa = batch.facts
    assigned: list[str | bool] = [False if a is None else fitted(a) for a in fa.assigned_to]
    related: list[str | bool] = [related_text(r) if r else False for r in fa.related]
    held: list[str | bool] = [False] * len(batch)
    for i, found in batch.blocked_by.items():
        for block in found:
            if block.reason == MANUAL_BLOCK:
                held[i] = fitted(block.ref)
    # Most goals are in no tree and have no progress: no list to walk for them.
    parent: list[str | bool] = [False] * len(batch)
    if fa.parent_id.count(None) != len(batch):
        parent = [False if p is None else p for p in fa.parent_id]
    progress: list[str | bool] = [False] * len(batch)
    if any(fa.progress):
        progress = [False if p == "0.0" else p for p in texts(np.array(fa.progress, np.float64))]
    out = [assigned, related, held, parent, progress]
    while out and not any(out[-1]):
        out.pop()
    return out


# A hash stays a listpack while every value is at most this long (Redis's default
# hash-max-listpack-value): longer text is cut to it. The goal's body has it whole.
LISTPACK_VALUE_BYTES = 64
_CUT = "\u2026"  # … ends a text cut short


def fitted(text: str) -> str:
    """The text, or as much of it as fits LISTPACK_VALUE_BYTES with "…" after it."""
    raw = text.encode()
    if len(raw) <= LISTPACK_VALUE_BYTES:
        return text
    room = LISTPACK_VALUE_BYTES - len(_CUT.encode())
    return raw[:room].decode(errors="ignore") + _CUT


def related_text(related: Sequence[str]) -> str:
    """Related goal ids, space apart, as many as fit LISTPACK_VALUE_BYTES; `+N` after
    them says how many more the goal names."""
    text = " ".join(related)
    if len(text.encode()) <= LISTPACK_VALUE_BYTES:
        return text
    kept: list[str] = []
    for n, goal_id in enumerate(related):
        more = f" +{len(related) - n - 1}" if n + 1 < len(related) else ""
        trial = " ".join([*kept, goal_id]) + more
        if len(trial.encode()) > LISTPACK_VALUE_BYTES:
            break
        kept.append(goal_id)
    return " ".join([*kept, f"+{len(related) - len(kept)}"])


def stamp(batch: Snapshots) -> tuple[str, str]:
    """The batch's seq and computed_at, as its snapshots hold them."""
    return str(batch.seq), str(instants(np.array([batch.computed_at]))[0])


def texts(column: Floats) -> list[str]:
    """Each float as orjson writes it (shortest round-trip form; inf as null)."""
    if not len(column):
        return []
    return orjson.dumps(column, option=orjson.OPT_SERIALIZE_NUMPY).decode()[1:-1].split(",")


def instants(column: Floats) -> list[str | bool]:
    """Each instant (epoch seconds) as a hash holds it: whole epoch microseconds as an
    integer, or, for one that is not a whole microsecond, seconds as texts() writes them;
    False for none (inf)."""
    if not len(column):
        return []
    finite = np.isfinite(column)
    seconds = np.where(finite, column, 0.0)
    us = np.rint(seconds * 1e6)
    exact = us / 1e6 == seconds  # what a reader makes of the integer: the same float
    for step in (-1.0, 1.0):  # the product rounded across a half: the next integer
        if exact.all():
            break
        closer = ~exact & ((us + step) / 1e6 == seconds)
        us, exact = np.where(closer, us + step, us), exact | closer
    out: list[str | bool] = list(
        orjson.dumps(us.astype(np.int64), option=orjson.OPT_SERIALIZE_NUMPY)
        .decode()[1:-1]
        .split(",")
    )
    if not exact.all():
        for i in np.flatnonzero(~exact & finite).tolist():
            out[i] = texts(column[i : i + 1])[0]
    if not finite.all():
        for i in np.flatnonzero(~finite).tolist():
            out[i] = False
    return out


def blocked_text(found: Iterable[Block]) -> str:
    """Why a goal is blocked, as its hash holds it: `reason:ref` for each block, space
    apart (ids hold no space); a passed deadline as its reason alone, for the hash's
    deadline field says which (deadline_passed() makes the ref from it), and so a manual
    block, whose reason (text, spaces and all) is the hash's `manual_block` field."""
    return " ".join(b.reason if b.reason in _ALONE else f"{b.reason}:{b.ref}" for b in found)


_ALONE = frozenset({DEADLINE_PASSED, MANUAL_BLOCK})  # blocks whose ref lies elsewhere


def chunks(batches: Iterable[Encoded], size: int) -> Iterator[tuple[list[str], list[Row]]]:
    """Encoded batches as snapshot.lua's goals and rows, `size` goals a call."""
    ids: list[str] = []
    rows: list[Row] = []
    for batch in batches:
        ids += batch.ids
        rows += batch.rows
        start = 0
        while len(rows) - start >= size:
            stop = start + size
            yield ids[start:stop], rows[start:stop]
            start = stop
        del ids[:start], rows[:start]
    if rows:
        yield ids, rows
