"""Writes run together (Database.together, service/store/together.py), on each engine:
the commands one process's threads write at the same moment share one transaction, and
each caller still gets the answer it would have had alone."""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from service import commands
from service.commands import Context
from service.commands.base import record_event
from service.commands.ledger import verify_ledger
from service.domain.errors import GoalAlreadyExists, GoalNotFound, VersionConflict
from service.domain.goal import Goal
from service.domain.inputs import GoalCreate, GoalUpdate
from service.store.db import Database, StoreUnavailable
from service.testing import goal_spec, migrated_database, new_goal, row_counts

CTX = Context(actor="agent-7")


def spec(goal_id: str, **overrides: Any) -> GoalCreate:
    return GoalCreate.model_validate(goal_spec(id=goal_id, **overrides))


def create(db: Database, goal_id: str) -> Callable[[], Goal]:
    return lambda: commands.create_goal(db, CTX, spec(goal_id))


def queued_as_one_group(db: Database, calls: list[Callable[[], Any]]) -> list[Any]:
    """Each call in a thread of its own, queued in the list's order behind a command that
    holds this process's turn until all are queued: they then run as one group. Each
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


def test_a_command_alone_runs_in_its_own_transaction(db: Database) -> None:
    goal = commands.create_goal(db, CTX, spec("alone"))

    assert goal.id == "alone"
    assert (db._together.transactions, db._together.commands) == (0, 0)
    with pytest.raises(GoalAlreadyExists):
        commands.create_goal(db, CTX, spec("alone"))


def test_inside_a_transaction_together_just_runs(db: Database) -> None:
    with db.batch():
        commands.create_goal(db, CTX, spec("in-batch-1"))
        commands.create_goal(db, CTX, spec("in-batch-2"))
    assert ids_in_store(db) == {"in-batch-1", "in-batch-2"}
    assert db._together.waiting() == 0


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
