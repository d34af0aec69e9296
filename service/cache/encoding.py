"""Snapshots as snapshot.lua reads them: one row of text fields and one explanation per goal.

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

from service.domain.ranking import TERM_NAMES, Floats, Snapshots

Row = tuple[str | bool, ...]  # one snapshot as snapshot.lua reads it


class Encoded(NamedTuple):
    """A batch as snapshot.lua reads it, and the text columns a rebuild places goals by."""

    rows: list[Row]  # one per goal (False: absent)
    explained: list[bytes]  # each goal's explanation (JSON text, empty when not scored)
    ids: Sequence[str]
    placement: Sequence[str]
    category: Sequence[str]
    deadline: list[str | bool]
    score: list[str | bool]
    raw: list[str | bool]


def encoded(batch: Snapshots) -> Encoded:
    """A batch as snapshot.lua reads it (the row's fields: snapshot.lua's header)."""
    t, fa, sc = batch.table, batch.facts, batch.scores
    n, scored = len(batch), batch.rankable
    seq, computed_at = stamp(batch)
    deadline = [False if d == "null" else d for d in texts(t.deadline)]  # null: inf, none
    score = [v if ok else False for v, ok in zip(texts(sc.score), scored, strict=True)]
    raw = [v if ok else False for v, ok in zip(texts(sc.raw), scored, strict=True)]
    rows = list(zip(
        t.ids, repeat(seq, n), repeat(computed_at, n), batch.placement, deadline,
        fa.category, map(str, fa.version), fa.state, texts(t.created),
        ["1" if deleted else "0" for deleted in fa.deleted], score, raw,
        strict=True,
    ))  # fmt: skip
    return Encoded(
        rows, explanations(batch), t.ids, batch.placement, fa.category, deadline, score, raw
    )


def stamp(batch: Snapshots) -> tuple[str, str]:
    """The batch's seq and computed_at, as its snapshots hold them."""
    return str(batch.seq), repr(batch.computed_at)


def texts(column: Floats) -> list[str]:
    """Each float as orjson writes it (shortest round-trip form; inf as null)."""
    if not len(column):
        return []
    return orjson.dumps(column, option=orjson.OPT_SERIALIZE_NUMPY).decode()[1:-1].split(",")


# One goal's explanation; the numbers are urgency, alignment, then TERM_NAMES' terms.
_EXPLAINED = (
    b'{"urgency":%s,"alignment":%s,"terms":{'
    + b",".join(b'"%s":%%s' % name.encode() for name in TERM_NAMES)
    + b'},"blocked_by":%s}'
)


def explanations(batch: Snapshots) -> list[bytes]:
    """Each goal's explanation as JSON (empty when not scored), formatted by orjson as
    one array of numbers per goal, then cut into the template: the numbers are exactly
    what orjson writes for each float."""
    sc = batch.scores
    if not len(batch):
        return []
    numbers = np.column_stack((sc.urgency, sc.alignment, *sc.terms))
    text = orjson.dumps(numbers, option=orjson.OPT_SERIALIZE_NUMPY)
    out = []
    for i, (row, scored) in enumerate(zip(text[2:-2].split(b"],["), batch.rankable, strict=True)):
        if not scored:
            out.append(b"")
            continue
        blocked = batch.blocked_by.get(i)
        blocked_by = orjson.dumps([b.as_dict() for b in blocked]) if blocked else b"[]"
        out.append(_EXPLAINED % (*row.split(b","), blocked_by))
    return out


def chunks(
    batches: Iterable[Encoded], size: int
) -> Iterator[tuple[list[str], list[Row], list[bytes]]]:
    """Encoded batches as snapshot.lua's goals, rows and explanations, `size` goals a call."""
    ids: list[str] = []
    rows: list[Row] = []
    explained: list[bytes] = []
    for batch in batches:
        ids += batch.ids
        rows += batch.rows
        explained += batch.explained
        start = 0
        while len(rows) - start >= size:
            stop = start + size
            yield ids[start:stop], rows[start:stop], explained[start:stop]
            start = stop
        del ids[:start], rows[:start], explained[:start]
    if rows:
        yield ids, rows, explained
