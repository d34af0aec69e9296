"""The ranking in Redis: guarded snapshot writes, a rebuild from SQLite, and ranked reads."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from redis import Redis
from redis.client import Pipeline

from service.cache.keys import Keys
from service.domain.ranking import TERM_NAMES, Floats, Snapshots, Weights

_SNAPSHOT_LUA = (Path(__file__).parent / "snapshot.lua").read_text()
_INPUTS_LUA = (Path(__file__).parent / "inputs.lua").read_text()
_TOP_LUA = (Path(__file__).parent / "top.lua").read_text()
_DROP_LUA = (Path(__file__).parent / "drop.lua").read_text()


WRITE_CHUNK = 1_000  # snapshots per script call: ~10 ms of Redis time each


def _encoded(batch: Snapshots) -> tuple[list[tuple[str | bool, ...]], list[bytes]]:
    """A batch as snapshot.lua reads it: one row per goal (False: absent), and each goal's
    explanation (JSON text, empty when not scored). Numbers travel as text, in the
    shortest form that reads back as the same float: Lua would spend more formatting
    them than Redis does storing the whole hash.

    Built column by column, numbers formatted by orjson a column at a time: a 100k-goal
    rebuild spends ~2 us a goal here, where a dict, a dumps() and four repr() per goal
    took ~8 us."""
    t, fa, sc = batch.table, batch.facts, batch.scores
    n, scored = len(batch), batch.rankable
    rows = list(zip(
        t.ids, repeat(str(batch.seq), n), repeat(repr(batch.computed_at), n), batch.placement,
        [False if d == "null" else d for d in _texts(t.deadline)],  # null: inf, no deadline
        fa.category, map(str, fa.version), fa.state, _texts(t.created),
        ["1" if deleted else "0" for deleted in fa.deleted],
        [v if ok else False for v, ok in zip(_texts(sc.score), scored, strict=True)],
        [v if ok else False for v, ok in zip(_texts(sc.raw), scored, strict=True)],
        strict=True,
    ))  # fmt: skip
    return rows, _explanations(batch)


def _texts(column: Floats) -> list[str]:
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


def _explanations(batch: Snapshots) -> list[bytes]:
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


def _chunks(batches: Iterable[Snapshots]) -> Iterator[tuple[bytes, list[bytes]]]:
    """The batches' snapshots as snapshot.lua's arguments, WRITE_CHUNK goals a call."""
    rows: list[tuple[str | bool, ...]] = []
    explained: list[bytes] = []
    for batch in batches:
        more_rows, more_explained = _encoded(batch)
        rows += more_rows
        explained += more_explained
        start = 0
        while len(rows) - start >= WRITE_CHUNK:
            stop = start + WRITE_CHUNK
            yield orjson.dumps(rows[start:stop]), explained[start:stop]
            start = stop
        del rows[:start], explained[:start]
    if rows:
        yield orjson.dumps(rows), explained


class RankingCache:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self._write_script = redis.register_script(_SNAPSHOT_LUA)
        self._inputs_script = redis.register_script(_INPUTS_LUA)
        self._top_script = redis.register_script(_TOP_LUA)
        self._drop_script = redis.register_script(_DROP_LUA)

    def write(self, batches: Iterable[Snapshots], pipe: Pipeline | None = None) -> None:
        """Write snapshots, each unless Redis holds a newer one: on `pipe`, or one call per
        WRITE_CHUNK (a script on a pipeline of our own would cost a SCRIPT EXISTS round
        trip more)."""
        for rows, explained in _chunks(batches):
            self._write_chunk(rows, explained, self.redis if pipe is None else pipe)

    def _write_chunk(self, rows: bytes, explained: list[bytes], client: Redis | Pipeline) -> Any:
        k = self.keys
        return self._write_script(
            keys=[k.ranked, k.blocked, k.goals, k.deadlines], args=[k.prefix, rows, *explained],
            client=client,
        )  # fmt: skip

    def _drop(self, goal_ids: list[str], seq: int) -> None:
        """Drop these goals' snapshots unless written after ledger seq `seq`."""
        k = self.keys
        for start in range(0, len(goal_ids), WRITE_CHUNK):
            self._drop_script(
                keys=[k.goals, *k.all_ranked(), k.blocked, k.deadlines],
                args=[k.prefix, seq, *goal_ids[start : start + WRITE_CHUNK]],
            )  # fmt: skip

    def set_inputs(
        self, active_beliefs: Iterable[str], weights: Weights, seq: int, pipe: Pipeline
    ) -> None:
        """Replace the copy of the inputs, unless Redis holds one read at a later seq."""
        active = sorted(active_beliefs)
        weight_fields: list[str | float] = [
            "value_weight", weights.value, "effort_weight", weights.effort,
            "risk_weight", weights.risk, "urgency_weight", weights.urgency,
            "alignment_weight", weights.alignment,
        ]  # fmt: skip
        self._inputs_script(
            keys=[self.keys.meta, self.keys.beliefs_active, self.keys.weights],
            args=[seq, len(active), *active, *weight_fields],
            client=pipe,
        )

    def rebuild(
        self, batches: Iterable[Snapshots], active_beliefs: Iterable[str], weights: Weights,
        seq: int, computed_at: float,
    ) -> int:  # fmt: skip
        """Bring Redis in line with SQLite: write every goal (`batches` of snapshots of all
        of them), drop goals SQLite no longer has.

        Guarded like every write, so a rebuild never undoes a newer incremental update.
        Redis applies one chunk while the next is computed, with a second chunk already
        sent (on a connection of its own), so it never waits for this process.
        """
        known: set[str] = set()

        def counted(batch: Snapshots) -> Snapshots:
            known.update(batch.table.ids)
            return batch

        with ThreadPoolExecutor(2, thread_name_prefix="goalstore-rebuild") as senders:
            in_flight: deque[Future[Any]] = deque()
            for rows, explained in _chunks(map(counted, batches)):
                if len(in_flight) == 2:
                    in_flight.popleft().result()
                in_flight.append(senders.submit(self._write_chunk, rows, explained, self.redis))
            for sent in in_flight:
                sent.result()
        written = len(known)
        held: set[Any] = self.redis.smembers(self.keys.goals)
        self._drop([goal_id for goal_id in map(_text, held) if goal_id not in known], seq)
        pipe = self.redis.pipeline(transaction=False)
        self.set_inputs(active_beliefs, weights, seq, pipe)
        pipe.hset(
            self.keys.meta,
            mapping={
                "rebuilt_seq": seq,
                "rebuilt_at": computed_at,
                "urgency_refreshed_at": computed_at,
                "goals": written,
            },
        )
        pipe.execute()
        return written

    def is_warm(self) -> bool:
        """Whether a rebuild has populated this Redis (a restarted, empty Redis is not)."""
        return bool(self.redis.hexists(self.keys.meta, "rebuilt_seq"))

    def meta(self) -> dict[str, str]:
        raw: dict[Any, Any] = self.redis.hgetall(self.keys.meta)
        return {_text(k): _text(v) for k, v in raw.items()}

    def note(self, **fields: float | str) -> None:
        """Record facts about the cache (when urgencies were refreshed...) in its meta hash."""
        mapping: Any = fields  # redis-py's Mapping type is invariant in its key type
        self.redis.hset(self.keys.meta, mapping=mapping)

    def with_deadline_between(self, start: float, end: float) -> list[str]:
        """Placed goals whose deadline falls in [start, end] (epoch seconds)."""
        found: list[Any] = self.redis.zrangebyscore(self.keys.deadlines, start, end)
        return [_text(goal_id) for goal_id in found]

    def page(self, limit: int, category: str | None = None, include_blocked: bool = False) -> Page:
        """The best `limit` goals (ordering fields of each), in the documented total
        order, and what a reader needs to trust them, from one round trip (two when
        blocked goals are asked for and the ranked ones do not fill the page)."""
        key = self.keys.ranked_in(category) if category else self.keys.ranked
        reply: list[Any] = self._top_script(
            keys=[key, self.keys.meta], args=[self.keys.prefix, limit, *_PLACED_FIELDS]
        )
        warm, ranked_count, rest = bool(reply[0]), int(reply[1]), reply[2:]
        placed = _placed(zip(map(_text, rest[::2]), rest[1::2], strict=True))
        items = sorted(placed, key=_order)[:limit]
        if include_blocked and len(items) < limit:
            members: list[Any] = self.redis.zrevrange(self.keys.blocked, 0, -1)
            blocked_ids = [_text(m) for m in members]
            blocked = [
                s
                for s in _placed(zip(blocked_ids, self._hmget(blocked_ids), strict=True))
                if not category or s["category"] == category
            ]
            items += sorted(blocked, key=_order)[: limit - len(items)]
        return Page(items, warm, ranked_count)

    def _hmget(self, ids: list[str]) -> list[Any]:
        pipe = self.redis.pipeline(transaction=False)
        for goal_id in ids:
            pipe.hmget(self.keys.goal(goal_id), _PLACED_FIELDS)
        return pipe.execute()

    def snapshot(self, goal_id: str) -> dict[str, Any] | None:
        found = self._snapshots([goal_id])
        return found[0] if found else None

    def _snapshots(self, ids: list[str]) -> list[dict[str, Any]]:
        """The snapshots of `ids` that exist, in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for goal_id in ids:
            pipe.hgetall(self.keys.goal(goal_id))
        return [_decode(raw) for raw in pipe.execute() if raw]


@dataclass(frozen=True)
class Page:
    """The head of a ranking as read from Redis."""

    items: list[dict[str, Any]]  # ordering fields of each goal, best first
    warm: bool  # a rebuild has populated this Redis (an empty, restarted one has not)
    ranked: int  # entries in the ZSET read


_PLACED_FIELDS = ["score", "raw", "placement", "deadline", "created", "category", "version"]


def _placed(rows: Iterable[tuple[str, list[Any]]]) -> list[dict[str, Any]]:
    """What ordering needs of each snapshot, from HMGETs of _PLACED_FIELDS (a fraction
    of the snapshot to parse); goals unscored or gone since the ZSET was read are left
    out."""
    out = []
    for goal_id, values in rows:
        if not values[0]:
            continue
        score, raw, placement, deadline, created, category, version = map(_text, values)
        out.append({
            "id": goal_id, "score": float(score), "raw": float(raw),
            "blocked": placement == "blocked",
            "deadline": float(deadline) if deadline else None, "created": float(created),
            "category": category, "version": int(version),
        })  # fmt: skip
    return out


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _decode(raw: dict[Any, Any]) -> dict[str, Any]:
    """A snapshot hash as Python values (fields written empty, for a goal that is not
    scored, come back as None)."""
    text = {_text(k): _text(v) for k, v in raw.items()}
    out: dict[str, Any] = dict(text)
    for name in ("score", "raw", "created", "computed_at", "deadline"):
        out[name] = float(text[name]) if text.get(name) else None
    for name in ("version", "seq"):
        out[name] = int(text[name])
    out["blocked"] = text.get("placement") == "blocked"
    out["deleted"] = text.get("deleted") == "1"
    explanation = out.pop("explain", "")
    if explanation:
        out.update(orjson.loads(explanation))
    return out


def _order(s: dict[str, Any]) -> tuple[bool, float, float, float, float, str]:
    deadline = s["deadline"] if s["deadline"] is not None else float("inf")
    return (s["blocked"], -s["score"], -s["raw"], deadline, s["created"], s["id"])
