"""Helpers for tests of GoalStore and of code that uses it (shipped beside the code)."""

from __future__ import annotations

import http.server
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
from prometheus_client.parser import text_string_to_metric_families

from service import commands
from service.commands import Context, Vetting
from service.config import Settings
from service.domain.goal import Goal, GoalCategory
from service.domain.inputs import GoalCreate
from service.domain.vetting import BuiltinChecker
from service.store.db import Connection, Database, open_database
from service.store.migrate import migrate
from service.tracing import new_trace

if TYPE_CHECKING:  # annotations only: httpx is a development dependency
    import httpx

    from service.runtime import Services


def goal_spec(**overrides: Any) -> dict[str, Any]:
    """A valid create body; override any field."""
    spec: dict[str, Any] = {
        "text": "Summarise yesterday's failed tasks",
        "category": "maintenance",
        "value": 0.6,
        "effort": 0.4,
        "risk": 0.2,
    }
    spec.update(overrides)
    return spec


START = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)  # where a FrozenClock starts


@dataclass
class FrozenClock:
    """A clock that moves only when told to: `clock.advance(minutes=5)`."""

    now: datetime = field(default_factory=lambda: START)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


def make_context(
    actor: str = "tester", clock: FrozenClock | None = None, *, admin: bool = False
) -> Context:
    """A command context for tests: `actor` may change the goals it creates; with `admin`
    any goal."""
    return Context(actor=actor, trace=new_trace(), clock=clock or FrozenClock(), admin=admin)


def migrated_database(location: Path | str) -> Database:
    """A migrated store at `location`: a SQLite path or a PostgreSQL URL."""
    db = open_database(location)
    migrate(db)
    return db


T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T | None], seconds: float = 30) -> T:
    """Poll `probe` until it returns something truthy; fail naming `what`."""
    deadline = time.monotonic() + seconds
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def default_vetting() -> Vetting:
    """The vetting of a deployment that sets no checker: the built-in checker at the
    default GOALSTORE_VET_THRESHOLD (for tests that call command functions directly)."""
    return Vetting(BuiltinChecker(), Settings.model_fields["vet_threshold"].default)


MAX_ATTEMPTS: int = Settings.model_fields["max_attempts"].default  # GOALSTORE_MAX_ATTEMPTS
RELAY = {"limit": 2000, "batch": 500}  # relay_outbox's limits in tests that relay by hand


class FakeChecker:
    """An external BeliefConsistencyChecker on a loopback port, for tests of
    GOALSTORE_CHECKER_URL: it answers every POST with `answer` and keeps what it was
    asked in `seen`. Use it as a context manager; `url` is what to configure."""

    def __init__(self, answer: dict[str, Any]) -> None:
        self.answer = answer
        self.seen: list[dict[str, Any]] = []
        checker = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                checker.seen.append(orjson.loads(self.rfile.read(length)))
                body = orjson.dumps(checker.answer)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/check"

    def __enter__(self) -> FakeChecker:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def free_port() -> int:
    """A loopback TCP port nothing listens on right now (for a server the test starts)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --- goals, made the way the tests need them -------------------------------------------


def make_goal(**overrides: Any) -> Goal:
    """A Goal as the store holds one after a create (proposed, version 1), built directly
    for tests of the domain: goal_spec's fields, id goal_001, owner alice, created and
    updated at START. Overrides take the model's types (GoalCategory, tuples)."""
    spec = goal_spec()
    fields: dict[str, Any] = {
        **spec,
        "category": GoalCategory(spec["category"]),
        "id": "goal_001",
        "owner": "alice",
        "created_at": START,
        "updated_at": START,
    }
    fields.update(overrides)
    return Goal(**fields)


def new_goal(via: Services | Database, ctx: Context, **overrides: Any) -> Goal:
    """Create a goal from goal_spec(**overrides): through the composition root's use case
    when given a Services, through the create command when given a bare Database."""
    spec = GoalCreate.model_validate(goal_spec(**overrides))
    if isinstance(via, Database):
        return commands.create_goal(via, ctx, spec)
    return via.goalstore.create_goal(ctx, spec)


def adopted_goal(via: Services | Database, ctx: Context, **overrides: Any) -> str:
    """Create a goal from goal_spec(**overrides) and adopt it; its id. A Services adopts
    with the vetting it was built with, a bare Database with default_vetting()."""
    goal_id = new_goal(via, ctx, **overrides).id
    if isinstance(via, Database):
        commands.adopt_goal(via, ctx, goal_id, vetting=default_vetting())
    else:
        via.goalstore.adopt_goal(ctx, goal_id)
    return goal_id


@contextmanager
def tampering(db: Database) -> Iterator[Connection]:
    """Someone with write access to the store, behind GoalStore's back: a connection of its
    own with the ledger's append-only triggers and foreign keys off; commits on exit."""
    raw = open_database(db.location)
    try:
        if raw.dialect.name == "sqlite":
            raw.connection().execute("PRAGMA foreign_keys = OFF")  # outside any transaction
        with raw.write() as conn:
            if conn.dialect.name == "sqlite":
                conn.execute("DROP TRIGGER IF EXISTS ledger_no_update")
                conn.execute("DROP TRIGGER IF EXISTS ledger_no_delete")
            else:  # ALL: the foreign keys' triggers too
                conn.execute("ALTER TABLE ledger DISABLE TRIGGER ALL")
            yield conn
    finally:
        raw.close()


@contextmanager
def holding_write_lock(db: Database) -> Iterator[None]:
    """Another process's writer holding the store's write lock until the block ends."""
    other = open_database(db.location)
    try:
        with other.write() as conn:
            conn.execute("SELECT 1")  # the lock is taken with the first statement
            yield
    finally:
        other.close()


def row_counts(conn: Connection) -> dict[str, int]:
    """How many rows the goals, ledger and outbox tables hold (a command writes all three
    together, or none)."""
    return {
        table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        for table in ("goals", "ledger", "outbox")
    }


# --- over HTTP ---------------------------------------------------------------------------


def post_goal(client: httpx.Client, **overrides: Any) -> dict[str, Any]:
    """POST /v1/goals with goal_spec(**overrides); asserts 201 and returns the new goal."""
    response = client.post("/v1/goals", json=goal_spec(**overrides))
    assert 201 == response.status_code, response.text
    body: dict[str, Any] = response.json()
    return body


def post_adopted_goal(client: httpx.Client, **overrides: Any) -> str:
    """post_goal, then POST /v1/goals/{id}/adopt (asserting 200); the goal's id."""
    goal_id: str = post_goal(client, **overrides)["id"]
    adopted = client.post(f"/v1/goals/{goal_id}/adopt")
    assert 200 == adopted.status_code, adopted.text
    return goal_id


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape_metrics(client: httpx.Client) -> Samples:
    """GET /metrics (asserting 200 and the text format): every sample's value, keyed by its
    name and its sorted labels; read one with metric()."""
    response = client.get("/metrics")
    assert 200 == response.status_code
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def metric(samples: Samples, name: str, **labels: str) -> float:
    """One sample of a scrape: `metric(samples, "goals_total", state="adopted", ...)`."""
    return samples[(name, tuple(sorted(labels.items())))]
