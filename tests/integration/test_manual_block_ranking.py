"""Manual blocks in the ranking and in selection, and selection's safety net, against a
real store (SQLite and PostgreSQL) and a real Redis."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from redis import Redis

from service import commands
from service.commands import Context
from service.commands.starting import GoalMovedOn, start_goals
from service.domain.beliefs import Belief, BeliefPut
from service.domain.goal import Goal, GoalState
from service.domain.vetting import Consistency, GoalBlocked, Verdict
from service.runtime import Services
from service.store.db import Connection
from service.testing import adopted_goal, metric, post_adopted_goal, scrape_metrics
from tests.conftest import TEST_REDIS_URL
from tests.integration.conftest import ServerFactory

PREFIX = "goalstore-test:"
REASON = "waiting on the legal review of the data-sharing agreement with the vendor"


def apply_outbox(services: Services) -> None:
    """What the relay and the events worker do: every pending event applied to Redis."""
    gs = services.goalstore
    while gs.relay_outbox(gs.apply_events):
        pass


def goal_hash(redis: Redis, goal_id: str) -> dict[str, str]:
    raw: dict[bytes, bytes] = redis.hgetall(f"{PREFIX}goal:{goal_id}")  # type: ignore[assignment]
    return {k.decode(): v.decode() for k, v in raw.items()}


def ranked_ids(redis: Redis, key: str = "ranked") -> list[str]:
    return [m.decode() for m in redis.zrevrange(PREFIX + key, 0, -1)]


def test_a_blocked_goal_leaves_the_ranking_says_why_and_comes_back_at_its_score(
    services: Services, people: Context, redis_client: Redis
) -> None:
    """Blocking a ranked goal (event goal_blocked, applied by the events worker) moves it
    from goalstore:ranked to the blocked set; its hash, its score explanation and the
    ranking with include_blocked say `manual_block` with the person's reason; selection
    takes the other goal. Unblocking puts it back at the score it had."""
    gs = services.goalstore
    held = adopted_goal(services, people, value=0.9, category="maintenance")
    other = adopted_goal(services, people, value=0.3, category="exploration")
    commands.rebuild_cache(services.db, gs.require_cache("test"))
    score_before = redis_client.zscore(PREFIX + "ranked", held)
    assert score_before is not None and [held, other] == ranked_ids(redis_client)

    gs.block_goal(people, held, REASON)
    apply_outbox(services)

    assert [other] == ranked_ids(redis_client)
    assert [] == ranked_ids(redis_client, "ranked:maintenance")
    assert [held] == ranked_ids(redis_client, "blocked")
    stored = goal_hash(redis_client, held)
    assert ("blocked", "manual_block") == (stored["placement"], stored["blocked_by"])
    assert REASON.startswith(stored["manual_block"].removesuffix("\u2026"))
    assert b"listpack" == redis_client.object("encoding", f"{PREFIX}goal:{held}")
    why = {"reason": "manual_block", "ref": REASON}
    _, score = gs.goal_score(held)
    assert (True, [why], 0.0) == (score.blocked, [b.as_dict() for b in score.blocked_by],
                                  score.score)  # fmt: skip
    assert -1.0 == score.terms["penalty"]
    cached = gs.require_cache("test").snapshot(held)
    assert cached is not None and "manual_block" == cached["blocked_by"][0]["reason"]
    for view in (gs.ranked_view(include_blocked=True),
                 commands.ranked_view(services.db, None, max_lag=gs.policy.max_lag,
                                      include_blocked=True)):  # fmt: skip
        assert [(other, False), (held, True)] == [(r.goal.id, r.ranked.blocked) for r in view.items]
        assert REASON == (view.items[1].goal.manual_block or {}).get("reason")
    assert [other] == [r.goal.id for r in gs.ranked_view().items]

    selection = gs.select(people)

    assert selection.goal is not None and other == selection.goal.id
    assert GoalState.ADOPTED == gs.get_goal(held).state

    gs.unblock_goal(people, held)
    apply_outbox(services)

    assert score_before == redis_client.zscore(PREFIX + "ranked", held)
    assert [held] == ranked_ids(redis_client, "ranked:maintenance")
    assert "blocked_by" not in goal_hash(redis_client, held)
    assert "manual_block" not in goal_hash(redis_client, held)
    assert [] == ranked_ids(redis_client, "blocked")


def test_a_rebuild_equals_what_the_events_made_of_a_blocked_goal(
    services: Services, people: Context, redis_client: Redis
) -> None:
    """The hash the events worker wrote for a blocked goal is the one a rebuild from the
    store writes (the seq and computed_at aside: they say when)."""
    gs = services.goalstore
    cache = gs.require_cache("test")
    goal_id = adopted_goal(services, people)
    commands.rebuild_cache(services.db, cache)
    gs.block_goal(people, goal_id, "hold it")
    apply_outbox(services)
    incremental = goal_hash(redis_client, goal_id)

    commands.rebuild_cache(services.db, cache)

    rebuilt = goal_hash(redis_client, goal_id)
    for fields in (incremental, rebuilt):
        del fields["seq"], fields["computed_at"]
    assert incremental == rebuilt
    assert "hold it" == rebuilt["manual_block"]


def test_a_goal_blocked_between_ranking_and_start_is_not_started(
    services: Services, people: Context, redis_client: Redis
) -> None:
    """The ranking was read before the block (no worker has applied it): selection's own
    re-check skips the goal. Started at the version the ranking showed, it moved on;
    started at its blocked version (a ranking that saw the block but not as one), vetting
    refuses it for the manual block, which the goal_blocked_by_belief event records."""
    gs = services.goalstore
    goal_id = adopted_goal(services, people)
    commands.rebuild_cache(services.db, gs.require_cache("test"))
    ranked_version = gs.get_goal(goal_id).version
    blocked = gs.block_goal(people, goal_id, "the customer paused this").goal

    selection = gs.select(people)
    moved = start_goals(services.db, people, [(goal_id, ranked_version)], services.vetting)
    refused = start_goals(services.db, people, [(goal_id, blocked.version)], services.vetting)

    assert ("empty", None) == (selection.mode, selection.goal)
    assert [(goal_id, "changed")] == [(g, str(r)) for g, r in selection.skipped]
    assert isinstance(moved[0], GoalMovedOn)
    assert isinstance(refused[0], GoalBlocked)
    [block] = refused[0].verdict.blocks
    assert "manual_block" == block.reason and "the customer paused this" in block.detail
    assert GoalState.ADOPTED == gs.get_goal(goal_id).state
    assert 0 == redis_client.llen("rq:queue:scheduler-test")


@dataclass(frozen=True)
class WavedThrough:
    """A broken vetting: it asks nothing and allows everything (what the safety net is
    for)."""

    checker: Any = None
    threshold: float = 1.0

    def consult(self, goal: Goal, beliefs: list[Belief]) -> Consistency:
        return Consistency(0.0)

    def verdict(
        self, conn: Connection, goal: Goal, consistency: Consistency, now: datetime,
        beliefs: Sequence[Belief] | None = None,
    ) -> Verdict:  # fmt: skip
        return Verdict()


def test_the_safety_counter_stays_zero_and_counts_a_goal_vetting_let_through(
    database_location: str, redis_client: Redis, start_server: ServerFactory
) -> None:
    """A normal selection leaves goal_safety_violations_total at 0 in /metrics. With a
    vetting that waves everything through, a goal contradicting an active belief reaches
    the start: the safety check refuses it (not started, nothing queued) and counts 1."""
    server = start_server(redis_url=TEST_REDIS_URL, redis_prefix=PREFIX,
                          scheduler_queue="scheduler-test", GOAL_SYSTEM=True,
                          GOAL_SHADOW=False, cache_max_lag_s=3600)  # fmt: skip
    services = server.services
    people = Context(actor="tester")
    gs = services.goalstore
    commands.put_belief(services.db, people, "core.rest", BeliefPut(statement="Rest at night",
                                                                    active=False))  # fmt: skip
    fine = adopted_goal(services, people, value=0.9)
    unsafe = adopted_goal(services, people, value=0.5, contradicts=["core.rest"])
    commands.rebuild_cache(services.db, gs.require_cache("test"))

    first = gs.select(people)
    with server.client() as client:
        after_normal = metric(scrape_metrics(client), "goal_safety_violations_total")
    commands.put_belief(services.db, people, "core.rest", BeliefPut(statement="Rest at night",
                                                                    active=True))  # fmt: skip
    broken = replace(services.selector, vetting=WavedThrough())  # type: ignore[arg-type]
    second = broken.select(people)
    with server.client() as client:
        after_forced = metric(scrape_metrics(client), "goal_safety_violations_total")

    assert first.goal is not None and fine == first.goal.id
    assert 0.0 == after_normal
    assert ("empty", ((unsafe, "blocked"),)) == (
        second.mode, tuple((g, str(r)) for g, r in second.skipped))  # fmt: skip
    assert GoalState.ADOPTED == gs.get_goal(unsafe).state
    assert 1 == redis_client.llen("rq:queue:scheduler-test")  # the first selection's job
    assert 1.0 == after_forced


def test_over_rest_a_blocked_goal_is_explained_listed_last_and_not_selected(
    start_server: ServerFactory, redis_client: Redis
) -> None:
    """POST /v1/goals/{id}/block: the score explains the manual block with the reason,
    /prioritized lists the goal only with include_blocked (blocked, last), and
    POST /v1/goals/select takes the other goal; /unblock gives it its score back."""
    server = start_server(redis_url=TEST_REDIS_URL, redis_prefix=PREFIX,
                          scheduler_queue="scheduler-test", GOAL_SYSTEM=True,
                          GOAL_SHADOW=False, cache_max_lag_s=3600)  # fmt: skip
    with server.client() as client:
        held, other = (post_adopted_goal(client, value=v) for v in (0.9, 0.4))
        commands.rebuild_cache(server.services.db, server.services.goalstore.require_cache("t"))
        score_before = client.get(f"/v1/goals/{held}/score").json()["score"]

        blocked = client.post(f"/v1/goals/{held}/block", json={"reason": "budget frozen"})
        apply_outbox(server.services)
        score = client.get(f"/v1/goals/{held}/score").json()
        listed = client.get("/v1/goals/prioritized").json()
        everything = client.get("/v1/goals/prioritized", params={"include_blocked": True}).json()
        selected = client.post("/v1/goals/select").json()
        client.post(f"/v1/goals/{held}/unblock")
        apply_outbox(server.services)
        unblocked = client.get(f"/v1/goals/{held}/score").json()

    assert (200, "budget frozen") == (blocked.status_code, blocked.json()["manual_block"]["reason"])
    assert (True, 0.0) == (score["blocked"], score["score"])
    assert [{"reason": "manual_block", "ref": "budget frozen"}] == score["blocked_by"]
    assert "redis" == listed["source"]
    assert [other] == [item["goal_id"] for item in listed["data"]]
    assert [(other, False), (held, True)] == [
        (item["goal_id"], item["blocked"]) for item in everything["data"]
    ]
    assert ("emitted", other) == (selected["mode"], selected["goal"]["id"])
    assert (False, score_before) == (unblocked["blocked"], unblocked["score"])
