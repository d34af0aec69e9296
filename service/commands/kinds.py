"""The closed sets of words the use cases answer with, shared by the code and the schemas.

StrEnums, so a value compares and serializes as its string, and the API's schemas
list exactly the values the code can produce.
"""

from __future__ import annotations

from enum import StrEnum


class SelectionMode(StrEnum):
    """What a select did (DESIGN §9)."""

    EMITTED = "emitted"  # a task is on the scheduler queue
    SHADOW = "shadow"  # GOAL_SHADOW: the goal that would have been selected, nothing emitted
    OFF = "off"  # GOAL_SYSTEM and GOAL_SHADOW off: nothing selected
    NOT_IN_CANARY = "not_in_canary"  # this trace is outside the canary percentage
    EMPTY = "empty"  # nothing selectable


class SkipReason(StrEnum):
    """Why a selection passed over a goal on its way down the ranking."""

    CLAIMED = "claimed"  # another selector holds it
    BLOCKED = "blocked"  # re-vetting refused it
    CHANGED = "changed"  # it moved on since the ranking was read


class RankingSource(StrEnum):
    """Where a ranking was read: the Redis cache, or the durable store (named by engine)."""

    REDIS = "redis"
    SQLITE = "sqlite"
    POSTGRESQL = "postgresql"


class FallbackReason(StrEnum):
    """Why the ranking was read from the store instead of Redis."""

    NO_REDIS = "no_redis"
    REDIS_UNAVAILABLE = "redis_unavailable"
    CACHE_COLD = "cache_cold"
    CACHE_BEHIND = "cache_behind"
