"""Per-goal authorization over real HTTP (issue 17): who may change which goal.

A goal's owner (the actor whose key created it) and admin keys may change it; any
other writer gets a 403 `not-permitted` problem, and the refusal writes nothing: no
ledger event (not even `goal_conflict_detected`), no new version. Selecting goals and
reporting tasks take the scheduler's `execute` scope, which `write` does not imply.
Every expected status below is written out by hand, one row per route.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import pytest
from redis import Redis

from service import commands
from service.commands import Context
from service.commands.starting import Started
from service.domain.inputs import GoalCreate
from service.domain.tasks import TaskState
from service.testing import goal_spec, row_counts
from tests.integration.conftest import LiveServer, ServerFactory

PROBLEM = "application/problem+json"

KEY = {
    "alice": "alice-key-0123456789",
    "bob": "bob-key-0123456789ab",
    "ops": "ops-key-0123456789ab",
    "viewer": "viewer-key-012345678",
    "sched": "sched-key-0123456789",
}
API_KEYS = ",".join([
    f"alice:read+write:{KEY['alice']}",
    f"bob:read+write:{KEY['bob']}",
    f"ops:admin:{KEY['ops']}",
    f"viewer:read:{KEY['viewer']}",
    f"sched:execute:{KEY['sched']}",
])  # fmt: skip

# The callers of the matrix, each a key's actor. Every prepared goal is alice's.
CALLERS = {
    "owner": "alice",
    "other writer": "bob",
    "admin": "ops",
    "read key": "viewer",
    "execute key": "sched",
}

EXPECTED: dict[str, dict[str, int]] = {
    "patch": {"owner": 200, "other writer": 403, "admin": 200, "read key": 403,
              "execute key": 403},
    "adopt": {"owner": 200, "other writer": 403, "admin": 200, "read key": 403,
              "execute key": 403},
    "abandon": {"owner": 200, "other writer": 403, "admin": 200, "read key": 403,
                "execute key": 403},
    "delete": {"owner": 204, "other writer": 403, "admin": 204, "read key": 403,
               "execute key": 403},
    "verify": {"owner": 200, "other writer": 403, "admin": 200, "read key": 403,
               "execute key": 403},
    "reject": {"owner": 200, "other writer": 403, "admin": 200, "read key": 403,
               "execute key": 403},
    "satisfy": {"owner": 200, "other writer": 403, "admin": 200, "read key": 403,
                "execute key": 403},
    "add_task": {"owner": 201, "other writer": 403, "admin": 201, "read key": 403,
                 "execute key": 403},
    "select": {"owner": 403, "other writer": 403, "admin": 200, "read key": 403,
               "execute key": 200},
    "report": {"owner": 403, "other writer": 403, "admin": 200, "read key": 403,
               "execute key": 200},
}  # fmt: skip

# The routes whose refusal of a writer key is the owner rule (not a missing scope), and
# the action the refusal names.
OWNER_RULE = {"patch": "update", "adopt": "adopt", "abandon": "abandon", "delete": "delete",
              "verify": "verify", "reject": "reject", "satisfy": "satisfy",
              "add_task": "add_task"}  # fmt: skip

ALICE = Context(actor="alice")  # not admin: she prepares goals as their owner


@dataclass
class Target:
    goal_id: str
    task_id: str = ""


def _proposed(server: LiveServer) -> Target:
    spec = GoalCreate.model_validate(goal_spec())
    return Target(server.services.goalstore.create_goal(ALICE, spec).id)


def _adopted(server: LiveServer) -> Target:
    target = _proposed(server)
    server.services.goalstore.adopt_goal(ALICE, target.goal_id)
    return target


def _started(server: LiveServer, report: TaskState | None = None, verify: bool = False) -> Target:
    """An executing goal of alice's with one task (not on any queue), reported as asked."""
    gs, goal_id = server.services.goalstore, _adopted(server).goal_id
    version = gs.get_goal(goal_id).version
    [started] = commands.start_goals(gs.db, ALICE, [(goal_id, version)], gs.vetting)
    assert isinstance(started, Started), started
    task_id = started.task.task_id
    if report is not None:
        gs.report_task(ALICE, task_id, report, evidence={"summary": "done"})
    if verify:
        gs.review_task(ALICE, goal_id, task_id, "verify")
    return Target(goal_id, task_id)


Prepare = Callable[[LiveServer], Target]
Call = Callable[[httpx.Client, Target], httpx.Response]

ROUTES: dict[str, tuple[Prepare, Call]] = {
    "patch": (_proposed, lambda http, t: http.patch(
        f"/v1/goals/{t.goal_id}", json={"text": "revised"}, headers={"If-Match": '"1"'})),
    "adopt": (_proposed, lambda http, t: http.post(f"/v1/goals/{t.goal_id}/adopt")),
    "abandon": (_proposed, lambda http, t: http.post(f"/v1/goals/{t.goal_id}/abandon")),
    "delete": (_proposed, lambda http, t: http.delete(f"/v1/goals/{t.goal_id}")),
    "verify": (lambda s: _started(s, TaskState.SUCCEEDED), lambda http, t: http.post(
        f"/v1/goals/{t.goal_id}/tasks/{t.task_id}/verify")),
    "reject": (lambda s: _started(s, TaskState.SUCCEEDED), lambda http, t: http.post(
        f"/v1/goals/{t.goal_id}/tasks/{t.task_id}/reject", json={"reason": "no"})),
    "satisfy": (lambda s: _started(s, TaskState.SUCCEEDED, verify=True), lambda http, t: http.post(
        f"/v1/goals/{t.goal_id}/satisfy", json={"result": {"summary": "done"}})),
    "add_task": (_adopted, lambda http, t: http.post(
        f"/v1/goals/{t.goal_id}/tasks", json={"note": "done by hand"})),
    "select": (_adopted, lambda http, t: http.post("/v1/goals/select")),
    "report": (_started, lambda http, t: http.post(
        f"/v1/goals/{t.goal_id}/tasks/{t.task_id}/report", json={"state": "running"})),
}  # fmt: skip


@dataclass(frozen=True)
class Seen:
    """What a goal and the store look like, to tell whether a request changed anything."""

    version: int
    state: str
    rows: dict[str, int]
    tasks: tuple[str, ...]


def _seen(server: LiveServer, target: Target) -> Seen:
    gs = server.services.goalstore
    goal = gs.get_goal(target.goal_id, include_deleted=True)
    tasks = tuple(t.state.value for t in gs.list_tasks(target.goal_id))
    return Seen(goal.version, goal.state.value, row_counts(gs.db.connection()), tasks)


@pytest.fixture
def keyed(start_server: ServerFactory, redis_client: Redis, redis_url: str) -> LiveServer:
    """A server with the five keys, selecting for real (GOAL_SYSTEM on, shadow off)."""
    return start_server(
        api_keys=API_KEYS, redis_url=redis_url, redis_prefix="goalstore-test:",
        scheduler_queue="scheduler-test", GOAL_SYSTEM=True, GOAL_SHADOW=False,
    )  # fmt: skip


@pytest.mark.parametrize("route", list(EXPECTED))
def test_who_may_call_each_mutating_route(keyed: LiveServer, route: str) -> None:
    """Owner, other writer, admin, read key, execute key against each mutating route, each
    on a fresh goal of alice's: the statuses of the route's row in EXPECTED; each refusal
    is problem+json and leaves the goal (version, state, tasks) and the store's goals,
    ledger and outbox rows as they were; each success is in the changed goal's ledger
    under the caller's actor, never its key."""
    prepare, call = ROUTES[route]
    statuses: dict[str, int] = {}
    for caller, actor in CALLERS.items():
        target = prepare(keyed)
        before = _seen(keyed, target)
        with keyed.client(headers={"Authorization": f"Bearer {KEY[actor]}"}) as http:
            response = call(http, target)
        statuses[caller] = response.status_code
        if response.status_code == 403:
            assert PROBLEM == response.headers["content-type"]
            assert before == _seen(keyed, target), (caller, "a refusal changed something")
        elif response.status_code < 300:
            changed = target.goal_id
            if route == "select":  # the best goal, which need not be this caller's
                assert "emitted" == response.json()["mode"]
                changed = response.json()["goal"]["id"]
            history = keyed.services.goalstore.goal_history(changed)
            assert actor == history[-1].actor, (caller, history[-1])
            assert KEY[actor] not in str(history[-1].payload)

    assert EXPECTED[route] == statuses


@pytest.mark.parametrize("route", sorted(OWNER_RULE))
def test_another_writer_is_refused_as_not_permitted(keyed: LiveServer, route: str) -> None:
    """Another writer's refusal is the `not-permitted` problem naming the goal and the
    action; it does not name the owner."""
    prepare, call = ROUTES[route]
    target = prepare(keyed)
    with keyed.client(headers={"Authorization": f"Bearer {KEY['bob']}"}) as bob:
        refused = call(bob, target)

    body = refused.json()
    assert (403, "urn:goalstore:problem:not-permitted", target.goal_id) == (
        refused.status_code, body["type"], body["goal_id"]
    )  # fmt: skip
    assert OWNER_RULE[route] == body["action"]
    assert "alice" not in refused.text


def test_a_strangers_stale_write_is_refused_not_a_conflict(keyed: LiveServer) -> None:
    """bob's change with a stale version is a 403 and records nothing; alice's is the 409
    conflict with its `goal_conflict_detected` event: the owner rule comes first."""
    target = _proposed(keyed)
    patch = {"text": "revised", "expected_version": 7}
    before = _seen(keyed, target)
    with keyed.client(headers={"Authorization": f"Bearer {KEY['bob']}"}) as bob:
        strangers = bob.patch(f"/v1/goals/{target.goal_id}", json=patch)
    after_stranger = _seen(keyed, target)
    with keyed.client(headers={"Authorization": f"Bearer {KEY['alice']}"}) as alice:
        owners = alice.patch(f"/v1/goals/{target.goal_id}", json=patch)
    history = keyed.services.goalstore.goal_history(target.goal_id)

    assert (403, 409) == (strangers.status_code, owners.status_code)
    assert before == after_stranger
    assert ["goal_created", "goal_conflict_detected"] == [e.event_type for e in history]
    assert "alice" == history[-1].actor


def test_a_refused_repeat_is_refused_too(keyed: LiveServer) -> None:
    """Abandoning a goal that is already abandoned changes nothing for its owner (200),
    and is still a 403 for another writer: a refusal does not depend on the goal's state."""
    target = _proposed(keyed)
    keyed.services.goalstore.abandon_goal(ALICE, target.goal_id)
    with keyed.client(headers={"Authorization": f"Bearer {KEY['bob']}"}) as bob:
        strangers = bob.post(f"/v1/goals/{target.goal_id}/abandon")
    with keyed.client(headers={"Authorization": f"Bearer {KEY['alice']}"}) as alice:
        owners = alice.post(f"/v1/goals/{target.goal_id}/abandon")

    assert (403, 200) == (strangers.status_code, owners.status_code)


def test_without_keys_anonymous_may_change_any_goal(start_server: ServerFactory) -> None:
    """The keyless quick start: every caller is `anonymous` and acts as admin, so it may
    change goals the CLI or a scenario created (owned by others), as before keys."""
    server = start_server()
    spec = GoalCreate.model_validate(goal_spec())
    goal_id = server.services.goalstore.create_goal(Context(actor="cli"), spec).id
    with server.client() as anonymous:
        adopted = anonymous.post(f"/v1/goals/{goal_id}/adopt")
        selected = anonymous.post("/v1/goals/select")  # shadow: names it, starts nothing
    history = server.services.goalstore.goal_history(goal_id)

    assert (200, 200) == (adopted.status_code, selected.status_code)
    assert ["cli", "anonymous"] == [e.actor for e in history]


def test_the_key_is_never_logged_nor_stored(
    keyed: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Requests with a valid key, a wrong key and a refused key: no log record and no
    ledger row holds any key, only actors."""
    target = _proposed(keyed)
    with caplog.at_level(logging.DEBUG), keyed.client() as http:
        for actor in ("alice", "bob", "viewer"):
            http.post(f"/v1/goals/{target.goal_id}/abandon",
                      headers={"X-API-Key": KEY[actor]})  # fmt: skip
        http.get("/v1/goals", headers={"Authorization": "Bearer wrong-key-0123456789"})
    logged = "\n".join(
        f"{r.getMessage()} {r.__dict__}" for r in caplog.records
    )  # every field a JSON log line would carry
    ledger = str([(e.actor, e.payload) for e in keyed.services.goalstore.goal_history(
        target.goal_id)])  # fmt: skip

    assert caplog.records  # the access log did see the requests
    assert [] == [actor for actor, key in KEY.items() if key in logged or key in ledger]
    assert "wrong-key-0123456789" not in logged
