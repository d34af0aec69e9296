"""Many nodes over one PostgreSQL database: the Procfile's processes (3 web, 2 worker, a
scheduler) and 4 selectors, each in a directory of its own, sharing only the database URL
and one Redis; and PostgreSQL restarted under a write load, every process left running."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row
from redis import Redis
from rq.job import Job
from rq.serializers import JSONSerializer

from service.store import outbox
from service.testing import goal_spec, wait_for
from tests.conftest import TEST_POSTGRES_URL
from tests.e2e.conftest import PgStack

pytestmark = pytest.mark.e2e

# Selection hands goals over (the flags' live state); the selectors keep the scheduler
# queue this deep; a task untouched for a second is checked against its RQ job.
LIVE = {
    "GOAL_SYSTEM": "on",
    "GOAL_SHADOW": "off",
    "GOALSTORE_SCHEDULER_DEPTH": "8",
    "GOALSTORE_TASK_STALE_S": "1",
    "GOALSTORE_DB_POOL_SIZE": "6",  # 10 processes under PostgreSQL's 100 connections
}
CLIENTS = 16
GOALS_PER_CLIENT = 8
HOT = [f"hot-{n}" for n in range(4)]  # proposed goals every client updates at once
ANCHOR = "anchor"  # never adopted: goals that depend on it are adopted but blocked
RANKING_KEYS = ("ranked", "blocked", "goals", "goal:", "deadlines", "beliefs:active", "weights")


@pytest.fixture
def pg_stack(tmp_path: Path, postgres_url: str) -> Iterator[PgStack]:
    stack = PgStack(tmp_path, postgres_url, **LIVE)
    yield stack
    stack.close()


def query(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Rows of one statement, on a connection of its own (the test's view of the store)."""
    with psycopg.connect(url, autocommit=True, connect_timeout=2) as conn:
        return conn.execute(sql, params).fetchall()


def unapplied(url: str) -> int:
    """Outbox events the ranking has not applied yet."""
    with psycopg.connect(url, autocommit=True, connect_timeout=2, row_factory=dict_row) as conn:
        return int(outbox.backlog(conn)["unapplied"])


def ranking(redis: Redis, prefix: str) -> dict[str, Any]:
    """The ranking's keys under `prefix` (keyed without it), comparable: every ZSET with its
    scores, the goal set, and each goal's snapshot less when it was computed."""
    state: dict[str, Any] = {}
    for raw in redis.scan_iter(match=f"{prefix}*"):
        key = raw.decode().removeprefix(prefix)
        if not key.startswith(RANKING_KEYS):
            continue
        kind = redis.type(raw).decode()
        if kind == "zset":
            state[key] = redis.zrange(raw, 0, -1, withscores=True)
        elif kind == "set":
            state[key] = sorted(redis.smembers(raw))
        elif kind == "hash":
            fields = {k.decode(): v.decode() for k, v in redis.hgetall(raw).items()}
            state[key] = {k: v for k, v in fields.items() if k not in ("seq", "computed_at")}
    return state


def scheduler_jobs(redis: Redis) -> dict[str, tuple[str, int]]:
    """Every job ever put on the scheduler queue (kept 24 h): job id -> (goal, version)."""
    jobs = {}
    for raw in redis.scan_iter(match="rq:job:*"):
        if redis.type(raw) != b"hash" or redis.hget(raw, "origin") != b"scheduler":
            continue
        job_id = raw.decode().removeprefix("rq:job:")
        payload = Job.fetch(job_id, connection=redis, serializer=JSONSerializer).args[0]
        jobs[job_id] = (payload["goal_id"], int(payload["goal_version"]))
    return jobs


@dataclass
class Tally:
    """What the clients sent and got back, shared by their threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    statuses: Counter[str] = field(default_factory=Counter)  # "kind status" -> count
    unexpected: list[str] = field(default_factory=list)
    selected: list[str] = field(default_factory=list)  # goals POST /select emitted

    def record(self, kind: str, response: httpx.Response, *expected: int) -> None:
        with self.lock:
            self.statuses[f"{kind} {response.status_code}"] += 1
            if response.status_code not in expected:
                self.unexpected.append(f"{kind} {response.status_code}: {response.text[:300]}")


def goal_plan(client: int, n: int) -> tuple[str, str]:
    """A client's n-th goal: its id and what becomes of it (blocked: adopted, but it
    depends on the anchor; proposed: never adopted; selectable: adopted)."""
    kind = "blocked" if n % 4 == 3 else "proposed" if n % 5 == 4 else "selectable"
    return f"g-{client:02d}-{n}", kind


def client_run(http: httpx.Client, client: int, tally: Tally, start: threading.Barrier) -> None:
    start.wait()
    try:
        client_writes(http, client, tally)
    except Exception as exc:  # a dropped connection, a body that is not JSON: a failure
        with tally.lock:
            tally.unexpected.append(f"client {client}: {exc!r}")


def client_writes(http: httpx.Client, client: int, tally: Tally) -> None:
    """Create, update, write once more with a stale version (a deliberate 409), adopt;
    update a hot goal with the version just read (a race); now and then select."""
    rnd = random.Random(client)
    for n in range(GOALS_PER_CLIENT):
        goal_id, kind = goal_plan(client, n)
        spec = goal_spec(id=goal_id, text=f"Goal {n} of client {client}",
                         value=round(rnd.random(), 3), effort=round(rnd.random(), 3),
                         depends_on=[ANCHOR] if kind == "blocked" else [])  # fmt: skip
        tally.record("create", http.post("/v1/goals", json=spec), 201)
        update = http.patch(f"/v1/goals/{goal_id}", json={"value": 0.5, "expected_version": 1})
        tally.record("update", update, 200)
        if n % 2:  # the version this client read before its own update: stale
            stale = http.patch(f"/v1/goals/{goal_id}", json={"risk": 0.9},
                               headers={"If-Match": '"1"'})  # fmt: skip
        else:
            stale = http.patch(f"/v1/goals/{goal_id}", json={"risk": 0.9, "expected_version": 1})
        tally.record("stale", stale, 409)
        if kind != "proposed":
            adopt = http.post(f"/v1/goals/{goal_id}/adopt", json={"expected_version": 2})
            tally.record("adopt", adopt, 200)
        hot = HOT[(client + n) % len(HOT)]
        seen = http.get(f"/v1/goals/{hot}").json()["version"]
        change = {"text": f"Hot goal, as client {client} wrote it in round {n}"}  # a change
        race = http.patch(f"/v1/goals/{hot}", json={**change, "expected_version": seen})
        tally.record("hot", race, 200, 409)
        if n % 3 == 2:
            selected = http.post("/v1/goals/select")
            tally.record("select", selected, 200)
            if selected.status_code == 200 and selected.json()["mode"] == "emitted":
                with tally.lock:
                    tally.selected.append(selected.json()["goal"]["id"])


def test_three_webs_two_workers_four_selectors_on_one_postgresql_schema(
    pg_stack: PgStack,
) -> None:
    """16 clients over 3 web processes create, update and adopt goals while 4 selectors
    (and the clients' own selections) hand them to the scheduler: each adopted goal is
    emitted once (one task, one RQ job per goal version), the conflicts recorded are
    exactly the 409s sent back, the ledger verifies and replays to the goals table, and
    the Redis ranking equals a rebuild from PostgreSQL."""
    stack = pg_stack
    stack.start(webs=3, workers=2, schedulers=1, selectors=4)
    webs = list(stack.webs.values())
    https = [httpx.Client(base_url=webs[n % len(webs)], timeout=30) for n in range(CLIENTS)]
    anchor = https[0].post("/v1/goals", json=goal_spec(id=ANCHOR))
    assert 201 == anchor.status_code, anchor.text
    for goal_id in HOT:
        assert 201 == https[0].post("/v1/goals", json=goal_spec(id=goal_id)).status_code

    tally = Tally()
    start = threading.Barrier(CLIENTS)
    threads = [threading.Thread(target=client_run, args=(https[n], n, tally, start))
               for n in range(CLIENTS)]  # fmt: skip
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    load_s = time.monotonic() - began
    for http in https:
        http.close()
    assert not any(thread.is_alive() for thread in threads)
    assert [] == tally.unexpected

    plan = [goal_plan(c, n) for c in range(CLIENTS) for n in range(GOALS_PER_CLIENT)]
    selectable = sorted(goal_id for goal_id, kind in plan if kind == "selectable")
    blocked = sorted(goal_id for goal_id, kind in plan if kind == "blocked")
    url, redis = stack.database_url, stack.redis.client()

    def settled() -> bool:
        """Every selectable goal started, its task run, every event applied."""
        done = query(url, "SELECT count(*) FROM tasks WHERE state = 'succeeded'")[0][0]
        return (done == len(selectable) and unapplied(url) == 0
                and redis.zcard("goalstore:ranked") == 0)  # fmt: skip

    wait_for("every adopted goal run and every event applied", settled, seconds=60)
    stack.assert_running()

    # Each selectable goal was emitted once: one task, one RQ job, of its adopted version (3).
    tasks = query(url, "SELECT task_id, goal_id, goal_version, attempt, state FROM tasks")
    assert sorted(selectable) == sorted(goal_id for _, goal_id, *_ in tasks)
    assert {(3, 1, "succeeded")} == {(version, attempt, state)
                                     for _, _, version, attempt, state in tasks}  # fmt: skip
    jobs = scheduler_jobs(redis)
    assert {task_id: (goal_id, version) for task_id, goal_id, version, *_ in tasks} == jobs
    assert set(tally.selected) <= set(selectable)
    started = query(url, "SELECT goal_id, actor FROM ledger"
                         " WHERE event_type = 'goal_selected_for_execution'")  # fmt: skip
    assert selectable == sorted(goal_id for goal_id, _ in started)  # each started once
    assert {"selector", "anonymous"} == {actor for _, actor in started}  # both kinds selected
    goals = {row[0]: row[1:] for row in query(url, "SELECT id, state, version FROM goals")}
    assert {goals[goal_id] for goal_id in selectable} == {("executing", 4)}
    assert {goals[goal_id] for goal_id in blocked} == {("adopted", 3)}

    # Conflicts recorded: the deliberate stale writes and the hot goals' lost races, each
    # a 409, no more and no less.
    stale_sent = CLIENTS * GOALS_PER_CLIENT
    hot_won, hot_lost = tally.statuses["hot 200"], tally.statuses["hot 409"]
    assert stale_sent == tally.statuses["stale 409"]  # and none answered otherwise
    conflicts = query(url, "SELECT count(*) FROM ledger"
                           " WHERE event_type = 'goal_conflict_detected'")[0][0]  # fmt: skip
    assert stale_sent + hot_lost == conflicts
    # Each write that landed is one version of its hot goal.
    assert len(HOT) + hot_won == sum(goals[goal_id][1] for goal_id in HOT)

    verify = stack.goalstore("ledger", "verify")
    assert 0 == verify.returncode, verify.stdout + verify.stderr
    (rows,) = query(url, "SELECT count(*) FROM ledger")[0]
    assert (True, rows) == (json.loads(verify.stdout)["ok"], json.loads(verify.stdout)["rows"])
    replay = stack.goalstore("ledger", "replay", "--check")
    assert 0 == replay.returncode, replay.stdout + replay.stderr
    assert len(plan) + 1 + len(HOT) == json.loads(replay.stdout)["goals"]

    rebuilt = stack.goalstore("cache", "rebuild", GOALSTORE_REDIS_PREFIX="rebuilt:")
    assert 0 == rebuilt.returncode, rebuilt.stdout + rebuilt.stderr
    live, fresh = ranking(redis, "goalstore:"), ranking(redis, "rebuilt:")
    assert fresh == live
    assert sorted(blocked) == sorted(m.decode() for m, _ in live["blocked"])
    assert len(plan) + 1 + len(HOT) == len(live["goals"])
    stack.assert_running()
    print(
        f"\nload {load_s:.1f}s: {sum(tally.statuses.values())} requests {dict(tally.statuses)}"
        f"; emitted {len(tasks)} ({len(tally.selected)} by POST /select); conflicts {conflicts}"
    )


def local_cluster() -> list[str] | None:
    """The machine's PostgreSQL cluster, as `pg_ctlcluster` names it (the newest version's
    `main`, which `make postgres` starts), when it is the tests' server; None otherwise."""
    versions = sorted((p.name for p in Path("/etc/postgresql").glob("*") if p.name.isdigit()),
                      key=int)  # fmt: skip
    if "@127.0.0.1:5432/" not in TEST_POSTGRES_URL or not shutil.which("pg_ctlcluster"):
        return None
    return ["--skip-systemctl-redirect", versions[-1], "main"] if versions else None


def pg_ctlcluster(cluster: list[str], action: str) -> None:
    """Stop or start the cluster; it answers (or refuses) connections when this returns."""
    done = subprocess.run(["pg_ctlcluster", *cluster, action], capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert 0 == done.returncode, done.stdout + done.stderr


def answers(url: str) -> bool:
    try:
        query(url, "SELECT 1")
    except psycopg.Error:
        return False
    return True


@dataclass
class Outcome:
    at: float  # time.monotonic() when the answer came
    web: str
    op: str  # create | adopt
    goal_id: str
    status: int  # 0: no HTTP answer
    retry_after: str | None = None
    problem: str | None = None


class Writers:
    """Threads writing without pause (create a goal, adopt it) through every web, each
    answer recorded; and a prober per web polling /readyz."""

    def __init__(self, webs: dict[str, str], per_web: int) -> None:
        self.webs = webs
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.outcomes: list[Outcome] = []
        self.ready: list[tuple[float, str, int, dict[str, Any]]] = []  # at, web, status, checks
        self.threads = [
            threading.Thread(target=self.write, args=(web, n), daemon=True)
            for web in webs for n in range(per_web)
        ]  # fmt: skip
        self.threads += [threading.Thread(target=self.probe, args=(web,), daemon=True)
                         for web in webs]  # fmt: skip

    def __enter__(self) -> Writers:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def send(self, http: httpx.Client, web: str, op: str, goal_id: str, **kw: Any) -> int:
        path = "/v1/goals" if op == "create" else f"/v1/goals/{goal_id}/{op}"
        try:
            response = http.post(path, **kw)
        except httpx.TransportError:
            outcome = Outcome(time.monotonic(), web, op, goal_id, 0)
        else:
            problem = None
            if response.status_code >= 400:  # problem+json, or whatever else came back
                json_body = "json" in response.headers.get("content-type", "")
                problem = response.json().get("type") if json_body else response.text[:200]
            outcome = Outcome(time.monotonic(), web, op, goal_id, response.status_code,
                              response.headers.get("retry-after"), problem)  # fmt: skip
        with self.lock:
            self.outcomes.append(outcome)
        return outcome.status

    def write(self, web: str, n: int) -> None:
        with httpx.Client(base_url=self.webs[web], timeout=30) as http:
            for i in range(1_000_000):
                if self.stop.is_set():
                    return
                goal_id = f"w-{web}-{n}-{i}"
                spec = goal_spec(id=goal_id, text=f"Written by {web}/{n}, number {i}")
                if self.send(http, web, "create", goal_id, json=spec) == 201:
                    self.send(http, web, "adopt", goal_id)

    def probe(self, web: str) -> None:
        with httpx.Client(base_url=self.webs[web], timeout=30) as http:
            while not self.stop.wait(0.1):
                try:
                    response = http.get("/readyz")
                except httpx.TransportError:
                    continue
                with self.lock:
                    self.ready.append((time.monotonic(), web, response.status_code,
                                       response.json()["checks"]))  # fmt: skip

    def acknowledged(self, since: float = 0.0, web: str | None = None) -> list[Outcome]:
        with self.lock:
            return [o for o in self.outcomes if 200 <= o.status < 300 and o.at >= since
                    and web in (None, o.web)]  # fmt: skip

    def refused(self, since: float, web: str) -> list[Outcome]:
        with self.lock:
            return [o for o in self.outcomes if o.status == 503 and o.at >= since and o.web == web]

    def not_ready(self, since: float, web: str) -> list[dict[str, Any]]:
        with self.lock:
            return [checks for at, w, status, checks in self.ready
                    if status == 503 and at >= since and w == web]  # fmt: skip

    def served_again(self, since: float, web: str) -> float | None:
        """When `web` had answered both a write and /readyz with success since `since`."""
        with self.lock:
            ready = [at for at, w, status, _ in self.ready
                     if status == 200 and at >= since and w == web]  # fmt: skip
        written = self.acknowledged(since, web)
        return max(ready[0], written[0].at) if ready and written else None


def test_postgresql_restarted_under_a_write_load_loses_no_acknowledged_write(
    pg_stack: PgStack,
) -> None:
    """PostgreSQL stopped and started again while clients write through 3 web processes:
    while it is down writes are 503 + Retry-After (never a 500, never a dropped
    connection) and /readyz is 503 naming postgresql; once it answers, every web serves
    again within 10 s, no GoalStore process having been restarted; every acknowledged
    write is in the database, the ledger verifies and replays, and the workers, the
    scheduler and the selectors carry on (every adopted goal is run, every event applied,
    the ranking equals a rebuild)."""
    cluster = local_cluster()
    if cluster is None:
        pytest.skip("restarts PostgreSQL: needs the tests' server to be this machine's cluster")
    stack = pg_stack
    stack.start(webs=3, workers=2, schedulers=1, selectors=2)
    url = stack.database_url
    try:
        with Writers(stack.webs, per_web=3) as writers:
            wait_for("writes under way", lambda: len(writers.acknowledged()) >= 60)
            down = time.monotonic()
            pg_ctlcluster(cluster, "stop")
            for web in stack.webs:  # every web noticed: its writes and its probe say so
                wait_for(f"{web} to refuse writes and say it is not ready",
                         lambda web=web: writers.refused(down, web)
                         and writers.not_ready(down, web))  # fmt: skip
            pg_ctlcluster(cluster, "start")
            wait_for("PostgreSQL to answer", lambda: answers(url))
            back = time.monotonic()
            recovered = {
                web: wait_for(f"{web} to serve again",
                              lambda web=web: writers.served_again(back, web), seconds=10) - back
                for web in stack.webs
            }  # fmt: skip
            wait_for("writes after the restart", lambda: len(writers.acknowledged(back)) >= 60)
    finally:
        if not answers(url):  # leave the machine's PostgreSQL running, whatever happened
            subprocess.run(["pg_ctlcluster", *cluster, "start"], capture_output=True, timeout=60)
    stack.assert_running()  # no process died, none was restarted
    assert max(recovered.values()) < 10, recovered

    outcomes = writers.outcomes
    statuses = Counter(f"{o.op} {o.status}" for o in outcomes)
    assert set(statuses) <= {"create 201", "adopt 200", "create 503", "adopt 503"}, statuses
    refusals = [o for o in outcomes if o.status == 503]
    assert {("2", "urn:goalstore:problem:database-unavailable")} == {
        (o.retry_after, o.problem) for o in refusals
    }
    for web in stack.webs:  # while down, /readyz named the database, and only it
        assert all(checks == {"postgresql": "unavailable", "redis": "ok"}
                   for checks in writers.not_ready(down, web))  # fmt: skip

    # No acknowledged write lost: each acknowledged create is a goal, each adoption stuck.
    goals = dict(query(url, "SELECT id, version FROM goals"))
    created = {o.goal_id for o in outcomes if o.op == "create" and o.status == 201}
    adopted = {o.goal_id for o in outcomes if o.op == "adopt" and o.status == 200}
    assert created <= set(goals)
    assert {goal_id for goal_id in adopted if goals[goal_id] < 2} == set()
    refused_yet_written = len(set(goals) - created)  # a 503 whose commit landed: allowed

    # The pipeline carries on: every adopted goal is selected and run, every event applied.
    redis = stack.redis.client()

    def drained() -> bool:
        waiting = query(url, "SELECT count(*) FROM goals WHERE state = 'adopted'")[0][0]
        open_ = query(url, "SELECT count(*) FROM tasks WHERE state IN ('queued', 'running')")
        return waiting == 0 and open_[0][0] == 0 and unapplied(url) == 0

    wait_for("every adopted goal run and every event applied", drained, seconds=60)
    stack.assert_running()
    tasks = query(url, "SELECT task_id, goal_id, goal_version, state FROM tasks")
    assert len(tasks) == len({(goal_id, version) for _, goal_id, version, _ in tasks})
    jobs = scheduler_jobs(redis)
    assert {task_id: (goal_id, version) for task_id, goal_id, version, _ in tasks} == jobs
    states = dict(query(url, "SELECT id, state FROM goals"))
    assert {states[goal_id] for goal_id in adopted} == {"executing"}  # each one run
    assert {"succeeded"} == {state for *_, state in tasks} - {"failed"}  # failed: retried

    verify = stack.goalstore("ledger", "verify")
    assert 0 == verify.returncode, verify.stdout + verify.stderr
    replay = stack.goalstore("ledger", "replay", "--check")
    assert 0 == replay.returncode, replay.stdout + replay.stderr
    rebuilt = stack.goalstore("cache", "rebuild", GOALSTORE_REDIS_PREFIX="rebuilt:")
    assert 0 == rebuilt.returncode, rebuilt.stdout + rebuilt.stderr
    live = ranking(redis, "goalstore:")
    assert len(goals) == len(live["goals"])
    assert ranking(redis, "rebuilt:") == live
    print(
        f"\nPostgreSQL down {back - down:.1f}s; each web served again after "
        f"{ {web: round(s, 2) for web, s in recovered.items()} }s; {dict(statuses)}; "
        f"{refused_yet_written} refused yet written; tasks {Counter(s for *_, s in tasks)}"
    )
