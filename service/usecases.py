"""The service as every entry point calls it: each use case bound to its collaborators.

`GoalStore` is built once by the composition root (service/runtime.py) from
Settings. REST, the CLI, scenarios and the workers call these methods rather than
the command functions, so the collaborators a rule depends on (the checker and
threshold of adoption, the attempt limit, the cache's lag limit, the flags) are
chosen in one place and cannot differ by entry point. The command functions take
every collaborator explicitly and default none of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from redis import Redis

from service import commands as c
from service.cache.ranking import RankingCache
from service.commands import Context
from service.commands.board import Board, ranking_board
from service.commands.health import healthcheck
from service.commands.ledger import checked_history, timeline
from service.commands.observe import (
    RedisFigures,
    WorkerSeen,
    readiness,
    redis_figures,
    workers_seen,
)
from service.commands.tasks import JobProbe
from service.commands.tree_view import GoalTree, goal_tree
from service.domain.annotations import Note
from service.domain.beliefs import Belief, BeliefPut
from service.domain.decisions import Decision, DecisionChange, OutcomeCreate
from service.domain.errors import RedisRequired
from service.domain.events import EventRef
from service.domain.goal import Goal
from service.domain.inputs import GoalCreate, GoalUpdate, Subgoals
from service.domain.ledger import ChainReport, Checkpoint, LedgerRow
from service.domain.ranking import Score
from service.domain.tasks import Task, TaskState
from service.domain.trees import MAX_TREE_DEPTH
from service.store.db import Database
from service.store.migrate import ensure_schema, migrate


@dataclass(frozen=True)
class Policy:
    """The limits the rules read, from Settings (see service/config.py)."""

    max_attempts: int  # failed attempts before a goal is abandoned
    max_lag: timedelta  # rank from the store while the cache is further behind
    task_stale_after: timedelta  # an open task untouched this long is checked
    redeliver_after: timedelta  # a relayed event not applied by then is sent again
    outbox_retention: timedelta  # applied outbox rows are kept this long
    events_batch: int  # most events in one RQ job

    @property
    def relay_limit(self) -> int:
        """Most events one pass of the relay takes from the outbox."""
        return self.events_batch * 4


@dataclass(frozen=True)
class Observed:
    """What health and metrics read besides the store: Redis, its counts, the queues."""

    redis: Redis | None
    metrics_key: str
    queues: tuple[str, ...]


@dataclass(frozen=True)
class GoalStore:
    db: Database
    cache: RankingCache | None
    vetting: c.Vetting
    selector: c.Selector
    policy: Policy
    observed: Observed

    def require_cache(self, what: str) -> RankingCache:
        """The Redis ranking cache, or RedisRequired naming what needed it."""
        if self.cache is None:
            raise RedisRequired(what)
        return self.cache

    def migrate(self) -> list[str]:
        """Apply pending migrations; the names applied."""
        return migrate(self.db)

    def ensure_schema(self) -> None:
        """MigrationError unless every migration is applied (commands other than
        migrate refuse to run on an old schema)."""
        ensure_schema(self.db)

    # --- goals ---------------------------------------------------------------------

    def create_goal(self, ctx: Context, spec: GoalCreate) -> Goal:
        return c.create_goal(self.db, ctx, spec)

    def get_goal(self, goal_id: str, *, include_deleted: bool = False) -> Goal:
        return c.get_goal(self.db, goal_id, include_deleted=include_deleted)

    def list_goals(
        self, *, state: str | None = None, category: str | None = None,
        include_deleted: bool = False, cursor: int = 0, limit: int = 50,
        assigned_to: str | None = None, parent_id: str | None = None,
    ) -> c.GoalPage:  # fmt: skip
        return c.list_goals(
            self.db, state=state, category=category, include_deleted=include_deleted,
            cursor=cursor, limit=limit, assigned_to=assigned_to, parent_id=parent_id,
        )  # fmt: skip

    def update_goal(
        self, ctx: Context, goal_id: str, patch: GoalUpdate, expected_version: int | None,
        *, any_version: bool = False,
    ) -> c.Change:  # fmt: skip
        return c.update_goal(self.db, ctx, goal_id, patch, expected_version,
                             any_version=any_version)  # fmt: skip

    def adopt_goal(
        self, ctx: Context, goal_id: str, expected_version: int | None = None
    ) -> c.Change:
        return c.adopt_goal(self.db, ctx, goal_id, expected_version, vetting=self.vetting)

    def abandon_goal(
        self, ctx: Context, goal_id: str, expected_version: int | None = None,
        *, cascade: bool = True,
    ) -> c.Change:  # fmt: skip
        return c.abandon_goal(self.db, ctx, goal_id, expected_version, cascade=cascade)

    def delete_goal(
        self, ctx: Context, goal_id: str, expected_version: int | None = None,
        *, cascade: bool = True,
    ) -> c.Change:  # fmt: skip
        return c.delete_goal(self.db, ctx, goal_id, expected_version, cascade=cascade)

    def decompose_goal(
        self, ctx: Context, goal_id: str, spec: Subgoals, expected_version: int | None = None
    ) -> c.Decomposition:
        return c.decompose_goal(self.db, ctx, goal_id, spec, expected_version)

    # --- notes, links, blocks, criteria ---------------------------------------------

    def block_goal(
        self, ctx: Context, goal_id: str, reason: str, expected_version: int | None = None
    ) -> c.Change:
        return c.block_goal(self.db, ctx, goal_id, reason, expected_version)

    def unblock_goal(
        self, ctx: Context, goal_id: str, expected_version: int | None = None
    ) -> c.Change:
        return c.unblock_goal(self.db, ctx, goal_id, expected_version)

    def add_note(self, ctx: Context, goal_id: str, kind: str, text: str) -> Note:
        return c.add_note(self.db, ctx, goal_id, kind, text)

    def list_notes(self, goal_id: str, *, cursor: int | None = None, limit: int = 50) -> c.NotePage:
        return c.list_notes(self.db, goal_id, cursor=cursor, limit=limit)

    def link_work(
        self, ctx: Context, goal_id: str, kind: str, ref: str, url: str | None = None,
        expected_version: int | None = None,
    ) -> c.Change:  # fmt: skip
        return c.link_work(self.db, ctx, goal_id, kind, ref, url, expected_version)

    def review_criterion(
        self, ctx: Context, goal_id: str, criterion_id: str, met: bool, evidence: Any = None,
        expected_version: int | None = None,
    ) -> c.Change:  # fmt: skip
        return c.review_criterion(self.db, ctx, goal_id, criterion_id, met, evidence,
                                  expected_version)  # fmt: skip

    def goal_history(self, goal_id: str, *, after: int = 0, limit: int = 1_000) -> list[LedgerRow]:
        return c.goal_history(self.db, goal_id, after=after, limit=limit)

    def checked_history(self, goal_id: str, *, newest: int = 200) -> c.CheckedHistory:
        """The goal's newest events, each with whether it holds in the hash chain."""
        return checked_history(self.db, goal_id, newest=newest)

    # --- ranking and selection -----------------------------------------------------

    def goal_score(self, goal_id: str) -> tuple[Goal, Score]:
        return c.goal_score(self.db, goal_id)

    def ranked_view(
        self, *, limit: int = 20, category: str | None = None, include_blocked: bool = False
    ) -> c.RankedView:
        return c.ranked_view(self.db, self.cache, max_lag=self.policy.max_lag, limit=limit,
                             category=category, include_blocked=include_blocked)  # fmt: skip

    def ranking_board(
        self, *, limit: int = 25, blocked_limit: int = 25, category: str | None = None
    ) -> Board:
        """The ranked read's best goals and the blocked ones apart, each explained now."""
        return ranking_board(self.db, self.cache, max_lag=self.policy.max_lag, limit=limit,
                             blocked_limit=blocked_limit, category=category)  # fmt: skip

    def select(self, ctx: Context) -> c.Selection:
        return self.selector.select(ctx)

    def select_many(self, ctx: Context, want: int) -> list[c.Selection]:
        return self.selector.select_many(ctx, want)

    def rebuild_cache(self) -> dict[str, int]:
        return c.rebuild_cache(self.db, self.require_cache("the cache rebuild"))

    def refresh_cache(self) -> dict[str, Any]:
        return c.refresh_cache(self.db, self.require_cache("the cache refresh"))

    def apply_events(self, events: list[EventRef]) -> dict[str, Any]:
        return c.apply_events(self.db, self.require_cache("the events worker"), events)

    # --- the outbox ----------------------------------------------------------------

    def relay_outbox(self, send: Callable[[list[EventRef]], None]) -> int:
        """Send up to `policy.relay_limit` pending events, `events_batch` a job."""
        p = self.policy
        return c.relay_outbox(self.db, send, limit=p.relay_limit, batch=p.events_batch)

    def redeliver_stale(self) -> dict[str, int]:
        p = self.policy
        return c.redeliver_stale(self.db, after=p.redeliver_after, retention=p.outbox_retention)

    def cache_backlog(self) -> dict[str, Any]:
        return c.cache_backlog(self.db)

    # --- tasks and the gate --------------------------------------------------------

    def list_tasks(self, goal_id: str, *, include_deleted: bool = False) -> list[Task]:
        return c.list_tasks(self.db, goal_id, include_deleted=include_deleted)

    def report_task(
        self, ctx: Context, task_id: str, state: TaskState, *, evidence: Any = None,
        reason: str | None = None, goal_id: str | None = None,
    ) -> Task:  # fmt: skip
        return c.report_task(self.db, ctx, task_id, state, evidence=evidence, reason=reason,
                             goal_id=goal_id, max_attempts=self.policy.max_attempts)  # fmt: skip

    def report_progress(
        self, ctx: Context, task_id: str, note: str, fraction: float | None = None
    ) -> Task:
        return c.report_progress(self.db, ctx, task_id, note, fraction)

    def review_task(
        self, ctx: Context, goal_id: str, task_id: str, action: str, *,
        reason: str | None = None, expected_version: int | None = None,
    ) -> Task:  # fmt: skip
        """`expected_version`: the TASK's version the review is based on."""
        return c.review_task(self.db, ctx, goal_id, task_id, action, reason=reason,
                             expected_version=expected_version,
                             max_attempts=self.policy.max_attempts)  # fmt: skip

    def create_task(
        self, ctx: Context, goal_id: str, *, evidence: Any = None, note: str | None = None,
        expected_version: int | None = None,
    ) -> Task:  # fmt: skip
        """Work done outside selection: a `manual` task, `running`."""
        return c.create_task(self.db, ctx, goal_id, evidence=evidence, note=note,
                             expected_version=expected_version)  # fmt: skip

    def satisfy_goal(
        self, ctx: Context, goal_id: str, result: Any, expected_version: int | None = None
    ) -> Goal:
        return c.satisfy_goal(self.db, ctx, goal_id, result, expected_version)

    def sweep_tasks(self, ctx: Context, probe: JobProbe) -> list[Task]:
        return c.sweep_tasks(self.db, ctx, probe, stale_after=self.policy.task_stale_after,
                             max_attempts=self.policy.max_attempts)  # fmt: skip

    # --- beliefs and decisions -----------------------------------------------------

    def put_belief(self, ctx: Context, belief_id: str, spec: BeliefPut) -> tuple[Belief, bool]:
        return c.put_belief(self.db, ctx, belief_id, spec)

    def get_belief(self, belief_id: str) -> Belief:
        return c.get_belief(self.db, belief_id)

    def list_beliefs(self, active: bool | None = None) -> list[Belief]:
        return c.list_beliefs(self.db, active)

    def get_decision(self, decision_id: str) -> Decision:
        return c.get_decision(self.db, decision_id)

    def change_decision(
        self, ctx: Context, decision_id: str, change: DecisionChange
    ) -> tuple[Decision, bool]:
        return c.change_decision(self.db, ctx, decision_id, change)

    def record_outcome(
        self, ctx: Context, decision_id: str, outcome: OutcomeCreate
    ) -> dict[str, Any]:
        return c.record_outcome(self.db, ctx, decision_id, outcome)

    def list_outcomes(
        self, decision_id: str, *, after: int = 0, limit: int = 100
    ) -> list[dict[str, Any]]:
        return c.list_outcomes(self.db, decision_id, after=after, limit=limit)

    # --- the ledger and health -----------------------------------------------------

    def verify_ledger(self, checkpoint: Checkpoint | None = None) -> ChainReport:
        return c.verify_ledger(self.db, checkpoint)

    def ledger_checkpoint(self) -> Checkpoint:
        return c.ledger_checkpoint(self.db)

    def replay_check(self) -> c.ReplayReport:
        return c.replay_check(self.db)

    def store_figures(self, now: datetime) -> c.StoreFigures:
        return c.store_figures(self.db, now)

    def redis_figures(self) -> RedisFigures | None:
        o = self.observed
        return redis_figures(o.redis, o.metrics_key, o.queues, self.cache)

    def workers_seen(self) -> list[WorkerSeen] | None:
        return workers_seen(self.observed.redis)

    def readiness(self) -> dict[str, str]:
        return readiness(self.db, self.observed.redis)

    def timeline(
        self, *, goal_id: str | None = None, trace_id: str | None = None,
        task_id: str | None = None, after: int = 0, limit: int = 1_000,
    ) -> list[LedgerRow]:  # fmt: skip
        """The events of a goal, a trace or a task (each filter given must match)."""
        return timeline(self.db, goal_id=goal_id, trace_id=trace_id, task_id=task_id,
                        after=after, limit=limit)  # fmt: skip

    def healthcheck(self, *, extended: bool = False) -> dict[str, Any]:
        """Every part checked (service/commands/health.py): `ok` unless one failed."""
        return healthcheck(self.db, self.observed.redis, self.redis_figures, now=c.utcnow(),
                           max_lag=self.policy.max_lag, extended=extended)  # fmt: skip

    def goal_tree(self, goal_id: str, *, depth: int = MAX_TREE_DEPTH) -> GoalTree:
        """The goal and its descendants, `depth` levels, each with its score now."""
        return goal_tree(self.db, goal_id, depth)


# The lifecycle commands an entry point may name (scenario steps, CLI subcommands),
# each a GoalStore method taking (ctx, goal_id, expected_version).
StateCommand = Callable[[GoalStore, Context, str, int | None], c.Change]
STATE_COMMANDS: dict[str, StateCommand] = {
    "adopt": GoalStore.adopt_goal,
    "abandon": GoalStore.abandon_goal,
    "delete": GoalStore.delete_goal,
}
