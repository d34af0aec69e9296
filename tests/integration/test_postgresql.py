"""What only PostgreSQL has to prove: many connections that behave as many hosts, two
release steps migrating at once, and a server that goes away and comes back."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections import Counter
from pathlib import Path

import psycopg
import pytest

from service import cli, commands
from service.commands import Context
from service.config import Settings
from service.domain.errors import GoalStoreError, VersionConflict
from service.domain.inputs import GoalUpdate
from service.runtime import build_services
from service.store.db import Database, StoreUnavailable, open_database
from service.store.migrate import load_migrations, migrate, migrations_dir
from service.store.postgres import PostgresDatabase
from service.testing import (
    FrozenClock,
    free_port,
    goal_spec,
    make_context,
    new_goal,
    post_goal,
    wait_for,
)  # fmt: skip
from tests.integration.conftest import LiveServer

WRITERS = 8  # each with a Database of its own: its own pool, as another host would have
ROUNDS = 12


def test_two_nodes_migrating_at_once_apply_each_migration_once(postgres_url: str) -> None:
    """Two release steps at the same moment: one applies everything, the other nothing;
    schema_migrations has each migration once."""
    nodes = [open_database(postgres_url) for _ in range(2)]
    applied: list[list[str]] = []
    barrier = threading.Barrier(2)

    def release(db: Database) -> None:
        barrier.wait()
        applied.append(migrate(db))

    threads = [threading.Thread(target=release, args=(db,)) for db in nodes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    shipped = [m.name for m in load_migrations(migrations_dir(nodes[0].dialect))]
    rows = nodes[0].connection().execute("SELECT name FROM schema_migrations").fetchall()
    for db in nodes:
        db.close()
    assert sorted([[], shipped]) == sorted(applied)
    assert sorted(shipped) == sorted(row[0] for row in rows)


def test_writers_on_many_connections_keep_one_chain_and_count_every_stale_write(
    postgres_url: str,
) -> None:
    """8 writers, each on its own pool, update the same 3 goals with the version they last
    read: every write either lands or is a 409 with its conflict event; the ledger is one
    unbroken chain and replaying it gives the goals table."""
    setup = open_database(postgres_url)
    migrate(setup)
    clock = FrozenClock()
    ids = [new_goal(setup, make_context("setup", clock), id=f"g-{n}").id for n in range(3)]
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    barrier = threading.Barrier(WRITERS)

    def writer(n: int) -> None:
        db = open_database(postgres_url)
        # Each writer its own actor, as admin: they all change the setup's goals.
        ctx = Context(actor=f"writer-{n}", trace=make_context().trace, clock=clock, admin=True)
        barrier.wait()
        try:
            for round_ in range(ROUNDS):
                goal_id = ids[(n + round_) % len(ids)]
                seen = commands.get_goal(db, goal_id).version
                change = GoalUpdate(text=f"writer {n}, round {round_}")  # never a no-op
                try:
                    commands.update_goal(db, ctx, goal_id, change, seen)
                    result = "updated"
                except VersionConflict:
                    result = "conflict"
                with lock:
                    outcomes[result] += 1
        finally:
            db.close()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    events = Counter(row[0] for row in setup.connection().execute("SELECT event_type FROM ledger"))
    versions = sum(commands.get_goal(setup, goal_id).version for goal_id in ids)
    chain = commands.verify_ledger(setup)
    replay = commands.replay_check(setup)
    setup.close()

    assert WRITERS * ROUNDS == outcomes["updated"] + outcomes["conflict"]
    assert outcomes["updated"] > 0
    assert (outcomes["updated"], outcomes["conflict"]) == (
        events["goal_updated"], events["goal_conflict_detected"]
    )  # fmt: skip
    assert len(ids) + outcomes["updated"] == versions  # every landed write is one version
    assert (True, True) == (chain.ok, replay.ok)


def serve(database: str, **overrides: object) -> LiveServer:
    settings = Settings(database=database, **overrides)  # type: ignore[arg-type]
    return LiveServer(build_services(settings))


def _unreachable_url(postgres_url: str) -> str:
    """The same database URL on a port nothing listens on: a server that is down."""
    return postgres_url.replace("127.0.0.1:5432", "127.0.0.1:9")


class Outage:
    """A TCP forwarder in front of PostgreSQL that the test cuts and restores: the server
    going away (every connection dropped, new ones refused) and coming back."""

    def __init__(self, target: tuple[str, int] = ("127.0.0.1", 5432)) -> None:
        self.target = target
        self.port = free_port()
        self._sockets: list[socket.socket] = []
        self._listener: socket.socket | None = None

    def url(self, postgres_url: str) -> str:
        return postgres_url.replace("127.0.0.1:5432", f"127.0.0.1:{self.port}")

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        if self._listener is not None:
            # shutdown first: close() alone leaves a thread blocked in accept() accepting
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self._sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:  # cut
                return
            upstream = socket.create_connection(self.target)
            self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


def test_a_server_that_goes_away_is_503_then_served_again_without_a_restart(
    postgres_url: str,
) -> None:
    """PostgreSQL goes away under a running web process: writes and reads are 503 with
    Retry-After (problem+json, database-unavailable), never a 500, nothing half written;
    /readyz is 503 naming postgresql; /livez still answers. When it comes back, the same
    process serves again within 10 s, and the ledger is whole."""
    outage = Outage()
    outage.restore()
    url = outage.url(postgres_url)
    with serve(url, busy_timeout_ms=500) as server, server.client() as client:
        post_goal(client, id="g-1")
        outage.cut()
        write = client.post("/v1/goals", json=goal_spec(id="g-lost"))
        read = client.get("/v1/goals")
        ready = client.get("/readyz")
        alive = client.get("/livez")
        outage.restore()
        back = time.monotonic()
        wait_for(
            "the web process to write again",
            lambda: client.post("/v1/goals", json=goal_spec(id="g-2")).status_code == 201,
            seconds=10,
        )
        recovered_in = time.monotonic() - back
        listed = [goal["id"] for goal in client.get("/v1/goals").json()["data"]]
        ready_again = client.get("/readyz").status_code
    outage.cut()
    check = open_database(postgres_url)
    chain = commands.verify_ledger(check)
    check.close()

    assert (503, "2") == (write.status_code, write.headers.get("retry-after"))
    assert "application/problem+json" == write.headers["content-type"]
    assert write.json()["type"].endswith("database-unavailable")
    assert 503 == read.status_code
    assert (503, "unavailable") == (ready.status_code, ready.json()["checks"]["postgresql"])
    assert 200 == alive.status_code
    assert recovered_in < 10
    assert (["g-1", "g-2"], 200) == (listed, ready_again)
    assert (True, 2) == (chain.ok, chain.rows)


def test_the_cli_against_a_server_that_does_not_answer_exits_6(
    postgres_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit 6 (unavailable) with the engine's message, not a traceback."""
    code = cli.main(["--database", _unreachable_url(postgres_url), "goals", "list"])

    assert 6 == code
    assert "database does not answer" in capsys.readouterr().out


def test_cut_connections_are_replaced_without_a_failed_request(postgres_url: str) -> None:
    """Every connection of the server killed by the database (a failover, an idle
    timeout, pg_terminate_backend): the next requests get fresh ones and succeed."""
    name = postgres_url.rsplit("application_name=", 1)[1]
    with serve(postgres_url) as server, server.client() as client:
        post_goal(client, id="g-1")
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            killed = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = %s AND pid <> pg_backend_pid()",
                (name,),
            ).fetchone()
        after = [client.post("/v1/goals", json=goal_spec(id=f"g-{n}")) for n in (2, 3)]
        listed = client.get("/v1/goals").json()

    assert killed is not None and killed[0] >= 1
    assert [201, 201] == [response.status_code for response in after]
    assert ["g-1", "g-2", "g-3"] == [goal["id"] for goal in listed["data"]]


def _drop_every_pooled_connection(db: PostgresDatabase, postgres_url: str) -> None:
    """Fill the pool to its size, then have the server end every connection in it."""
    pool = db.pool()
    held = [pool.getconn() for _ in range(db.pooled)]
    pids = [conn.info.backend_pid for conn in held]
    for conn in held:
        pool.putconn(conn)
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", (pids,))


def test_connections_dropped_while_pooled_are_passed_over_not_checked_first(
    postgres_url: str,
) -> None:
    """Pooled connections are used without a check first (a round trip per transaction).
    When the server has ended every one of them, a write transaction and a single read
    each go on over the next connection, at worst a fresh one. A single write outside a
    transaction is not sent again, since whether it ran is not known: it is a 503."""
    db = open_database(postgres_url, pool_size=3)
    assert isinstance(db, PostgresDatabase)
    migrate(db)
    ctx = make_context()
    new_goal(db, ctx, id="g-1")

    _drop_every_pooled_connection(db, postgres_url)
    new_goal(db, ctx, id="g-2")
    _drop_every_pooled_connection(db, postgres_url)
    counted = db.connection().execute("SELECT count(*) FROM goals").fetchone()[0]
    _drop_every_pooled_connection(db, postgres_url)
    with pytest.raises(StoreUnavailable):
        db.connection().execute("UPDATE goals SET text = 'changed' WHERE id = 'g-1'")
    texts = [row[0] for row in db.connection().execute("SELECT text FROM goals ORDER BY id")]
    chain = commands.verify_ledger(db)
    db.close()

    assert 2 == counted
    assert [goal_spec()["text"]] * 2 == texts  # the UPDATE never ran
    assert (True, 2) == (chain.ok, chain.rows)


def test_a_lost_server_mid_transaction_leaves_nothing_half_written(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection dies inside a write (after the goal row, before the commit): the
    command raises StoreUnavailable and the database holds none of it."""
    db = open_database(postgres_url)
    migrate(db)
    ctx = make_context()
    name = postgres_url.rsplit("application_name=", 1)[1]

    def cut(conn: object, event: object) -> None:
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = %s AND pid <> pg_backend_pid()",
                (name,),
            )
        db.connection().execute("SELECT 1")  # the transaction's connection is gone

    monkeypatch.setattr("service.store.outbox.add", cut)
    with pytest.raises(StoreUnavailable):
        new_goal(db, ctx, id="g-1")
    monkeypatch.undo()

    counts = [
        db.connection().execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        for table in ("goals", "ledger", "outbox")
    ]
    new_goal(db, ctx, id="g-2")  # and the store serves again
    db.close()
    assert [0, 0, 0] == counts


def test_a_commit_of_a_failed_transaction_is_an_error_not_a_silent_rollback(
    postgres_url: str,
) -> None:
    """PostgreSQL answers COMMIT of a transaction whose statement failed with a quiet
    ROLLBACK; a caller that swallowed the statement's error must not think it wrote."""
    db = open_database(postgres_url)
    migrate(db)
    insert = (
        "INSERT INTO beliefs (id, statement, active, version, created_at, updated_at)"
        " VALUES ('b', 's', 1, 1, 't', 't')"
    )
    refused = pytest.raises(RuntimeError, match="COMMIT rolled the transaction back")
    with refused, db.write() as conn:
        conn.execute(insert)
        with contextlib.suppress(psycopg.Error):
            conn.execute("SELECT 1 / 0")

    count = db.connection().execute("SELECT count(*) FROM beliefs").fetchone()[0]
    db.close()
    assert 0 == count


def test_writers_queued_behind_one_waiting_for_a_lost_server_say_unavailable(
    postgres_url: str,
) -> None:
    """The first writer to meet a server that is gone waits the pool's timeout for a
    connection; the writers queued behind it time out first, and must say what their
    client should hear — the database is away (Retry-After 2), not busy."""
    db = open_database(_unreachable_url(postgres_url), busy_timeout_ms=400)
    errors: dict[str, GoalStoreError] = {}

    def write(name: str) -> None:
        try:
            with db.write() as conn:
                conn.execute("SELECT 1")
        except GoalStoreError as exc:
            errors[name] = exc

    first = threading.Thread(target=write, args=("first",))
    first.start()
    time.sleep(0.05)  # the first holds the turn and waits for a connection
    queued = [threading.Thread(target=write, args=(f"queued-{n}",)) for n in range(3)]
    for thread in queued:
        thread.start()
    for thread in [first, *queued]:
        thread.join(timeout=10)
    db.close()

    assert 4 == len(errors)
    assert {"database-unavailable"} == {exc.code for exc in errors.values()}
