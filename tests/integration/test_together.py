"""Writes run together (Database.together, service/store/together.py), on each engine:
the commands one process's threads write at the same moment share one transaction, and
each caller still gets the answer it would have had alone."""

from __future__ import annotations

import contextvars
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from service import commands
from service.commands import Context
from service.commands.base import record_event
from service.commands.ledger import verify_ledger
from service.domain.errors import (
    GoalAlreadyExists,
    GoalNotFound,
    GoalStoreError,
    VersionConflict,
)
from service.domain.goal import Goal
from service.domain.inputs import GoalCreate, GoalUpdate
from service.store.db import (
    Database,
    Read,
    StoreBusy,
    StoreUnavailable,
    insert_rows,
    open_database,
)
from service.store.migrate import migrate
from service.store.postgres import PgConnection
from service.store.sqlite import _SqliteConnection
from service.store.together import Together, _GroupFailed
from service.testing import goal_spec, migrated_database, new_goal, row_counts

CTX = Context(actor="agent-7")


def spec(goal_id: str, **overrides: Any) -> GoalCreate:
    return GoalCreate.model_validate(goal_spec(id=goal_id, **overrides))


def create(db: Database, goal_id: str) -> Callable[[], Goal]:
    return lambda: commands.create_goal(db, CTX, spec(goal_id))


def queued_as_one_group(db: Database, calls: list[Callable[[], Any]]) -> list[Any]:
    """Each call in a thread of its own, queued in the list's order behind a command that
    leads a group (of its own) until all are queued: they then run as one group. Each
    outcome is what the call returned, or the exception it raised."""
    holding, released = threading.Event(), threading.Event()
    outcomes: list[Any] = [None] * len(calls)

    def hold() -> None:
        holding.set()
        until(lambda: db._together.waiting() == len(calls))
        released.set()  # the group may have started (and left the queue) at once

    def call(n: int) -> None:
        try:
            outcomes[n] = calls[n]()
        except Exception as exc:
            outcomes[n] = exc

    holder = threading.Thread(target=db.together, args=(hold,))
    holder.start()
    assert holding.wait(10)
    threads = []
    for n in range(len(calls)):
        threads.append(threading.Thread(target=call, args=(n,)))
        threads[-1].start()
        # queued in the list's order (the last one may be on its way already)
        until(lambda queued=n + 1: released.is_set() or db._together.waiting() == queued)
    for thread in [holder, *threads]:
        thread.join(30)
        assert not thread.is_alive()
    return outcomes


@contextmanager
def led_elsewhere(db: Database) -> Iterator[None]:
    """Another thread leads a group (of one command, which writes nothing) until the
    block ends."""
    release, leading = threading.Event(), threading.Event()

    def lead() -> None:
        leading.set()
        assert release.wait(10)

    leader = threading.Thread(target=db.together, args=(lead,))
    leader.start()
    try:
        assert leading.wait(10)
        yield
    finally:
        release.set()
        leader.join(10)


def until(condition: Callable[[], bool], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "waited too long"
        time.sleep(0.001)


def ids_in_store(db: Database) -> set[str]:
    return {row[0] for row in db.connection().execute("SELECT id FROM goals").fetchall()}


def test_concurrent_creates_share_one_commit_and_each_gets_its_own_answer(db: Database) -> None:
    new_goal(db, CTX, id="taken-before")
    before = row_counts(db.connection())
    calls = [create(db, f"g-{n}") for n in range(6)] + [create(db, "taken-before")]
    outcomes = queued_as_one_group(db, calls)

    assert [o.id for o in outcomes[:6]] == [f"g-{n}" for n in range(6)]
    assert isinstance(outcomes[6], GoalAlreadyExists)
    assert (db._together.transactions, db._together.commands) == (1, 7)  # one COMMIT
    after = row_counts(db.connection())
    assert {table: after[table] - before[table] for table in after} == {
        "goals": 6, "ledger": 6, "outbox": 6,
    }  # fmt: skip
    report = verify_ledger(db)
    assert report.ok and report.rows == after["ledger"]
    created = (
        db.connection()
        .execute("SELECT goal_id FROM ledger WHERE event_type = 'goal_created' ORDER BY seq")
        .fetchall()
    )
    assert [row[0] for row in created][-6:] == [f"g-{n}" for n in range(6)]  # in queue order


def test_one_id_created_twice_in_a_group_runs_the_group_again_each_alone(db: Database) -> None:
    """Both creates read the id free with the group's begin; the second's insert breaks the
    primary key, which fails the group: each create then runs alone, and one of the two
    answers 409, as it would have without the group."""
    outcomes = queued_as_one_group(db, [create(db, "a"), create(db, "twice"),
                                        create(db, "twice"), create(db, "b")])  # fmt: skip

    assert isinstance(outcomes[0], Goal) and isinstance(outcomes[3], Goal)
    # alone, the two run at once again: either may win, as two requests at once would
    assert sorted(type(o).__name__ for o in outcomes[1:3]) == ["Goal", "GoalAlreadyExists"]
    assert db._together.transactions == 0  # the group committed nothing
    assert ids_in_store(db) == {"a", "twice", "b"}
    report = verify_ledger(db)
    assert report.ok and report.rows == 3


def test_a_refusal_undoes_only_its_own_writes_and_the_chain_holds(db: Database) -> None:
    """A command that appends an event and then refuses (in its write) is undone alone,
    in the middle of a group, queued writes and all; the next one appends after the
    last kept event, so the ledger stays one chain."""

    def refuses() -> None:
        with db.write() as conn:
            record_event(conn, CTX, CTX.clock(), "goal_annotated", "a", {"note": "undone"})
            raise GoalNotFound("nowhere")

    outcomes = queued_as_one_group(db, [create(db, "a"), lambda: db.together(refuses),
                                        create(db, "b")])  # fmt: skip

    assert isinstance(outcomes[1], GoalNotFound)
    assert (db._together.transactions, db._together.commands) == (1, 3)
    assert ids_in_store(db) == {"a", "b"}
    types = db.connection().execute("SELECT event_type FROM ledger ORDER BY seq").fetchall()
    assert [row[0] for row in types] == ["goal_created", "goal_created"]
    report = verify_ledger(db)
    assert report.ok and report.rows == 2


def test_a_refusal_raised_after_its_write_keeps_the_write(db: Database) -> None:
    """A stale update records its conflict event, then raises VersionConflict outside its
    transaction: in a group the event is committed with the group, and the caller gets
    the 409."""
    new_goal(db, CTX, id="g")
    stale = GoalUpdate.model_validate({"text": "a newer text"})

    def update() -> Any:  # as every mutation, it runs through together()
        return commands.update_goal(db, CTX, "g", stale, 7)

    outcomes = queued_as_one_group(db, [update, create(db, "b")])

    assert isinstance(outcomes[0], VersionConflict)
    assert isinstance(outcomes[1], Goal)
    assert db._together.transactions == 1
    events = db.connection().execute("SELECT event_type FROM ledger ORDER BY seq").fetchall()
    assert [row[0] for row in events] == ["goal_created", "goal_conflict_detected",
                                          "goal_created"]  # fmt: skip


def test_a_command_reads_what_the_commands_before_it_in_its_group_wrote(db: Database) -> None:
    """Two changes of one goal based on the same version, in one group: the first is
    written, and the second, reading the goal after it, is the stale one (409)."""
    new_goal(db, CTX, id="g")

    def update(text: str) -> Callable[[], Any]:
        patch = GoalUpdate.model_validate({"text": text})
        return lambda: commands.update_goal(db, CTX, "g", patch, 1)

    outcomes = queued_as_one_group(db, [update("first"), update("second")])

    assert outcomes[0].goal.version == 2 and outcomes[0].changed
    assert isinstance(outcomes[1], VersionConflict)
    assert (outcomes[1].expected_version, outcomes[1].current_version) == (1, 2)
    assert db._together.transactions == 1
    assert commands.get_goal(db, "g").text == "first"


def test_each_command_runs_in_its_callers_context(db: Database) -> None:
    request: contextvars.ContextVar[str] = contextvars.ContextVar("request", default="none")

    def in_context(name: str) -> Callable[[], str]:
        def call() -> str:
            request.set(name)
            return db.together(lambda: f"{request.get()} on {threading.current_thread().name}")

        return call

    outcomes = queued_as_one_group(db, [in_context("first"), in_context("second")])

    assert [o.split(" on ")[0] for o in outcomes] == ["first", "second"]
    # both ran on the group's leader: the thread that queued first
    assert outcomes[0].split(" on ")[1] == outcomes[1].split(" on ")[1]


def test_a_command_alone_commits_on_its_own(db: Database) -> None:
    goal = commands.create_goal(db, CTX, spec("alone"))

    assert goal.id == "alone"
    assert (db._together.transactions, db._together.commands) == (0, 0)
    with pytest.raises(GoalAlreadyExists):
        commands.create_goal(db, CTX, spec("alone"))


@pytest.mark.parametrize("where", ["read", "queued write"])
def test_a_command_alone_whose_statement_fails_in_the_database_runs_once(
    db: Database, where: str
) -> None:
    """The database refuses a statement of a command alone: a read at once, or a write
    it sent (on PostgreSQL queued, and refused with the COMMIT). That error is its answer,
    as without a group; it does not run again."""
    ran = Counter[str]()

    def fails() -> None:
        ran["fails"] += 1
        with db.write() as conn:
            if where == "read":
                conn.execute("SELECT id FROM no_such_table").fetchall()
            else:
                conn.send("INSERT INTO beliefs (id) VALUES (NULL)", ())  # NOT NULL columns

    with pytest.raises(Exception) as caught:
        db.together(fails)
    assert not isinstance(caught.value, GoalStoreError)  # the database's own error
    assert ran == Counter({"fails": 1})
    assert commands.create_goal(db, CTX, spec("after")).id == "after"  # nothing left open


def test_inside_a_transaction_together_just_runs(database_location: str) -> None:
    """A command called inside a transaction (a batch) runs in it at once, even while
    another thread leads a group: that group's begin waits for the batch's write turn, so
    queued behind it the command would wait for a turn its own transaction holds (a 503
    after the busy timeout)."""
    db = open_database(database_location, busy_timeout_ms=2_000)
    migrate(db)
    elsewhere: list[Any] = []
    leader = threading.Thread(
        target=lambda: elsewhere.append(commands.create_goal(db, CTX, spec("elsewhere")))
    )
    with db.batch():
        leader.start()
        until(lambda: db._together._leader is not None)  # leading, its begin waiting
        commands.create_goal(db, CTX, spec("in-batch-1"))
        commands.create_goal(db, CTX, spec("in-batch-2"))
    leader.join(10)
    assert [goal.id for goal in elsewhere] == ["elsewhere"]
    assert ids_in_store(db) == {"in-batch-1", "in-batch-2", "elsewhere"}
    assert (db._together.transactions, db._together.commands) == (0, 0)
    db.close()


def test_commands_queued_while_the_begin_waits_for_the_lock_join_its_group(
    database_location: str,
) -> None:
    """Another process holds the write lock: this process's first writer begins and waits
    for it, and the writers that queue meanwhile join its group, each with its first read
    (is the id taken) read once the lock is held: the goal the other process created
    while holding it is taken."""
    db = migrated_database(database_location)
    other = open_database(database_location)
    holding, release = threading.Event(), threading.Event()

    def hold_the_lock() -> None:
        with other.batch():
            holding.set()
            release.wait(10)
            commands.create_goal(other, CTX, spec("made-elsewhere"))  # in that transaction

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    try:
        assert holding.wait(10)
        outcomes: list[Any] = [None] * 3

        def call(n: int, goal_id: str) -> None:
            try:
                outcomes[n] = commands.create_goal(db, CTX, spec(goal_id))
            except Exception as exc:
                outcomes[n] = exc

        threads = [threading.Thread(target=call, args=(0, "leader"))]
        threads[0].start()
        until(lambda: db._together._leader is not None)  # leading, its begin waiting
        for n, goal_id in ((1, "joined"), (2, "made-elsewhere")):
            threads.append(threading.Thread(target=call, args=(n, goal_id)))
            threads[-1].start()
        until(lambda: db._together.waiting() == 2)
    finally:
        release.set()
        holder.join(10)
    for thread in threads:
        thread.join(10)
        assert not thread.is_alive()
    other.close()

    assert [o.id for o in outcomes[:2]] == ["leader", "joined"]
    assert isinstance(outcomes[2], GoalAlreadyExists)
    assert (db._together.transactions, db._together.commands) == (1, 3)  # one group
    assert ids_in_store(db) == {"made-elsewhere", "leader", "joined"}
    report = verify_ledger(db)
    assert report.ok and report.rows == 3
    db.close()


def test_a_command_alone_is_answered_its_own_error_and_runs_once(db: Database) -> None:
    """Nobody joined it: whatever it raises is its answer, as without a group (in a group,
    an error that is not its refusal would send every command back to run again)."""
    ran = Counter[str]()

    def broken() -> None:
        ran["broken"] += 1
        with db.write() as conn:
            record_event(conn, CTX, CTX.clock(), "goal_annotated", "a", {"note": "undone"})
            raise RuntimeError("a bug")

    with pytest.raises(RuntimeError, match="a bug"):
        db.together(broken)
    assert ran == Counter({"broken": 1})
    assert db.connection().execute("SELECT count(*) FROM ledger").fetchone()[0] == 0


def test_a_connection_lost_in_a_group_costs_only_the_command_that_lost_it(
    postgres_url: str,
) -> None:
    """PostgreSQL (an embedded SQLite file has no connection to lose): a command whose
    connection dies fails the group; each command runs again alone, the others on fresh
    connections, and only it answers 503."""
    db = migrated_database(postgres_url)

    def cut() -> None:
        with db.write() as conn:
            conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")

    try:
        outcomes = queued_as_one_group(db, [create(db, "a"), lambda: db.together(cut),
                                            create(db, "b")])  # fmt: skip
        ids, chain = ids_in_store(db), verify_ledger(db)
    finally:
        db.close()

    assert isinstance(outcomes[0], Goal) and isinstance(outcomes[2], Goal)
    assert isinstance(outcomes[1], StoreUnavailable)
    assert db._together.transactions == 0
    assert ids == {"a", "b"}
    assert chain.ok and chain.rows == 2


def test_a_command_run_again_alone_starts_from_the_store_as_it_is_then(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A group fails after a text edit ran in it; before the edit runs again alone, the
    goal moves to another parent. The edit's second run must judge the goal as it is
    then (no move of its own), not as its first, rolled-back run saw it."""
    for goal_id in ("p1", "p2"):
        new_goal(db, CTX, id=goal_id)
    new_goal(db, CTX, id="g", parent_id="p1")
    failing = [True]
    monkeypatch.setattr(db, "_aborted", lambda conn: failing[0])  # after its first command
    run_group = Together._together

    def fails_then_moves(self: Together, group: list[Any]) -> None:
        try:
            run_group(self, group)
        except _GroupFailed:
            failing[0] = False
            move = GoalUpdate.model_validate({"parent_id": "p2"})
            commands.update_goal(db, CTX, "g", move, None, any_version=True)
            raise

    monkeypatch.setattr(Together, "_together", fails_then_moves)
    (seq,) = db.connection().execute("SELECT max(seq) FROM ledger").fetchone()
    edit = GoalUpdate.model_validate({"text": "edited"})

    outcomes = queued_as_one_group(db, [
        lambda: commands.update_goal(db, CTX, "g", edit, None, any_version=True),
        create(db, "x"),
    ])  # fmt: skip

    assert outcomes[0].changed and outcomes[0].goal.parent_id == "p2"
    assert outcomes[0].goal.text == "edited"
    after = (
        db.connection()
        .execute("SELECT event_type, goal_id FROM ledger WHERE seq > ? ORDER BY seq", (seq,))
        .fetchall()
    )
    events = [tuple(row) for row in after]
    events.remove(("goal_created", "x"))  # it ran again alone too, before or after the edit
    # the move (g's update, p2 gaining a child), then the edit alone: no move of its own
    assert events == [("goal_updated", "g"), ("goal_decomposed", "p2"), ("goal_updated", "g")]
    assert verify_ledger(db).ok


def test_a_writer_waits_for_its_group_at_most_the_busy_timeout(
    database_location: str,
) -> None:
    """Queued behind a group that does not end, a writer answers 503 after the busy
    timeout, as it would have waiting for its turn, and leaves the queue."""
    db = open_database(database_location, busy_timeout_ms=200)
    migrate(db)
    with led_elsewhere(db):
        started = time.monotonic()
        with pytest.raises(StoreBusy):
            commands.create_goal(db, CTX, spec("late"))
        waited = time.monotonic() - started
        assert db._together.waiting() == 0
    assert 0.2 <= waited < 5
    assert commands.create_goal(db, CTX, spec("late")).id == "late"  # the queue moves on
    db.close()


def test_writers_whose_begin_finds_the_lock_held_are_answered_without_running(
    database_location: str,
) -> None:
    """Another process holds the write lock past the busy timeout: the begin of the first
    writer's group fails, and so does that of the group the writers queued behind it
    form next. Each writer gets that 503; none runs its command (alone, each would only
    wait as long, for the same answer)."""
    db = open_database(database_location, busy_timeout_ms=1_000)
    migrate(db)
    other = open_database(database_location)
    ran: Counter[str] = Counter()
    holding, release = threading.Event(), threading.Event()
    outcomes: list[Any] = [None] * 3

    def hold_the_lock() -> None:
        with other.write():
            holding.set()
            release.wait(10)

    def call(n: int) -> None:
        def command() -> None:
            ran[str(n)] += 1
            with db.write():
                pass

        try:
            outcomes[n] = db.together(command)
        except Exception as exc:
            outcomes[n] = exc

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    threads = [threading.Thread(target=call, args=(n,)) for n in range(3)]
    try:
        assert holding.wait(10)
        threads[0].start()
        until(lambda: db._together._leader is not None)  # leading, its begin waiting
        for thread in threads[1:]:
            thread.start()
        until(lambda: db._together.waiting() == 2)
        for thread in threads:
            thread.join(10)
    finally:
        release.set()
        holder.join(10)
        other.close()
    assert all(isinstance(o, StoreBusy) for o in outcomes), outcomes
    assert ran == Counter()  # no group began; nobody ran again alone
    db.close()


def test_a_commit_whose_answer_is_lost_is_a_503_for_each_and_runs_nothing_again(
    db: Database, engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The group's COMMIT went through but its answer was lost: the group may have
    committed, so running its commands again could do them twice. Each caller gets the
    503 a lone writer gets for a lost COMMIT, and each create is in the store once."""
    connection = PgConnection if engine == "postgresql" else _SqliteConnection
    execute = connection.execute

    def lossy(self: Any, sql: str, parameters: Any = (), /) -> Any:
        cursor = execute(self, sql, parameters)
        if sql == "COMMIT" and creates["a"]:  # the group's
            raise StoreUnavailable("the COMMIT's answer was lost")
        return cursor

    monkeypatch.setattr(connection, "execute", lossy)
    creates: Counter[str] = Counter()
    real_create = commands.goals._create

    def counted(db: Database, ctx: Context, spec: GoalCreate, taken: Read) -> Goal:
        creates[str(spec.id)] += 1
        return real_create(db, ctx, spec, taken)

    monkeypatch.setattr(commands.goals, "_create", counted)

    new_goal(db, CTX, id="taken")
    creates.clear()
    outcomes = queued_as_one_group(db, [create(db, "a"), create(db, "taken"), create(db, "b")])

    assert isinstance(outcomes[0], StoreUnavailable) and isinstance(outcomes[2], StoreUnavailable)
    assert isinstance(outcomes[1], GoalAlreadyExists)  # its own refusal, whatever the COMMIT did
    assert creates == Counter({"a": 1, "taken": 1, "b": 1})  # run once each, in the group
    assert ids_in_store(db) == {"a", "taken", "b"}  # it had committed
    assert verify_ledger(db).ok


def test_a_command_alone_that_writes_through_together_again_just_runs(db: Database) -> None:
    """A command of a group (here a group of one) that calls together() itself runs it
    in place: it must not queue behind its own group."""
    answer: list[Any] = []
    thread = threading.Thread(
        target=lambda: answer.append(db.together(lambda: db.together(lambda: 42)))
    )
    thread.start()
    thread.join(10)
    assert answer == [42]


def test_rows_sent_unread_are_written_as_sent(db: Database) -> None:
    """Connection.send_many, as every engine runs it: an INSERT's rows (one statement of
    many VALUES rows on PostgreSQL), quotes, backslashes, percent signs and question
    marks kept, and any other statement once a row."""
    texts = ["it's 100% done?", 'a "quoted" \\ path', "plain"]
    at = "2026-01-01T00:00:00.000000Z"
    with db.write() as conn:
        insert_rows(conn, "beliefs (id, statement, active, version, created_at, updated_at)",
                    6, [[f"b{n}", text, 1, 1, at, at] for n, text in enumerate(texts)])  # fmt: skip
        conn.send_many("UPDATE beliefs SET active = ? WHERE id = ?", [(0, "b0"), (0, "b2")])
        rows = conn.execute("SELECT id, statement, active FROM beliefs ORDER BY id").fetchall()
    assert [tuple(row) for row in rows] == [
        ("b0", texts[0], 0), ("b1", texts[1], 1), ("b2", texts[2], 0),
    ]  # fmt: skip
