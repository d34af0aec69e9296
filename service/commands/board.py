"""The ranking at a glance (the console's board): the best goals, the blocked ones apart,
each explained term by term as GET /v1/goals/{id}/score explains it.

The order and the source are the ranked read's (commands/ranking.py ranked_view()): Redis
while it is current, the store otherwise. The explanations are computed now, in one read
of the store for the whole page.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from redis.exceptions import RedisError

from service.cache.ranking import RankingCache
from service.commands.base import utcnow
from service.commands.kinds import FallbackReason, RankingSource
from service.commands.ranking import (
    RankedGoal,
    prioritized,
    ranked_view,
    scores_in,
    still_adopted,
)
from service.domain.goal import Goal
from service.domain.ranking import Score
from service.store.db import Database

log = logging.getLogger("goalstore.ranking")


@dataclass(frozen=True)
class BoardGoal:
    goal: Goal
    score: Score  # now, term by term; its blocks when blocked


@dataclass(frozen=True)
class Board:
    ranked: list[BoardGoal]  # best first
    blocked: list[BoardGoal]  # best first, after every ranked goal
    source: RankingSource
    reason: FallbackReason | None  # why the store was read instead of Redis


def ranking_board(
    db: Database,
    cache: RankingCache | None,
    *,
    max_lag: timedelta,
    limit: int,
    blocked_limit: int,
    category: str | None = None,
    now: datetime | None = None,
) -> Board:
    """The best `limit` goals and the best `blocked_limit` blocked ones, explained."""
    view = ranked_view(db, cache, max_lag=max_lag, limit=limit, category=category)
    source, reason = view.source, view.reason
    blocked: list[RankedGoal] | None = None
    if source is RankingSource.REDIS and cache is not None:
        try:
            blocked = still_adopted(db, cache.blocked(blocked_limit, category))
        except RedisError as exc:  # gone between the two reads: both from the store
            log.warning("ranking board from the store: Redis does not answer (%s)", exc)
            view = ranked_view(db, None, max_lag=max_lag, limit=limit, category=category)
            source, reason = RankingSource(db.dialect.name), FallbackReason.REDIS_UNAVAILABLE
    if blocked is None:
        blocked = prioritized(db, limit=blocked_limit, category=category, blocked_only=True)
    goals = [r.goal for r in (*view.items, *blocked)]
    with db.read() as conn:
        scores = scores_in(conn, goals, now or utcnow())
    return Board(
        ranked=[BoardGoal(r.goal, scores[r.goal.id]) for r in view.items],
        blocked=[BoardGoal(r.goal, scores[r.goal.id]) for r in blocked],
        source=source,
        reason=reason,
    )
