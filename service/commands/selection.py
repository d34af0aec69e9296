"""Selection (DESIGN §7, §9): the best goal, claimed, re-vetted, started, handed over.

One path for every way in (POST /v1/goals/select, the TaskScheduler adapter, the
selector that tops the scheduler queue up):

1. read the ranking (Redis while current, else SQLite) and walk it from the top;
2. claim the goal version in Redis (other selectors skip it);
3. in one SQLite transaction: re-vet it (beliefs, checker, deadline, dependencies),
   move it adopted -> executing at that version, write its task, the ledger event
   and the outbox row;
4. emit one RQ job on the scheduler queue (job id = task id).

Any step failing releases the claim and leaves nothing half-done: a goal that fails
vetting is skipped (and the block recorded); if the emit fails, the start is undone
in a second transaction (goal back to adopted, the task marked not emitted).
"""

from __future__ import annotations

import logging
import time
import zlib
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, Protocol

from redis.exceptions import RedisError

from service.cache.claims import Claims
from service.cache.ranking import RankingCache
from service.commands.base import Context, utcnow
from service.commands.goals import record_block
from service.commands.kinds import SelectionMode, SkipReason
from service.commands.ranking import ranked_candidates
from service.commands.starting import Started, start_goals, start_verdict, task_payload, undo_start
from service.commands.vetting import Vetting
from service.domain.errors import ErrorKind, GoalStoreError
from service.domain.goal import Goal, GoalState, from_record
from service.domain.ranking import RankingInputs, snapshot
from service.domain.tasks import NOT_EMITTED, Task
from service.domain.vetting import GoalBlocked
from service.metrics import GOAL_SELECTED, GOAL_SELECTED_SHADOW, RECORDER, SELECT_LATENCY
from service.store import beliefs as belief_table
from service.store import goals as goal_table
from service.store.db import Database

log = logging.getLogger("goalstore.selection")
SELECT_BATCH = 32  # most goals one pass of `goalstore selector` selects


class Emitter(Protocol):
    def emit(self, jobs: list[tuple[Task, dict[str, Any]]]) -> None:
        """One scheduler job per (task, payload), all or none."""


@dataclass(frozen=True)
class Flags:
    """DESIGN §9. Shadow (the default): ranked, logged, counted, not emitted. Live:
    GOAL_SYSTEM on and GOAL_SHADOW off. Off: both off, nothing is selected."""

    system: bool = False
    shadow: bool = True
    canary_percent: int = 100

    def in_canary(self, trace_id: str) -> bool:
        """Whether this selection (by its trace id, so retries agree) is in the canary."""
        return zlib.crc32(trace_id.encode()) % 100 < self.canary_percent


@dataclass(frozen=True)
class Selection:
    """What a select did: `emitted` (goal + task), `shadow` (goal only), `off` (flag),
    `not_in_canary`, or `empty` (nothing selectable)."""

    mode: SelectionMode
    goal: Goal | None = None
    task: Task | None = None
    skipped: tuple[tuple[str, SkipReason], ...] = ()


@dataclass
class SchedulerUnavailable(GoalStoreError):
    kind = ErrorKind.UNAVAILABLE
    code = "scheduler-unavailable"
    title = "Scheduler queue unavailable"

    detail: str

    def __str__(self) -> str:
        return f"the task could not be handed to the scheduler queue: {self.detail}"


@dataclass(frozen=True)
class Selector:
    """Everything a selection needs besides the caller's context."""

    db: Database
    cache: RankingCache | None
    claims: Claims | None
    emitter: Emitter | None
    vetting: Vetting
    flags: Flags
    max_lag: timedelta
    candidates: int = 16

    def select(self, ctx: Context) -> Selection:
        return select_goal(self, ctx)

    def select_many(self, ctx: Context, want: int) -> list[Selection]:
        return select_goals(self, ctx, want)


def select_goal(sel: Selector, ctx: Context) -> Selection:
    """Shadow (GOAL_SHADOW on, whatever GOAL_SYSTEM says: the out-of-the-box state)
    picks and counts without emitting; off (both flags off) does nothing; live
    (GOAL_SYSTEM on, GOAL_SHADOW off) emits, for the canary's share of traces."""
    return select_goals(sel, ctx, 1)[0]


def select_goals(sel: Selector, ctx: Context, want: int) -> list[Selection]:
    """Up to `want` goals, best first, selected as select_goal() selects one: claimed
    together in one round trip, started in one SQLite transaction (a savepoint each,
    so one goal that fails vetting or moved on leaves the others started), emitted in
    one MULTI. What a selector topping the scheduler queue up uses.

    Returns the selections made (what was skipped on the way rides on the first), or
    one Selection saying why there are none: off, not_in_canary or empty."""
    started = time.perf_counter()
    if not sel.flags.shadow:
        if not sel.flags.system:
            return [Selection(SelectionMode.OFF)]
        if not sel.flags.in_canary(ctx.trace.trace_id):
            return [Selection(SelectionMode.NOT_IN_CANARY)]
    skipped: list[tuple[str, SkipReason]] = []
    tried: set[tuple[str, int]] = set()
    picked: list[Selection] = []
    limit = max(sel.candidates, 2 * want)
    while True:
        candidates, more = ranked_candidates(sel.db, sel.cache, max_lag=sel.max_lag, limit=limit)
        fresh = [candidate for candidate in candidates if candidate not in tried]
        tried.update(fresh)
        while fresh and len(picked) < want:
            attempt, fresh = _claim(sel, fresh, want - len(picked), skipped)
            picked += _try(sel, ctx, attempt, skipped)
        if len(picked) >= want or not more or limit >= 1024:
            break
        limit *= 4  # everything seen was claimed, blocked or moved on: look further down
    if not picked:
        return [Selection(SelectionMode.EMPTY, skipped=tuple(skipped))]
    if picked[0].mode == SelectionMode.EMITTED:
        elapsed = time.perf_counter() - started
        RECORDER.inc_and_observe(GOAL_SELECTED, SELECT_LATENCY, elapsed, times=len(picked))
    picked[0] = replace(picked[0], skipped=tuple(skipped))
    return picked


def _claim(
    sel: Selector,
    candidates: list[tuple[str, int]],
    want: int,
    skipped: list[tuple[str, SkipReason]],
) -> tuple[list[tuple[str, int, str]], list[tuple[str, int]]]:
    """The first `want` candidates no other selector holds, claimed in one round trip
    (with the claim token), and the candidates after the last one claimed. Shadow
    claims nothing: it starts nothing."""
    if sel.flags.shadow or sel.claims is None:
        return [(g, v, "-") for g, v in candidates[:want]], candidates[want:]
    token, indices = sel.claims.claim_first(candidates, want)
    held = set(indices)
    last = indices[-1] if len(indices) == want else len(candidates) - 1
    skipped.extend((g, SkipReason.CLAIMED) for i, (g, _) in enumerate(candidates[: last + 1])
                   if i not in held)  # fmt: skip
    return [(*candidates[i], token) for i in indices], candidates[last + 1 :]


def _try(
    sel: Selector, ctx: Context, claimed: list[tuple[str, int, str]],
    skipped: list[tuple[str, SkipReason]],
) -> list[Selection]:  # fmt: skip
    """Start and emit the claimed goal versions (or, in shadow, vet them): the
    selections made; the rest are released and noted in `skipped`."""
    if not claimed:
        return []
    if sel.flags.shadow:
        shadows = (_shadow(sel, goal_id, version, skipped) for goal_id, version, _ in claimed)
        return [s for s in shadows if s is not None]
    claims = sel.claims

    def release(goal_id: str, version: int, token: str) -> None:
        if claims is not None:
            claims.release(goal_id, version, token)

    try:
        outcomes = start_goals(sel.db, ctx, [(g, v) for g, v, _ in claimed], sel.vetting)
    except BaseException:
        for claim in claimed:
            release(*claim)
        raise
    started: list[tuple[Started, tuple[str, int, str]]] = []
    for claim, outcome in zip(claimed, outcomes, strict=True):
        if isinstance(outcome, Started):
            started.append((outcome, claim))
            continue
        release(*claim)
        if isinstance(outcome, GoalBlocked):
            record_block(sel.db, ctx, outcome, "select")
            skipped.append((claim[0], SkipReason.BLOCKED))
        else:  # deleted, or moved on since the ranking was read
            skipped.append((claim[0], SkipReason.CHANGED))
    if not started:
        return []
    try:
        if sel.emitter is None:
            raise SchedulerUnavailable("no Redis is configured for the scheduler queue")
        sel.emitter.emit([(s.task, task_payload(s.goal, s.task)) for s, _ in started])
    except BaseException as exc:
        for s, claim in started:
            undo_start(sel.db, ctx, s.task, f"{NOT_EMITTED}: {exc}")
            release(*claim)
        if isinstance(exc, SchedulerUnavailable):
            raise
        raise SchedulerUnavailable(str(exc)) from exc
    _leave_ranking(sel.cache, [outcome for outcome, _ in started])
    return [Selection(SelectionMode.EMITTED, s.goal, s.task) for s, _ in started]


def _leave_ranking(cache: RankingCache | None, started: list[Started]) -> None:
    """Write the started goals' snapshots (executing: out of the ranking) now rather than
    when the events worker applies the starts, so other selectors do not walk past them
    meanwhile. The same guarded write as the worker's, at the seq of each start's ledger
    event: a rebuild from an older read cannot put them back. A failure only means the
    worker does it a few milliseconds later (the starts are committed)."""
    if cache is None:
        return
    try:
        cache.write(snapshot(s.goal, RankingInputs(now=s.goal.updated_at), s.seq) for s in started)
    except RedisError as exc:
        log.warning("%d started goal(s) stay ranked until the events worker applies their "
                    "start: %s", len(started), exc)  # fmt: skip


def _shadow(
    sel: Selector, goal_id: str, version: int, skipped: list[tuple[str, SkipReason]]
) -> Selection | None:
    """What selection would pick: vetted like the real thing, nothing claimed or written."""
    with sel.db.read() as conn:
        record = goal_table.fetch(conn, goal_id)
        beliefs = belief_table.listing(conn)
    if record is None or record["deleted_at"] or record["version"] != version:
        skipped.append((goal_id, SkipReason.CHANGED))
        return None
    goal = from_record(record)
    if goal.state != GoalState.ADOPTED:
        skipped.append((goal_id, SkipReason.CHANGED))
        return None
    consistency = sel.vetting.consult(goal, beliefs)
    with sel.db.read() as conn:
        verdict = start_verdict(conn, sel.vetting, goal, consistency, utcnow())
    if not verdict.allowed:
        skipped.append((goal_id, SkipReason.BLOCKED))
        return None
    RECORDER.inc(GOAL_SELECTED_SHADOW)
    log.info("shadow selection: would hand goal %s (version %s) to the scheduler",
             goal.id, goal.version)  # fmt: skip
    return Selection(SelectionMode.SHADOW, goal)
