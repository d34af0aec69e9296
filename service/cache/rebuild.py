"""The cache rebuilt from SQLite: every snapshot written, every goal placed, the stale
ones dropped, guarded so that a rebuild never undoes a newer incremental update.

First every snapshot (snapshot.lua, mode "defer"): Redis applies one chunk while the
next is computed, with a second chunk already sent (on a connection of its own), so it
never waits for this process. A goal that had a snapshot is placed in the sorted sets
with it; the goals new to Redis (all of them, into an emptied Redis) are placed
afterwards a sorted set at a time (place.lua), unless rewritten meanwhile. A marker
(begin.lua) tells whether Redis restarted meanwhile: the cache is then left cold.

The rebuild goes through the cache's own script calls (RankingCache._write_chunk,
_place, _drop, set_inputs), the ones every other write uses.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import compress
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from service.cache.encoding import Encoded, chunks, encoded, stamp
from service.cache.keys import Keys
from service.cache.reads import text
from service.domain.ranking import Snapshots, Weights

if TYPE_CHECKING:
    from service.cache.ranking import RankingCache

REBUILD_MARKER_TTL_S = 3600  # longer than any rebuild


class CacheLost(RedisError):
    """Redis lost its data while a rebuild ran: the cache stays cold, to be rebuilt."""


# Each sorted set's goals to place: their scores (as text) and their ids.
Placed = tuple[list[str | bool], list[str]]


def run(
    cache: RankingCache, marker: str, batches: Iterable[Snapshots],
    active_beliefs: Iterable[str], weights: Weights, seq: int, computed_at: float,
    write_chunk: int, place_chunk: int,
) -> int:  # fmt: skip
    """Rebuild, `write_chunk` snapshots a snapshot.lua call and `place_chunk` goals a
    place.lua call, under the marker begin.lua set; the number of goals written."""
    known: set[str] = set()
    stamps: set[tuple[str, str]] = set()  # one per rebuild: its seq and computed_at
    placed: defaultdict[str, Placed] = defaultdict(lambda: ([], []))

    def encode(batch: Snapshots) -> Encoded:
        stamps.add(stamp(batch))
        if len(stamps) > 1:
            raise ValueError(f"one rebuild's snapshots were computed at {len(stamps)} stamps")
        known.update(batch.table.ids)
        out = encoded(batch)
        placements(out, cache.keys, placed)
        return out

    sent: list[Sequence[str]] = []  # the ids of each chunk written
    with _InFlight() as flight:
        for ids, rows in chunks(map(encode, batches), write_chunk):
            flight.send(cache._write_chunk, "defer", ids, rows, cache.redis)
            sent.append(ids)
        replies = flight.drain()
        # Counts that follow each other: nobody wrote between this rebuild's writes.
        writes = sorted(int(reply[0]) for reply in replies)
        expected = writes[-1] if writes and writes[-1] - writes[0] + 1 == len(writes) else -1
        deferred: set[str] = set()
        for chunk_ids, reply in zip(sent, replies, strict=True):
            named = chunk_ids if int(reply[1]) == len(chunk_ids) else map(text, reply[2:])
            deferred.update(named)
        only = None if len(deferred) == len(known) else deferred  # into an empty Redis
        for held in stamps:  # the one (none when there are no goals)
            for key, (scores, goal_ids) in placed.items():
                for chunk in _pairs(scores, goal_ids, only, place_chunk):
                    flight.send(cache._place, key, *chunk, expected, held, marker)
        if any(int(reply[0]) < 0 for reply in flight.drain()):
            raise CacheLost("Redis lost its data while the cache was rebuilt; rebuild again")
    written = len(known)
    keys, redis = cache.keys, cache.redis
    # The goals set holds every goal written above. When nobody else wrote since and
    # it holds no more, none is stale; otherwise compare them all. (Should Redis have
    # restarted meanwhile, rebuilt.lua below refuses to mark the cache rebuilt.)
    if not (
        expected >= 0
        and text(redis.hget(keys.meta, "writes") or "") == str(expected)
        and redis.scard(keys.goals) == written
    ):
        members: set[Any] = redis.smembers(keys.goals)
        cache._drop([goal_id for goal_id in map(text, members) if goal_id not in known], seq)
    pipe = redis.pipeline(transaction=False)
    cache.set_inputs(active_beliefs, weights, seq, pipe)
    rebuilt = {"rebuilt_seq": seq, "rebuilt_at": computed_at,
               "urgency_refreshed_at": computed_at, "goals": written}  # fmt: skip
    cache.scripts.rebuilt(marker, rebuilt, pipe)
    if not pipe.execute()[-1]:
        raise CacheLost("Redis lost its data while the cache was rebuilt; rebuild again")
    return written


def placements(batch: Encoded, keys: Keys, into: dict[str, Placed]) -> None:
    """Add each goal to the sorted sets it belongs in, with its score there: the placement
    rule of snapshot.lua's place(), for a rebuild that places goals a sorted set at a
    time. A column at a time, not goal by goal."""
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
    placed: Placed, scores: Sequence[str | bool], ids: Sequence[str], mask: list[bool]
) -> None:
    """Append the score and id of the goals `mask` selects."""
    placed[0].extend(compress(scores, mask))
    placed[1].extend(compress(ids, mask))


def _pairs(
    scores: list[str | bool], ids: list[str], only: set[str] | None, size: int
) -> Iterator[tuple[list[str | bool], list[str]]]:
    """Scores and ids, at most `size` goals at a time, of the ids in `only` (None: all);
    filtered a chunk at a time, while Redis places the previous one."""
    for start in range(0, len(ids), size):
        chunk_scores, chunk_ids = scores[start : start + size], ids[start : start + size]
        if only is not None:
            mask = [goal_id in only for goal_id in chunk_ids]
            chunk_scores = list(compress(chunk_scores, mask))
            chunk_ids = list(compress(chunk_ids, mask))
        if chunk_ids:
            yield chunk_scores, chunk_ids


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
