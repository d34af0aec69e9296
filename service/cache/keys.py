"""Every Redis key GoalStore writes, under one configurable prefix (docs/ranking.md: keys)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from service.domain.goal import GoalCategory


@dataclass(frozen=True)
class Keys:
    prefix: str = "goalstore:"

    @property
    def ranked(self) -> str:
        """ZSET of selectable goals (adopted, not blocked, not deleted); score = final score."""
        return f"{self.prefix}ranked"

    def ranked_in(self, category: str) -> str:
        """The same ranking, one ZSET per category (so filtered reads stay O(log n))."""
        return f"{self.prefix}ranked:{category}"

    @property
    def blocked(self) -> str:
        """ZSET of adopted goals that are blocked; score = the unclamped sum."""
        return f"{self.prefix}blocked"

    def goal(self, goal_id: str) -> str:
        """HASH snapshot of one goal: placement, score, category, version, instants, why it
        is blocked; only the fields that say something, so Redis keeps it a listpack
        (encoding.py; docs/ranking.md, "A goal's hash")."""
        return self.goal_prefix + goal_id

    @property
    def goal_prefix(self) -> str:
        """What goal() puts before a goal id: for top.lua, which finds the ids itself."""
        return f"{self.prefix}goal:"

    def goal_keys(self, goal_ids: Iterable[str]) -> list[str]:
        """goal() of each id: the KEYS of a script over many goals."""
        prefix = self.goal_prefix
        return [prefix + goal_id for goal_id in goal_ids]

    @property
    def goals(self) -> str:
        """SET of every goal id that has a snapshot (so a rebuild can drop stale ones)."""
        return f"{self.prefix}goals"

    def rate(self, actor: str) -> str:
        """HASH: one actor's write-limit token bucket (tokens, at_ms); expires when full."""
        return f"{self.prefix}rate:{actor}"

    @property
    def beliefs_active(self) -> str:
        return f"{self.prefix}beliefs:active"

    @property
    def weights(self) -> str:
        return f"{self.prefix}weights"

    @property
    def deadlines(self) -> str:
        """ZSET goal id -> deadline (epoch s): which goals time re-scores."""
        return f"{self.prefix}deadlines"

    @property
    def meta(self) -> str:
        """HASH: the ledger seq and time of the last full rebuild. Gone = Redis lost its data."""
        return f"{self.prefix}meta"

    def rebuilding(self, token: str) -> str:
        """STRING (with TTL): a rebuild in progress; gone before it ends = Redis lost its data
        meanwhile (the rebuild then leaves the cache cold)."""
        return f"{self.prefix}rebuilding:{token}"

    @property
    def metrics(self) -> str:
        """HASH of every process's counts and latency histograms, by Prometheus sample
        (`goals_adopted_total`, `goal_select_latency_seconds_bucket{le="0.005"}`...)."""
        return f"{self.prefix}metrics"

    def claim(self, goal_id: str, version: int) -> str:
        """STRING (with TTL): the selector trying to start this goal version."""
        return f"{self.prefix}claim:{goal_id}:{version}"

    def idempotency(self, actor: str, key: str) -> str:
        """STRING (24 h TTL): the first response to a POST with this Idempotency-Key."""
        return f"{self.prefix}idem:{actor}:{key}"

    def all_ranked(self) -> list[str]:
        return [self.ranked, *self.ranked_by_category().values()]

    def ranked_by_category(self) -> dict[str, str]:
        """Each category's ranking (ranked_in()), by category."""
        return {c.value: self.ranked_in(c.value) for c in GoalCategory}
