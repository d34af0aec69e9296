"""Vetting, selection, tasks and the gate against a real SQLite file and a real Redis."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from redis import Redis
from rq.job import Job
from rq.serializers import JSONSerializer
from rq.worker import SimpleWorker

from service import commands
from service.commands import Context
from service.domain.beliefs import BeliefPut
from service.domain.errors import InvalidInput
from service.domain.goal import GoalState
from service.domain.tasks import TaskState
from service.domain.vetting import CheckerUnavailable, GoalBlocked
from service.runtime import Services, build_services
from service.testing import (
    MAX_ATTEMPTS,
    FakeChecker,
    FrozenClock,
    adopted_goal,
    make_context,
    new_goal,
)
from tests.integration.conftest import ServerFactory
from tests.integration.conftest import selection_settings as settings
from workers import jobs, tasks
from workers.scheduler import top_up
from workers.sweeper import RqJobProbe, scheduler_queue


def rebuild(services: Services) -> None:
    assert services.cache is not None
    commands.rebuild_cache(services.db, services.cache)


def events_of(services: Services, goal_id: str) -> list[str]:
    return [e.event_type for e in commands.goal_history(services.db, goal_id, limit=1000)]


# --- vetting -------------------------------------------------------------------------


def test_the_builtin_checker_blocks_a_goal_that_does_what_a_belief_forbids(
    services: Services, ctx: Context
) -> None:
    """'Never delete user data' blocks 'Delete stale user data': 409-worthy GoalBlocked
    naming the belief, a goal_blocked_by_belief event, and the goal still proposed."""
    commands.put_belief(services.db, ctx, "safety.data",
                        BeliefPut(statement="Never delete user data"))  # fmt: skip
    goal_id = new_goal(services, ctx, text="Delete stale user data from the archive").id

    with pytest.raises(GoalBlocked) as raised:
        commands.adopt_goal(services.db, ctx, goal_id, vetting=services.vetting)

    verdict = raised.value.verdict
    assert ["safety.data"] == verdict.belief_ids
    assert ["severity"] == [b.reason for b in verdict.blocks]
    assert 1.0 == verdict.severity
    assert GoalState.PROPOSED == commands.get_goal(services.db, goal_id).state
    assert "goal_blocked_by_belief" == events_of(services, goal_id)[-1]


def test_unrelated_text_passes_and_unknown_aligns_with_only_warns(
    services: Services, ctx: Context
) -> None:
    """A goal no belief forbids is adopted; an aligns_with naming no belief is a warning on
    the adoption, not a refusal."""
    commands.put_belief(services.db, ctx, "safety.data",
                        BeliefPut(statement="Never delete user data"))  # fmt: skip
    goal_id = new_goal(services, ctx, text="Summarise the weekly report", aligns_with=["b.nope"]).id

    change = commands.adopt_goal(services.db, ctx, goal_id, vetting=services.vetting)

    assert GoalState.ADOPTED == change.goal.state
    assert ("aligns_with names an unknown belief: b.nope",) == change.warnings


def test_an_active_contradicted_belief_and_a_passed_deadline_each_block(
    services: Services, ctx: Context, clock: FrozenClock
) -> None:
    """Contradicting an active belief and a deadline already passed are each a block, both
    named in the verdict with the belief's id."""
    commands.put_belief(services.db, ctx, "core.rest", BeliefPut(statement="Rest at night"))
    goal_id = new_goal(services, ctx, contradicts=["core.rest"], horizon_max_min=10).id
    clock.advance(minutes=11)

    with pytest.raises(GoalBlocked) as raised:
        commands.adopt_goal(services.db, ctx, goal_id, vetting=services.vetting)

    assert ["contradicts_belief", "deadline_passed"] == sorted(
        b.reason for b in raised.value.verdict.blocks
    )
    assert ["core.rest"] == raised.value.verdict.belief_ids


def test_the_http_checker_is_asked_and_obeyed_and_its_silence_refuses(
    database_location: str, redis_client: Redis, ctx: Context
) -> None:
    """An external checker's severity 0.9 blocks with its belief ids; a checker that does
    not answer refuses adoption (CheckerUnavailable), it never lets the goal through."""
    from service.store.migrate import migrate

    with FakeChecker({"severity": 0.9, "belief_ids": ["kernel.b7"]}) as checker:
        live = build_services(settings(database_location, checker_url=checker.url))
        migrate(live.db)
        commands.put_belief(live.db, ctx, "kernel.b7", BeliefPut(statement="Stay on task"))
        goal_id = new_goal(live, ctx, text="Explore the new dataset").id
        with pytest.raises(GoalBlocked) as raised:
            commands.adopt_goal(live.db, ctx, goal_id, vetting=live.vetting)
        assert ["kernel.b7"] == raised.value.verdict.belief_ids
        assert "Explore the new dataset" == checker.seen[-1]["query"]
        assert ["kernel.b7"] == [b["id"] for b in checker.seen[-1]["beliefs"]]
    silent = build_services(
        settings(database_location, checker_url=checker.url, checker_timeout_s=0.5)
    )
    with pytest.raises(CheckerUnavailable):
        commands.adopt_goal(silent.db, ctx, goal_id, vetting=silent.vetting)
    assert GoalState.PROPOSED == commands.get_goal(silent.db, goal_id).state
    live.close()
    silent.close()


# --- selection -------------------------------------------------------------------------


def test_flags_off_and_shadow_emit_nothing(
    database_location: str, services: Services, redis_client: Redis, ctx: Context
) -> None:
    """GOAL_SYSTEM off selects nothing ("off"); GOAL_SHADOW picks the best goal but starts
    nothing (the defaults shadow): the goal stays adopted, no job, no task."""
    goal_id = adopted_goal(services, ctx)
    rebuild(services)
    off = build_services(settings(database_location, GOAL_SYSTEM=False))
    shadow = build_services(settings(database_location, GOAL_SHADOW=True))
    default = build_services(settings(database_location, GOAL_SYSTEM=False, GOAL_SHADOW=True))

    assert "off" == off.selector.select(ctx).mode
    seen = shadow.selector.select(ctx)
    out_of_the_box = default.selector.select(ctx)

    assert ("shadow", goal_id) == (seen.mode, seen.goal.id if seen.goal else None)
    assert "shadow" == out_of_the_box.mode  # the defaults shadow, as DESIGN §9 starts
    assert GoalState.ADOPTED == commands.get_goal(services.db, goal_id).state
    assert 0 == redis_client.llen("rq:queue:scheduler-test")
    assert [] == commands.list_tasks(services.db, goal_id)
    off.close()
    shadow.close()
    default.close()


def test_the_selector_loop_idles_in_shadow_mode(
    database_location: str, services: Services, redis_client: Redis, ctx: Context
) -> None:
    """`goalstore selector` with GOAL_SHADOW on selects nothing and counts nothing (a
    loop would shadow-pick the same goal every half second)."""
    adopted_goal(services, ctx)
    rebuild(services)
    shadow = build_services(settings(database_location, GOAL_SHADOW=True, scheduler_depth=5))

    summary = top_up(shadow, once=True)

    assert {"selected": 0, "waiting": 0} == summary
    assert redis_client.hget("goalstore-test:metrics", "goal_selected_shadow_total") is None
    shadow.close()


def test_the_selector_loop_fills_the_queue_to_its_depth_with_the_best_goals(
    database_location: str, services: Services, redis_client: Redis, ctx: Context
) -> None:
    """`goalstore selector` (live) selects what the queue lacks in one pass: the best 3
    of 5 goals for a depth of 3, then stops asking while the queue is full."""
    ids = [adopted_goal(services, ctx, value=v) for v in (0.1, 0.9, 0.3, 0.7, 0.5)]
    rebuild(services)
    live = build_services(settings(database_location, scheduler_depth=3))

    summary = top_up(live, once=True)

    assert {"selected": 3, "waiting": 3} == summary
    executing = {g for g in ids if commands.get_goal(services.db, g).state == GoalState.EXECUTING}
    assert {ids[1], ids[3], ids[4]} == executing
    assert 3 == redis_client.llen("rq:queue:scheduler-test")
    live.close()


def test_selection_emits_one_job_with_the_callers_trace(
    services: Services, redis_client: Redis
) -> None:
    """The best goal becomes executing with a queued task, and one RQ job whose id is
    the task id, JSON-serialized, with the caller's trace id in its meta."""
    ctx = make_context()
    low = adopted_goal(services, ctx, value=0.2)
    best = adopted_goal(services, ctx, value=0.9)
    rebuild(services)

    selection = services.selector.select(ctx)

    assert selection.task is not None and selection.goal is not None
    assert ("emitted", best) == (selection.mode, selection.goal.id)
    assert GoalState.EXECUTING == commands.get_goal(services.db, best).state
    assert GoalState.ADOPTED == commands.get_goal(services.db, low).state
    job = Job.fetch(selection.task.task_id, connection=redis_client, serializer=JSONSerializer)
    assert ctx.trace.trace_id == job.meta["trace_id"]
    assert job.meta["traceparent"].startswith(f"00-{ctx.trace.trace_id}-")
    assert best == job.args[0]["goal_id"]
    meta = json.loads(redis_client.hget(f"rq:job:{selection.task.task_id}", "meta") or b"{}")
    assert ctx.trace.trace_id == meta["trace_id"]  # readable with redis-cli, as documented
    assert [selection.task.task_id.encode()] == redis_client.lrange("rq:queue:scheduler-test",
                                                                   0, -1)  # fmt: skip


def test_the_emitted_job_keeps_the_published_contract(
    services: Services, redis_client: Redis, start_server: ServerFactory
) -> None:
    """The job's payload validates against the schema GET /v1/schemas/task-payload serves
    (checked by jsonschema, not by the model that wrote it); the job runs
    workers.tasks.run_task with the configured executor in its meta and the three
    outcome callbacks, which any RQ worker runs."""
    ctx = make_context()
    goal_id = adopted_goal(services, ctx, metadata={"repo": "goalstore"})
    rebuild(services)
    selection = services.selector.select(ctx)
    assert selection.task is not None
    job = Job.fetch(selection.task.task_id, connection=redis_client, serializer=JSONSerializer)
    with start_server().client() as http:
        schema = http.get("/v1/schemas/task-payload").json()

    jsonschema.Draft202012Validator(schema).validate(job.args[0])
    assert (goal_id, 1, {"repo": "goalstore"}) == (
        job.args[0]["goal_id"], job.args[0]["payload_version"], job.args[0]["metadata"]
    )  # fmt: skip
    assert ("workers.tasks.run_task", services.settings.executor) == (
        job.func_name, job.meta["executor"]
    )  # fmt: skip
    assert ["job_succeeded", "job_failed", "job_stopped"] == [
        c.__name__ for c in (job.success_callback, job.failure_callback, job.stopped_callback)
    ]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**job.args[0], "task_id": 7}, schema)


@pytest.mark.parametrize(("threads", "per_call", "goals"), [(8, 1, 40), (4, 7, 60)])
def test_concurrent_selectors_emit_each_goal_once(
    services: Services, redis_client: Redis, threads: int, per_call: int, goals: int
) -> None:
    """Threads select (one goal per call, or batches) until nothing is left: every
    adopted goal is emitted exactly once."""
    ctx = make_context()
    goal_ids = {adopted_goal(services, ctx, value=(i % 10) / 10) for i in range(goals)}
    rebuild(services)
    emitted: list[str] = []
    lock = threading.Lock()

    def selector() -> None:
        while True:
            sel_ctx = make_context(actor="sel")
            if per_call == 1:
                selections = [services.selector.select(sel_ctx)]
            else:
                selections = services.selector.select_many(sel_ctx, per_call)
            if selections[0].mode != "emitted":
                return
            with lock:
                emitted.extend(s.goal.id for s in selections if s.goal)

    running = [threading.Thread(target=selector) for _ in range(threads)]
    for thread in running:
        thread.start()
    for thread in running:
        thread.join(timeout=60)

    assert sorted(goal_ids) == sorted(emitted)
    assert goals == redis_client.llen("rq:queue:scheduler-test")


def test_a_started_goal_leaves_the_redis_ranking_before_the_worker_applies_its_start(
    services: Services, redis_client: Redis
) -> None:
    """No events worker runs here: the selector itself takes the goal out of
    goalstore:ranked (and its category's ZSET), so other selectors do not walk past it."""
    ctx = make_context()
    best = adopted_goal(services, ctx, value=0.9, category="maintenance")
    other = adopted_goal(services, ctx, value=0.2, category="maintenance")
    rebuild(services)

    selection = services.selector.select(ctx)

    assert selection.goal is not None and best == selection.goal.id
    for key in ("goalstore-test:ranked", "goalstore-test:ranked:maintenance"):
        assert [other.encode()] == redis_client.zrange(key, 0, -1)


def test_a_rebuild_from_an_older_read_cannot_put_a_started_goal_back(
    services: Services, redis_client: Redis
) -> None:
    """The selector writes the started goal's snapshot at the seq of its start event,
    through the same guard as the worker: a rebuild that read SQLite before the start and
    writes after it (the worker's start-up rebuild, `goalstore cache rebuild`) loses."""
    ctx = make_context()
    goal_id = adopted_goal(services, ctx)
    rebuild(services)
    assert services.cache is not None
    before = commands.ranking_state(services.db)  # a rebuild's read, taken before the start

    selection = services.selector.select(ctx)
    services.cache.write([before.snapshots()])  # ...and its write, after

    assert selection.goal is not None and goal_id == selection.goal.id
    assert redis_client.zscore("goalstore-test:ranked", goal_id) is None
    assert b"executing" == redis_client.hget(f"goalstore-test:goal:{goal_id}", "state")


def test_a_claim_walks_past_goals_other_selectors_hold(services: Services) -> None:
    """claim_first takes the first free goals in ranked order, skipping those another
    selector holds, and takes none once all are held."""
    ctx = make_context()
    ids = [adopted_goal(services, ctx, value=v) for v in (0.9, 0.8, 0.7, 0.6)]
    assert services.selector.claims is not None
    claims = services.selector.claims
    versions = [(goal_id, 2) for goal_id in ids]
    _, held = claims.claim_first(versions[1:3], 2)  # another selector holds the 2nd and 3rd

    token, positions = claims.claim_first(versions, 2)

    assert [0, 1] == held  # positions in the list it was given
    assert [0, 3] == positions
    assert token != ""
    assert [] == claims.claim_first(versions, 4)[1]  # the 4 are all held now


def test_select_many_starts_the_best_goals_and_skips_a_blocked_one(
    services: Services, redis_client: Redis
) -> None:
    """One claim, one transaction with a savepoint per goal, one MULTI: the goal that
    fails vetting at selection time is skipped (its block recorded), the others start."""
    ctx = Context(actor="tester")  # the real clock: Redis is trusted, not "far behind"
    commands.put_belief(services.db, ctx, "core.rest",
                        BeliefPut(statement="Rest at night", active=False))  # fmt: skip
    first = adopted_goal(services, ctx, value=0.9)
    blocked = adopted_goal(services, ctx, value=0.8, contradicts=["core.rest"])
    third = adopted_goal(services, ctx, value=0.7)
    fourth = adopted_goal(services, ctx, value=0.6)
    rest = adopted_goal(services, ctx, value=0.1)
    rebuild(services)  # ranked while core.rest is inactive...
    commands.put_belief(services.db, ctx, "core.rest",
                        BeliefPut(statement="Rest at night", active=True))  # fmt: skip
    # ...and no worker applies the activation: selection's own vetting must catch it.

    selections = services.selector.select_many(ctx, 3)

    assert [first, third, fourth] == [s.goal.id for s in selections if s.goal]
    assert {"emitted"} == {s.mode for s in selections}
    assert ((blocked, "blocked"),) == selections[0].skipped
    assert GoalState.ADOPTED == commands.get_goal(services.db, blocked).state
    assert "goal_blocked_by_belief" == events_of(services, blocked)[-1]
    assert GoalState.ADOPTED == commands.get_goal(services.db, rest).state
    queued = redis_client.lrange("rq:queue:scheduler-test", 0, -1)
    assert sorted(s.task.task_id.encode() for s in selections if s.task) == sorted(queued)
    assert b"3" == redis_client.hget("goalstore-test:metrics", "goal_selected_total")
    assert b"3" == redis_client.hget("goalstore-test:metrics", "goal_select_latency_seconds_count")


@pytest.fixture
def queue_down(services: Services, monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Every emit to the scheduler queue fails (undo() brings the queue back)."""
    assert services.emitter is not None

    def broken(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("queue down")

    monkeypatch.setattr(services.emitter, "emit", broken)
    return monkeypatch


def test_a_failed_emit_of_a_batch_undoes_every_start(
    services: Services, redis_client: Redis, queue_down: pytest.MonkeyPatch
) -> None:
    """The queue refuses the batch's emit: every goal of the batch is adopted again, its
    claim released, and nothing is queued."""
    ctx = make_context()
    ids = [adopted_goal(services, ctx, value=v) for v in (0.9, 0.8)]
    rebuild(services)

    with pytest.raises(commands.SchedulerUnavailable):
        services.selector.select_many(ctx, 2)

    for goal_id in ids:
        assert GoalState.ADOPTED == commands.get_goal(services.db, goal_id).state
        assert redis_client.get(f"goalstore-test:claim:{goal_id}:2") is None  # released
    assert 0 == redis_client.llen("rq:queue:scheduler-test")


def test_a_failed_emit_leaves_nothing_half_done(
    services: Services, redis_client: Redis, queue_down: pytest.MonkeyPatch
) -> None:
    """The queue refuses the emit: the goal is adopted again, its task failed and superseded,
    and once the queue is back the goal is selected as attempt 2."""
    ctx = make_context()
    goal_id = adopted_goal(services, ctx)
    rebuild(services)

    with pytest.raises(commands.SchedulerUnavailable):
        services.selector.select(ctx)

    assert GoalState.ADOPTED == commands.get_goal(services.db, goal_id).state
    [task] = commands.list_tasks(services.db, goal_id)
    assert (TaskState.FAILED, True) == (task.state, task.superseded)
    queue_down.undo()
    again = services.selector.select(ctx)  # the claim was released: it can be selected
    assert ("emitted", 2) == (again.mode, again.task.attempt if again.task else None)


# --- tasks, retries and the gate ---------------------------------------------------------


def select(services: Services, ctx: Context) -> tuple[str, str]:
    rebuild(services)
    selection = services.selector.select(ctx)
    assert selection.goal is not None and selection.task is not None, selection
    return selection.goal.id, selection.task.task_id


def test_the_gate_refuses_then_accepts(services: Services, ctx: Context) -> None:
    """No verified task: GateClosed with counts. A metric_delta result missing a target
    and short of another: every error listed, recorded as a GoalFailure. Then satisfied,
    with an outcome for goal_selected."""
    adopted_goal(services, ctx, goal_type="metric_delta",
            success_metrics={"coherence": 0.5, "recall": 0.8})  # fmt: skip
    goal_id, task_id = select(services, ctx)
    db = services.db

    with pytest.raises(commands.GateClosed) as closed:
        commands.satisfy_goal(db, ctx, goal_id, {"achieved": {"coherence": 0.6, "recall": 0.9}})
    assert {"live": 1, "verified": 0, "unverified": 1} == closed.value.counts.as_dict()

    commands.report_task(
        db, ctx, task_id, TaskState.SUCCEEDED, evidence={"url": "x"}, max_attempts=MAX_ATTEMPTS
    )
    commands.review_task(db, ctx, goal_id, task_id, "verify", max_attempts=MAX_ATTEMPTS)
    with pytest.raises(commands.ResultInvalid) as invalid:
        commands.satisfy_goal(db, ctx, goal_id, {"achieved": {"coherence": 0.4}, "extra": 1})
    assert [
        ("result", "extra"),
    ] == [tuple(e.loc) for e in invalid.value.errors]
    with pytest.raises(commands.ResultInvalid) as short:
        commands.satisfy_goal(db, ctx, goal_id, {"achieved": {"coherence": 0.4}})
    assert [("result", "achieved", "coherence"), ("result", "achieved", "recall")] == [
        tuple(e.loc) for e in short.value.errors
    ]
    assert GoalState.EXECUTING == commands.get_goal(db, goal_id).state
    assert 2 == events_of(services, goal_id).count("goal_failure_recorded")

    done = commands.satisfy_goal(db, ctx, goal_id, {"achieved": {"coherence": 0.6, "recall": 0.8}})

    assert GoalState.SATISFIED == done.state
    [outcome] = commands.list_outcomes(db, "goal_selected")
    assert (goal_id, {"goal_satisfaction": 1.0, "task_completion_rate": 1.0}) == (
        outcome["goal_id"], outcome["metrics"]
    )  # fmt: skip


def test_failed_attempts_retry_then_abandon(database_location: str, redis_client: Redis) -> None:
    """A failed task sends the goal back to adopted; the next selection is attempt 2 and
    supersedes attempt 1 (a late report for attempt 1 is ignored: no event, no error); at
    max_attempts (2 here) the goal is abandoned."""
    from service.store.migrate import migrate

    services = build_services(settings(database_location, max_attempts=2))
    migrate(services.db)
    ctx = make_context()
    adopted_goal(services, ctx)
    goal_id, first = select(services, ctx)

    commands.report_task(services.db, ctx, first, TaskState.FAILED, reason="tool crashed",
                         max_attempts=2)  # fmt: skip
    assert GoalState.ADOPTED == commands.get_goal(services.db, goal_id).state
    _, second = select(services, ctx)
    tasks = {t.task_id: t for t in commands.list_tasks(services.db, goal_id)}
    assert (True, 2) == (tasks[first].superseded, tasks[second].attempt)

    events_before = len(events_of(services, goal_id))
    late = commands.report_task(services.db, ctx, first, TaskState.SUCCEEDED, evidence="late",
                                max_attempts=2)  # fmt: skip
    assert (TaskState.FAILED, "tool crashed") == (late.state, late.reason)  # ignored
    assert events_before == len(events_of(services, goal_id))
    commands.report_task(services.db, ctx, second, TaskState.RUNNING, max_attempts=2)
    commands.report_task(services.db, ctx, second, TaskState.FAILED, reason="again",
                         max_attempts=2)  # fmt: skip

    assert GoalState.ABANDONED == commands.get_goal(services.db, goal_id).state
    [outcome] = commands.list_outcomes(services.db, "goal_selected")
    assert 0.0 == outcome["metrics"]["goal_satisfaction"]
    services.close()


def test_the_sweep_fails_a_task_whose_job_vanished(services: Services, redis_client: Redis) -> None:
    """A stale task whose RQ job no longer exists is failed by the sweep ("rq job missing")
    and its goal goes back to adopted."""
    ctx = make_context()
    adopted_goal(services, ctx)
    goal_id, task_id = select(services, ctx)
    redis_client.delete(f"rq:job:{task_id}")  # e.g. Redis restarted empty
    later = Context(actor="sweeper", clock=lambda: ctx.clock() + timedelta(minutes=5))

    failed = commands.sweep_tasks(services.db, later, RqJobProbe(redis_client),
                                  stale_after=timedelta(seconds=60), max_attempts=3)  # fmt: skip

    assert [(task_id, "rq job missing")] == [(t.task_id, t.reason) for t in failed]
    assert GoalState.ADOPTED == commands.get_goal(services.db, goal_id).state


def test_a_finished_job_whose_callback_could_not_write_is_recorded_by_the_sweep(
    services: Services, redis_client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job runs (in-process, as goalstore scheduler runs it) and finishes, but its
    success callback cannot reach the store: the task stays running until the sweep
    records it succeeded with the job's return value as evidence."""
    ctx = make_context()
    adopted_goal(services, ctx, text="Count the open incidents")
    goal_id, task_id = select(services, ctx)
    monkeypatch.setattr(tasks, "_report", lambda job, state, **fields: None)  # lost
    jobs.use(services)
    try:
        queue = scheduler_queue(services, redis_client)
        SimpleWorker([queue], connection=redis_client, serializer=JSONSerializer).work(burst=True)
    finally:
        jobs.use(None)
    assert TaskState.RUNNING == commands.list_tasks(services.db, goal_id)[0].state
    # The job reported running on the real clock (its own context): sweep 5 minutes on.
    later = Context(actor="sweeper", clock=lambda: datetime.now(UTC) + timedelta(minutes=5))

    reported = commands.sweep_tasks(services.db, later, RqJobProbe(redis_client),
                                    stale_after=timedelta(seconds=60), max_attempts=3)  # fmt: skip

    assert [(task_id, TaskState.SUCCEEDED)] == [(t.task_id, t.state) for t in reported]
    evidence = commands.list_tasks(services.db, goal_id)[0].evidence
    assert ("executed: Count the open incidents", "reference") == (
        evidence["summary"], evidence["executor"]
    )  # fmt: skip


def test_the_task_scheduler_tries_goalstore_first_then_its_fallback(
    database_location: str, services: Services
) -> None:
    """GOAL_SYSTEM on: get_next_task() hands over the best goal's task; with nothing left
    (or the flag off, or in shadow), the platform's own task source answers."""
    from service.adapters.task_scheduler import TaskScheduler

    ctx = make_context()
    goal_id = adopted_goal(services, ctx)
    rebuild(services)
    legacy = iter(["legacy-1", "legacy-2", "legacy-3"])
    on = TaskScheduler(services.selector, lambda: next(legacy))
    off_services = build_services(settings(database_location, GOAL_SYSTEM=False))
    off = TaskScheduler(off_services.selector, lambda: next(legacy))

    first = on.get_next_task()
    assert isinstance(first, dict) and goal_id == first["goal_id"]
    assert "legacy-1" == on.get_next_task()  # nothing selectable left
    assert "legacy-2" == off.get_next_task()
    off_services.close()


def test_the_canary_lets_a_share_of_selections_through(tmp_path: Path) -> None:
    """canary_percent 0: none; 100: all; 50: about half of many trace ids, and the same
    trace id always gets the same answer."""
    from service.commands.selection import Flags
    from service.tracing import new_trace

    traces = [new_trace().trace_id for _ in range(2_000)]
    half = Flags(system=True, shadow=False, canary_percent=50)
    share = sum(half.in_canary(t) for t in traces) / len(traces)

    assert 0.45 < share < 0.55
    assert not any(Flags(True, False, 0).in_canary(t) for t in traces)
    assert all(Flags(True, False, 100).in_canary(t) for t in traces)
    assert [half.in_canary(t) for t in traces] == [half.in_canary(t) for t in traces]


def test_abandoning_an_executed_goal_records_an_outcome(services: Services) -> None:
    """An executed goal abandoned by hand: goal_satisfaction 0; a goal never executed
    records none."""
    ctx = make_context()
    never = adopted_goal(services, ctx, value=0.1)
    goal_id, task_id = select(services, ctx)
    commands.report_task(
        services.db, ctx, task_id, TaskState.SUCCEEDED, evidence="log", max_attempts=MAX_ATTEMPTS
    )
    commands.review_task(services.db, ctx, goal_id, task_id, "verify", max_attempts=MAX_ATTEMPTS)

    commands.abandon_goal(services.db, ctx, goal_id)
    commands.abandon_goal(services.db, ctx, never)

    [outcome] = commands.list_outcomes(services.db, "goal_selected")
    assert (goal_id, {"goal_satisfaction": 0.0, "task_completion_rate": 1.0}) == (
        outcome["goal_id"], outcome["metrics"]
    )  # fmt: skip


def test_progress_of_an_open_task_is_a_ledger_event_and_of_a_finished_one_ignored(
    services: Services, redis_client: Redis
) -> None:
    """report_progress records task_progress_reported (note, fraction) while the task is
    open, refuses a fraction outside [0, 1], and ignores progress once the task is done."""
    ctx = make_context()
    adopted_goal(services, ctx)
    goal_id, task_id = select(services, ctx)
    gs = services.goalstore

    gs.report_progress(ctx, task_id, "read 3 of 4 logs", 0.75)
    with pytest.raises(InvalidInput):
        gs.report_progress(ctx, task_id, "too far", 1.5)
    gs.report_task(ctx, task_id, TaskState.SUCCEEDED, evidence={"summary": "done"})
    gs.report_progress(ctx, task_id, "after the end", 1.0)

    history = commands.goal_history(services.db, goal_id)
    progress = [e.payload for e in history if e.event_type == "task_progress_reported"]
    assert [{"task": {"task_id": task_id, "attempt": 1}, "note": "read 3 of 4 logs",
             "fraction": 0.75}] == progress  # fmt: skip
