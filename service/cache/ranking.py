"""The ranking in Redis: guarded snapshot writes, a rebuild from SQLite, and ranked reads."""

from __future__ import annotations

import contextlib
import uuid
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import chain, compress, repeat
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import orjson
from redis import Redis
from redis.client import Pipeline
from redis.exceptions import RedisError

from service.cache.keys import Keys
from service.domain.ranking import TERM_NAMES, Floats, Snapshots, Weights


def _lua(name: str) -> str:
    return (Path(__file__).parent / name).read_text()


_SNAPSHOT_LUA = _lua("snapshot.lua")
_INPUTS_LUA = _lua("inputs.lua")
_TOP_LUA = _lua("top.lua")
_DROP_LUA = _lua("drop.lua")
# The scripts that check a rebuild's marker know the Redis process's run id.
_BEGIN_LUA, _PLACE_LUA, _REBUILT_LUA = (
    _lua("run_id.lua") + _lua(name) for name in ("begin.lua", "place.lua", "rebuilt.lua")
)
REBUILD_MARKER_TTL_S = 3600  # longer than any rebuild (100k goals take ~1 s)


class CacheLost(RedisError):
    """Redis lost its data while a rebuild ran: the cache stays cold, to be rebuilt."""


WRITE_CHUNK = 1_000  # snapshots per script call: ~10 ms of Redis time each
PLACE_CHUNK = 2_000  # (score, id) pairs per place.lua call: ~2 ms of Redis time each


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


def _encoded(batch: Snapshots) -> Encoded:
    """A batch as snapshot.lua reads it. Numbers travel as text, in the shortest form
    that reads back as the same float: Lua would spend more formatting them than Redis
    does storing the whole hash.

    Built column by column, numbers formatted by orjson a column at a time: a 100k-goal
    rebuild spends ~2 us a goal here, where a dict, a dumps() and four repr() per goal
    took ~8 us."""
    t, fa, sc = batch.table, batch.facts, batch.scores
    n, scored = len(batch), batch.rankable
    seq, computed_at = _stamp(batch)
    deadline = [False if d == "null" else d for d in _texts(t.deadline)]  # null: inf, none
    score = [v if ok else False for v, ok in zip(_texts(sc.score), scored, strict=True)]
    raw = [v if ok else False for v, ok in zip(_texts(sc.raw), scored, strict=True)]
    rows = list(zip(
        t.ids, repeat(seq, n), repeat(computed_at, n), batch.placement, deadline,
        fa.category, map(str, fa.version), fa.state, _texts(t.created),
        ["1" if deleted else "0" for deleted in fa.deleted], score, raw,
        strict=True,
    ))  # fmt: skip
    return Encoded(
        rows, _explanations(batch), t.ids, batch.placement, fa.category, deadline, score, raw
    )


def _stamp(batch: Snapshots) -> tuple[str, str]:
    """The batch's seq and computed_at, as its snapshots hold them."""
    return str(batch.seq), repr(batch.computed_at)


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


def _chunks(batches: Iterable[Encoded]) -> Iterator[tuple[list[Row], list[bytes]]]:
    """Encoded batches as snapshot.lua's rows and explanations, WRITE_CHUNK goals a call."""
    rows: list[Row] = []
    explained: list[bytes] = []
    for batch in batches:
        rows += batch.rows
        explained += batch.explained
        start = 0
        while len(rows) - start >= WRITE_CHUNK:
            stop = start + WRITE_CHUNK
            yield rows[start:stop], explained[start:stop]
            start = stop
        del rows[:start], explained[:start]
    if rows:
        yield rows, explained


def _placements(batch: Encoded, keys: Keys, into: dict[str, list[str | bool]]) -> None:
    """Add each goal's (score, id) pairs to the sorted sets it belongs in: the placement
    rule of snapshot.lua's place(), for a rebuild that places goals a sorted set at a time.
    A column at a time (a loop over goals cost a 100k-goal rebuild 0.16 s)."""
    ranked = [p == "ranked" for p in batch.placement]
    _add(into[keys.ranked], batch.score, batch.ids, ranked)
    for category in set(compress(batch.category, ranked)):
        in_category = [r and c == category for r, c in zip(ranked, batch.category, strict=True)]
        _add(into[keys.ranked_in(category)], batch.score, batch.ids, in_category)
    blocked = [p == "blocked" for p in batch.placement]
    _add(into[keys.blocked], batch.raw, batch.ids, blocked)
    dated = [
        d is not False and p != "none" for d, p in zip(batch.deadline, batch.placement, strict=True)
    ]
    _add(into[keys.deadlines], batch.deadline, batch.ids, dated)


def _add(
    pairs: list[str | bool], scores: Sequence[str | bool], ids: Sequence[str], mask: list[bool]
) -> None:
    """Append (score, id) of the goals `mask` selects."""
    pairs += chain.from_iterable(zip(compress(scores, mask), compress(ids, mask), strict=True))


def _pairs(
    pairs: list[str | bool], only: set[str | bool] | None, size: int
) -> Iterator[list[str | bool]]:
    """(score, id) pairs, at most `size` pairs at a time, of the ids in `only` (None: all);
    filtered a chunk at a time, while Redis places the previous one."""
    for start in range(0, len(pairs), 2 * size):
        chunk = pairs[start : start + 2 * size]
        if only is not None:
            ids = chunk[1::2]
            mask = [goal_id in only for goal_id in ids]
            chunk = list(chain.from_iterable(
                zip(compress(chunk[::2], mask), compress(ids, mask), strict=True)
            ))  # fmt: skip
        if chunk:
            yield chunk


class _InFlight:
    """Calls run on two connections of their own, at most two at a time, so Redis has
    the next one as soon as it is done with one; their results in the order sent."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(2, thread_name_prefix="goalstore-rebuild")
        self._sent: deque[Future[Any]] = deque()
        self._done: list[Any] = []

    def __enter__(self) -> _InFlight:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def send(self, fn: Callable[..., Any], *args: Any) -> None:
        if len(self._sent) == 2:
            self._done.append(self._sent.popleft().result())
        self._sent.append(self._pool.submit(fn, *args))

    def drain(self) -> list[Any]:
        """The results of every call sent since the last drain."""
        while self._sent:
            self._done.append(self._sent.popleft().result())
        done, self._done = self._done, []
        return done


class RankingCache:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self._write_script = redis.register_script(_SNAPSHOT_LUA)
        self._inputs_script = redis.register_script(_INPUTS_LUA)
        self._top_script = redis.register_script(_TOP_LUA)
        self._drop_script = redis.register_script(_DROP_LUA)
        self._place_script = redis.register_script(_PLACE_LUA)
        self._rebuilt_script = redis.register_script(_REBUILT_LUA)
        self._begin_script = redis.register_script(_BEGIN_LUA)

    def write(self, batches: Iterable[Snapshots], pipe: Pipeline | None = None) -> None:
        """Write snapshots, each unless Redis holds a newer one: on `pipe`, or one call per
        WRITE_CHUNK (a script on a pipeline of our own would cost a SCRIPT EXISTS round
        trip more)."""
        for rows, explained in _chunks(map(_encoded, batches)):
            self._write_chunk("place", rows, explained, self.redis if pipe is None else pipe)

    def _write_chunk(
        self, mode: str, rows: list[Row], explained: list[bytes], client: Redis | Pipeline
    ) -> Any:
        """snapshot.lua over these rows; its reply: the `writes` count after it, how many
        goals it left to place.lua (mode "defer": goals new to Redis), and their ids
        unless that is all of them."""
        k = self.keys
        return self._write_script(
            keys=[k.ranked, k.blocked, k.goals, k.deadlines, k.meta],
            args=[k.prefix, mode, orjson.dumps(rows), *explained], client=client,
        )  # fmt: skip

    def _place(
        self, key: str, pairs: list[str | bool], writes: int, stamp: Row, marker: str
    ) -> Any:
        """place.lua: these (score, id) pairs into `key`, unless rewritten since the rebuild
        that wrote them, at seq and computed_at `stamp`, left meta's count at `writes`;
        its reply: goals placed (-1: the rebuild's marker is gone), snapshots read."""
        k = self.keys
        return self._place_script(
            keys=[key, k.meta, marker], args=[k.prefix, writes, *stamp, *pairs]
        )  # fmt: skip

    def _drop(self, goal_ids: list[str], seq: int) -> None:
        """Drop these goals' snapshots unless written after ledger seq `seq`."""
        k = self.keys
        for start in range(0, len(goal_ids), WRITE_CHUNK):
            self._drop_script(
                keys=[k.goals, k.meta, *k.all_ranked(), k.blocked, k.deadlines],
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
        of them), place them in the sorted sets, drop goals SQLite no longer has.

        Guarded like every write, so a rebuild never undoes a newer incremental update.
        First every snapshot (snapshot.lua, mode "defer"): Redis applies one chunk while
        the next is computed, with a second chunk already sent (on a connection of its
        own), so it never waits for this process. A goal that had a snapshot is placed
        in the sorted sets with it; the goals new to Redis (all of them, into an emptied
        Redis) are placed afterwards a sorted set at a time (place.lua), unless
        rewritten meanwhile.

        Raises CacheLost if Redis lost its data meanwhile (the cache is then left cold).
        """
        marker = self.keys.rebuilding(uuid.uuid4().hex)
        self._begin_script(keys=[marker], args=[REBUILD_MARKER_TTL_S])
        try:
            return self._rebuild(marker, batches, active_beliefs, weights, seq, computed_at)
        except BaseException:
            with contextlib.suppress(RedisError):  # rebuilt.lua removes it otherwise
                self.redis.delete(marker)
            raise

    def _rebuild(
        self, marker: str, batches: Iterable[Snapshots], active_beliefs: Iterable[str],
        weights: Weights, seq: int, computed_at: float,
    ) -> int:  # fmt: skip
        known: set[str] = set()
        stamps: set[tuple[str, str]] = set()  # one per rebuild: its seq and computed_at
        placed: defaultdict[str, list[str | bool]] = defaultdict(list)

        def encoded(batch: Snapshots) -> Encoded:
            stamps.add(_stamp(batch))
            if len(stamps) > 1:
                raise ValueError(f"one rebuild's snapshots were computed at {len(stamps)} stamps")
            known.update(batch.table.ids)
            out = _encoded(batch)
            _placements(out, self.keys, placed)
            return out

        sent: list[list[str | bool]] = []  # the ids of each chunk written
        with _InFlight() as flight:
            for rows, explained in _chunks(map(encoded, batches)):
                flight.send(self._write_chunk, "defer", rows, explained, self.redis)
                sent.append([row[0] for row in rows])
            replies = flight.drain()
            # Counts that follow each other: nobody wrote between this rebuild's writes.
            writes = sorted(int(reply[0]) for reply in replies)
            expected = writes[-1] if writes and writes[-1] - writes[0] + 1 == len(writes) else -1
            deferred: set[str | bool] = set()
            for ids, reply in zip(sent, replies, strict=True):
                deferred.update(ids if int(reply[1]) == len(ids) else map(_text, reply[2:]))
            only = None if len(deferred) == len(known) else deferred  # into an empty Redis
            for stamp in stamps:  # the one (none when there are no goals)
                for key, pairs in placed.items():
                    for chunk in _pairs(pairs, only, PLACE_CHUNK):
                        flight.send(self._place, key, chunk, expected, stamp, marker)
            if any(int(reply[0]) < 0 for reply in flight.drain()):
                raise CacheLost("Redis lost its data while the cache was rebuilt; rebuild again")
        written = len(known)
        # The goals set holds every goal written above. When nobody else wrote since and
        # it holds no more, none is stale; otherwise compare them all. (Should Redis have
        # restarted meanwhile, rebuilt.lua below refuses to mark the cache rebuilt.)
        if not (
            expected >= 0
            and _text(self.redis.hget(self.keys.meta, "writes") or "") == str(expected)
            and self.redis.scard(self.keys.goals) == written
        ):
            held: set[Any] = self.redis.smembers(self.keys.goals)
            self._drop([goal_id for goal_id in map(_text, held) if goal_id not in known], seq)
        pipe = self.redis.pipeline(transaction=False)
        self.set_inputs(active_beliefs, weights, seq, pipe)
        rebuilt = {"rebuilt_seq": seq, "rebuilt_at": computed_at,
                   "urgency_refreshed_at": computed_at, "goals": written}  # fmt: skip
        self._rebuilt_script(
            keys=[marker, self.keys.meta], args=[v for kv in rebuilt.items() for v in kv],
            client=pipe,
        )  # fmt: skip
        if not pipe.execute()[-1]:
            raise CacheLost("Redis lost its data while the cache was rebuilt; rebuild again")
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
