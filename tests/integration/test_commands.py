"""The commands against a real SQLite file: rows, ledger events and outbox rows commit together."""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson
import psycopg
import pytest

from service import commands
from service.commands import Context
from service.domain.errors import (
    GoalAlreadyExists,
    GoalNotFound,
    IllegalTransition,
    InvalidGoal,
    PreconditionRequired,
    VersionConflict,
)
from service.domain.inputs import GoalUpdate
from service.domain.ledger import LedgerRow
from service.store import outbox
from service.store.db import Connection, Database, open_database
from service.testing import (
    FrozenClock,
    adopted_goal,
    default_vetting,
    goal_spec,
    new_goal,
    row_counts,
)

START = "2026-01-01T12:00:00.000000Z"
# How each engine says a belief's id is taken (sqlite3 / psycopg): the table and its key.
BELIEF_TAKEN = ("UNIQUE constraint failed: beliefs.id", 'unique constraint "beliefs_pkey"')


def breaks_beliefs_key(exc: BaseException) -> bool:
    """Whether `exc` is either engine's error for a belief id taken, nothing else."""
    unique = isinstance(exc, (sqlite3.IntegrityError, psycopg.errors.UniqueViolation))
    return unique and any(
        said in str(exc) for said in BELIEF_TAKEN
    )  # FrozenClock's default instant, in the stored form


def counts(db: Database) -> dict[str, int]:
    """The goals, ledger and outbox rows the database holds now."""
    return row_counts(db.connection())


def goal_row(db: Database, goal_id: str) -> dict[str, Any] | None:
    row = db.connection().execute("SELECT * FROM goals WHERE id = ?", (goal_id,)).fetchone()
    return None if row is None else dict(row)


def ledger_rows(db: Database) -> list[dict[str, Any]]:
    rows = db.connection().execute("SELECT * FROM ledger ORDER BY seq").fetchall()
    return [dict(row) | {"payload": orjson.loads(row["payload"])} for row in rows]


def force_state(db: Database, goal_id: str, state: str) -> None:
    """Put a goal in a state no command reaches yet (executing, satisfied), bypassing the ledger."""
    db.connection().execute("UPDATE goals SET state = ? WHERE id = ?", (state, goal_id))


# --- create ---------------------------------------------------------------------------


def test_create_writes_row_one_event_and_one_outbox_row(db: Database, ctx: Context) -> None:
    """Creating a goal writes its row, one goal_created event and one outbox row for it."""
    new_goal(db, ctx, id="g-1")

    row = goal_row(db, "g-1")
    assert row is not None
    assert ("proposed", 1, "tester", START, None) == (
        row["state"], row["version"], row["owner"], row["created_at"], row["deleted_at"]
    )  # fmt: skip
    events = ledger_rows(db)
    assert [("goal_created", "g-1", "tester", ctx.trace.trace_id, START)] == [
        (e["event_type"], e["goal_id"], e["actor"], e["trace_id"], e["ts"]) for e in events
    ]
    assert "g-1" == events[0]["payload"]["set"]["id"]
    outbox = [dict(r) for r in db.connection().execute("SELECT * FROM outbox")]
    assert [(events[0]["seq"], "goal_created", "g-1", START, None)] == [
        (r["ledger_seq"], r["event_type"], r["goal_id"], r["created_at"], r["relayed_at"])
        for r in outbox
    ]


def test_create_with_duplicate_id_raises_and_writes_nothing(db: Database, ctx: Context) -> None:
    """A second create with a taken id raises GoalAlreadyExists and writes no row or event."""
    new_goal(db, ctx, id="g-1")
    before, row_before = counts(db), goal_row(db, "g-1")

    with pytest.raises(GoalAlreadyExists):
        new_goal(db, ctx, id="g-1", text="a different goal")

    assert before == counts(db)
    assert row_before == goal_row(db, "g-1")


def test_a_taken_id_is_refused_before_its_references_deleted_or_not_and_alone_in_a_batch(
    db: Database, ctx: Context
) -> None:
    """A taken id, a soft-deleted goal's included, is GoalAlreadyExists once the fields
    fit together and before the references are checked (a retried create whose
    dependency has gone since still says the id is taken; one whose fields do not fit is
    still InvalidGoal), and nothing is written. In a batch, only that create is undone."""
    new_goal(db, ctx, id="g-dep")
    new_goal(db, ctx, id="g-1", depends_on=["g-dep"])
    commands.delete_goal(db, ctx, "g-1")
    commands.delete_goal(db, ctx, "g-dep")
    before = counts(db)
    with pytest.raises(GoalAlreadyExists) as deleted:
        new_goal(db, ctx, id="g-1", depends_on=["g-dep"])
    with pytest.raises(InvalidGoal) as unfit:
        new_goal(db, ctx, id="g-1", horizon_min_min=60, horizon_max_min=5)
    after_refusals = counts(db)

    refused: list[str] = []
    with db.batch():
        new_goal(db, ctx, id="g-2")
        try:
            new_goal(db, ctx, id="g-2", text="again")
        except GoalAlreadyExists as exc:
            refused.append(exc.goal_id)
        new_goal(db, ctx, id="g-3")

    ids = [row[0] for row in db.connection().execute("SELECT id FROM goals ORDER BY id")]
    assert "g-1" == deleted.value.goal_id
    assert [("horizon_max_min",)] == [e.loc for e in unfit.value.errors]
    assert before == after_refusals
    assert (["g-2"], ["g-1", "g-2", "g-3", "g-dep"]) == (refused, ids)
    assert goal_spec()["text"] == goal_row(db, "g-2")["text"]  # type: ignore[index]
    assert commands.verify_ledger(db).ok


def test_a_write_s_first_read_sees_the_store_as_the_lock_leaves_it(db: Database) -> None:
    """Database.write(first=...): the read runs once the write lock is held (on
    PostgreSQL in the begin's round trip, bound as literals: a `%` in the SQL, quotes,
    a `?`, backslashes and non-ASCII in the value); its rows are conn.first, [] when it
    matched nothing or there is none (never the last write's), also in a batch, where a
    command's own first read does not outlive its savepoint, and for a batch's own."""
    insert = (
        "INSERT INTO beliefs (id, statement, active, version, created_at, updated_at)"
        " VALUES (?, ?, 1, 1, 't', 't')"
    )
    odd = "it's 100% \\ true? — ça"
    read = ("SELECT id, statement FROM beliefs WHERE statement = ? AND id LIKE 'b-%'", (odd,))
    with db.write(first=read) as conn:
        empty = conn.first
        conn.send(insert, ("b-1", odd))
    with db.write(first=read) as conn:
        found = [tuple(row) for row in conn.first]
    with db.write() as conn:
        bare = conn.first
    with db.batch(), db.write(first=read) as outer:
        in_batch = [tuple(row) for row in outer.first]
        with db.write(first=("SELECT 1 FROM beliefs WHERE id = 'none'", ())) as inner:
            inner_rows = list(inner.first)
        after_inner = [tuple(row) for row in outer.first]
    with db.batch(first=read) as batch:  # the batch's own first read, read with its begin
        batch_rows = [tuple(row) for row in batch.first]
        with db.write() as inner:
            inner_bare = list(inner.first)
        batch_after = [tuple(row) for row in batch.first]

    assert ([], [], [], []) == (empty, bare, inner_rows, inner_bare)
    assert [("b-1", odd)] == found == in_batch == after_inner == batch_rows == batch_after


def test_create_rejects_unknown_dependencies_and_writes_nothing(db: Database, ctx: Context) -> None:
    """depends_on naming a goal that does not exist is InvalidGoal, and nothing is written."""
    new_goal(db, ctx, id="g-1")
    before = counts(db)

    with pytest.raises(InvalidGoal) as caught:
        new_goal(db, ctx, id="g-2", depends_on=["g-1", "g-missing"])

    assert [("depends_on",)] == [e.loc for e in caught.value.errors]
    assert "g-missing" in caught.value.errors[0].msg
    assert before == counts(db)


def test_create_rejects_a_dependency_on_a_deleted_goal(db: Database, ctx: Context) -> None:
    """A soft-deleted goal is not a live goal: depending on it is InvalidGoal."""
    new_goal(db, ctx, id="g-1")
    commands.delete_goal(db, ctx, "g-1")
    before = counts(db)

    with pytest.raises(InvalidGoal):
        new_goal(db, ctx, id="g-2", depends_on=["g-1"])

    assert before == counts(db)


# --- update and versions --------------------------------------------------------------


def test_stale_update_records_conflict_and_leaves_goal_unchanged(
    db: Database, ctx: Context
) -> None:
    """A stale version raises VersionConflict, logs goal_conflict_detected, keeps the row."""
    new_goal(db, ctx, id="g-1")
    commands.update_goal(db, ctx, "g-1", GoalUpdate(value=0.9), 1)
    before, row_before = counts(db), goal_row(db, "g-1")

    with pytest.raises(VersionConflict) as caught:
        commands.update_goal(db, ctx, "g-1", GoalUpdate(value=0.1), 1)

    assert (1, 2) == (caught.value.expected_version, caught.value.current_version)
    assert row_before == goal_row(db, "g-1")
    assert {**before, "ledger": before["ledger"] + 1, "outbox": before["outbox"] + 1} == counts(db)
    last = ledger_rows(db)[-1]
    assert ("goal_conflict_detected", "g-1") == (last["event_type"], last["goal_id"])
    assert {"action": "update", "expected_version": 1, "current_version": 2} == last["payload"]


def test_update_with_right_version_bumps_version_and_logs_the_change(
    db: Database, ctx: Context, clock: FrozenClock
) -> None:
    """An update at the current version applies, bumps the version and logs only what changed."""
    new_goal(db, ctx, id="g-1")
    clock.advance(minutes=5)

    change = commands.update_goal(db, ctx, "g-1", GoalUpdate(value=0.9, text="New text"), 1)

    assert (True, 2, 0.9, "New text") == (
        change.changed, change.goal.version, change.goal.value, change.goal.text
    )  # fmt: skip
    row = goal_row(db, "g-1")
    assert row is not None
    assert (2, 0.9, "New text", "2026-01-01T12:05:00.000000Z") == (
        row["version"], row["value"], row["text"], row["updated_at"]
    )  # fmt: skip
    last = ledger_rows(db)[-1]
    assert "goal_updated" == last["event_type"]
    assert {
        "action": "update",
        "from_version": 1,
        "set": {
            "text": "New text",
            "value": 0.9,
            "version": 2,
            "updated_at": "2026-01-01T12:05:00.000000Z",
        },
    } == last["payload"]


def test_update_without_a_version_is_refused(db: Database, ctx: Context) -> None:
    """An update naming no expected version raises PreconditionRequired and writes nothing."""
    new_goal(db, ctx, id="g-1")
    before, row_before = counts(db), goal_row(db, "g-1")

    with pytest.raises(PreconditionRequired):
        commands.update_goal(db, ctx, "g-1", GoalUpdate(value=0.9), None)

    assert before == counts(db)
    assert row_before == goal_row(db, "g-1")


def test_update_takes_the_version_from_the_patch_body(db: Database, ctx: Context) -> None:
    """expected_version inside the patch stands in for the argument."""
    new_goal(db, ctx, id="g-1")

    change = commands.update_goal(db, ctx, "g-1", GoalUpdate(value=0.9, expected_version=1), None)

    assert (True, 2) == (change.changed, change.goal.version)


def test_update_that_changes_nothing_writes_nothing(db: Database, ctx: Context) -> None:
    """Setting a field to the value it already has is unchanged: no version bump, no event."""
    new_goal(db, ctx, id="g-1", value=0.6)
    before = counts(db)

    change = commands.update_goal(db, ctx, "g-1", GoalUpdate(value=0.6), 1)

    assert (False, 1) == (change.changed, change.goal.version)
    assert before == counts(db)


# --- lifecycle ------------------------------------------------------------------------


def test_adopt_twice_second_is_unchanged_and_writes_no_event(db: Database, ctx: Context) -> None:
    """Adopting an adopted goal returns changed=False and writes nothing."""
    new_goal(db, ctx, id="g-1")
    first = commands.adopt_goal(db, ctx, "g-1", 1, vetting=default_vetting())
    before = counts(db)

    second = commands.adopt_goal(db, ctx, "g-1", 1, vetting=default_vetting())

    assert (True, "adopted", 2) == (first.changed, first.goal.state, first.goal.version)
    assert (False, "adopted", 2) == (second.changed, second.goal.state, second.goal.version)
    assert before == counts(db)
    assert ["goal_created", "goal_adopted"] == [e["event_type"] for e in ledger_rows(db)]


@pytest.mark.parametrize("state", ["proposed", "adopted", "executing"])
def test_abandon_from_every_non_terminal_state(db: Database, ctx: Context, state: str) -> None:
    """abandon moves a proposed, adopted or executing goal to abandoned and logs goal_abandoned."""
    new_goal(db, ctx, id="g-1")
    version = 1
    if state in ("adopted", "executing"):
        version = commands.adopt_goal(db, ctx, "g-1", vetting=default_vetting()).goal.version
    if state == "executing":
        force_state(db, "g-1", "executing")
    before = counts(db)

    change = commands.abandon_goal(db, ctx, "g-1", version)

    assert (True, "abandoned", version + 1) == (
        change.changed, change.goal.state, change.goal.version
    )  # fmt: skip
    row = goal_row(db, "g-1")
    assert row is not None
    assert ("abandoned", version + 1) == (row["state"], row["version"])
    assert {**before, "ledger": before["ledger"] + 1, "outbox": before["outbox"] + 1} == counts(db)
    last = ledger_rows(db)[-1]
    assert ("goal_abandoned", "abandoned") == (last["event_type"], last["payload"]["set"]["state"])


@pytest.mark.parametrize(
    ("state", "action"),
    [
        ("abandoned", "adopt"),
        ("abandoned", "update"),
        ("satisfied", "abandon"),
        ("satisfied", "adopt"),
        ("satisfied", "update"),
        ("executing", "adopt"),
    ],
)
def test_illegal_transition_raises_and_writes_nothing(
    db: Database, ctx: Context, state: str, action: str
) -> None:
    """An action its current state does not allow raises IllegalTransition and changes nothing."""
    new_goal(db, ctx, id="g-1")
    if state == "abandoned":
        commands.abandon_goal(db, ctx, "g-1")
    else:
        force_state(db, "g-1", state)
    row_before = goal_row(db, "g-1")
    assert row_before is not None
    before = counts(db)

    with pytest.raises(IllegalTransition) as caught:
        if action == "update":
            commands.update_goal(db, ctx, "g-1", GoalUpdate(value=0.1), row_before["version"])
        elif action == "adopt":
            commands.adopt_goal(db, ctx, "g-1", row_before["version"], vetting=default_vetting())
        else:
            commands.abandon_goal(db, ctx, "g-1", row_before["version"])

    assert (state, action) == (caught.value.current_state, caught.value.action)
    assert before == counts(db)
    assert row_before == goal_row(db, "g-1")


def test_stale_adopt_records_conflict_and_keeps_state(db: Database, ctx: Context) -> None:
    """adopt with a stale version raises VersionConflict, logs it, and leaves the goal proposed."""
    new_goal(db, ctx, id="g-1")
    commands.update_goal(db, ctx, "g-1", GoalUpdate(value=0.9), 1)

    with pytest.raises(VersionConflict):
        commands.adopt_goal(db, ctx, "g-1", 1, vetting=default_vetting())

    row = goal_row(db, "g-1")
    assert row is not None
    assert ("proposed", 2) == (row["state"], row["version"])
    assert {"action": "adopt", "expected_version": 1, "current_version": 2} == (
        ledger_rows(db)[-1]["payload"]
    )


# --- soft delete ----------------------------------------------------------------------


def test_soft_delete_hides_goal_from_get_and_list(
    db: Database, ctx: Context, clock: FrozenClock
) -> None:
    """A deleted goal is gone from get and list, and back with include_deleted=True."""
    new_goal(db, ctx, id="g-1")
    new_goal(db, ctx, id="g-2")
    clock.advance(minutes=1)

    change = commands.delete_goal(db, ctx, "g-1", 1)

    assert (True, 2) == (change.changed, change.goal.version)
    with pytest.raises(GoalNotFound):
        commands.get_goal(db, "g-1")
    shown = commands.get_goal(db, "g-1", include_deleted=True)
    assert ("g-1", clock.now) == (shown.id, shown.deleted_at)
    live = commands.list_goals(db)
    assert (["g-2"], 1) == ([g.id for g in live.goals], live.count)
    everything = commands.list_goals(db, include_deleted=True)
    assert (["g-1", "g-2"], 2) == ([g.id for g in everything.goals], everything.count)
    assert "goal_deleted" == ledger_rows(db)[-1]["event_type"]


def test_repeated_delete_is_unchanged(db: Database, ctx: Context) -> None:
    """Deleting a deleted goal returns changed=False and writes no event."""
    new_goal(db, ctx, id="g-1")
    commands.delete_goal(db, ctx, "g-1")
    before, row_before = counts(db), goal_row(db, "g-1")

    again = commands.delete_goal(db, ctx, "g-1")

    assert (False, 2) == (again.changed, again.goal.version)
    assert before == counts(db)
    assert row_before == goal_row(db, "g-1")


@pytest.mark.parametrize("action", ["adopt", "abandon", "update"])
def test_changes_to_a_deleted_goal_are_not_found(db: Database, ctx: Context, action: str) -> None:
    """adopt, abandon and update of a deleted goal raise GoalNotFound and write nothing."""
    new_goal(db, ctx, id="g-1")
    commands.delete_goal(db, ctx, "g-1")
    before = counts(db)

    with pytest.raises(GoalNotFound):
        if action == "update":
            commands.update_goal(db, ctx, "g-1", GoalUpdate(value=0.1), 2)
        elif action == "adopt":
            commands.adopt_goal(db, ctx, "g-1", 2, vetting=default_vetting())
        else:
            commands.abandon_goal(db, ctx, "g-1", 2)

    assert before == counts(db)


# --- dependencies ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "depends_on"),
    [("g-a", ["g-b"]), ("g-a", ["g-c"]), ("g-b", ["g-c"]), ("g-a", ["g-x", "g-c"])],
)
def test_update_that_makes_a_dependency_cycle_is_invalid(
    db: Database, ctx: Context, target: str, depends_on: list[str]
) -> None:
    """An update closing a cycle (g-c -> g-b -> g-a -> ...) is InvalidGoal and writes nothing."""
    new_goal(db, ctx, id="g-a")
    new_goal(db, ctx, id="g-b", depends_on=["g-a"])
    new_goal(db, ctx, id="g-c", depends_on=["g-b"])
    new_goal(db, ctx, id="g-x")
    before, row_before = counts(db), goal_row(db, target)

    with pytest.raises(InvalidGoal) as caught:
        commands.update_goal(db, ctx, target, GoalUpdate(depends_on=depends_on), 1)

    assert [("depends_on",)] == [e.loc for e in caught.value.errors]
    assert before == counts(db)
    assert row_before == goal_row(db, target)


def test_update_to_unknown_dependency_is_invalid(db: Database, ctx: Context) -> None:
    """An update whose depends_on names an unknown goal is InvalidGoal and writes nothing."""
    new_goal(db, ctx, id="g-a")
    before = counts(db)

    with pytest.raises(InvalidGoal):
        commands.update_goal(db, ctx, "g-a", GoalUpdate(depends_on=["g-nope"]), 1)

    assert before == counts(db)


def test_update_to_a_dependency_without_a_cycle_applies(db: Database, ctx: Context) -> None:
    """A new dependency that closes no cycle is accepted (the cycle check is not over-eager)."""
    new_goal(db, ctx, id="g-a")
    new_goal(db, ctx, id="g-b", depends_on=["g-a"])
    new_goal(db, ctx, id="g-c")

    change = commands.update_goal(db, ctx, "g-c", GoalUpdate(depends_on=["g-b", "g-a"]), 1)

    assert (True, ("g-b", "g-a")) == (change.changed, change.goal.depends_on)


# --- listing --------------------------------------------------------------------------


def _listing_fixture(db: Database, ctx: Context) -> None:
    for goal_id, category in [
        ("g-1", "maintenance"),
        ("g-2", "exploration"),
        ("g-3", "exploration"),
        ("g-4", "introspection"),
        ("g-5", "maintenance"),
        ("g-6", "exploration"),
    ]:
        new_goal(db, ctx, id=goal_id, category=category)
    for goal_id in ("g-2", "g-4", "g-5"):
        commands.adopt_goal(db, ctx, goal_id, vetting=default_vetting())
    commands.abandon_goal(db, ctx, "g-6")


@pytest.mark.parametrize(
    ("state", "category", "expected"),
    [
        (None, None, ["g-1", "g-2", "g-3", "g-4", "g-5", "g-6"]),
        ("adopted", None, ["g-2", "g-4", "g-5"]),
        ("proposed", None, ["g-1", "g-3"]),
        ("abandoned", None, ["g-6"]),
        (None, "exploration", ["g-2", "g-3", "g-6"]),
        ("adopted", "exploration", ["g-2"]),
        ("adopted", "user_requested", []),
    ],
)
def test_list_filters_by_state_and_category(
    db: Database, ctx: Context, state: str | None, category: str | None, expected: list[str]
) -> None:
    """list_goals returns exactly the goals in the given state and category, in creation order."""
    _listing_fixture(db, ctx)

    page = commands.list_goals(db, state=state, category=category)

    assert (expected, len(expected), None) == (
        [g.id for g in page.goals], page.count, page.next_cursor
    )  # fmt: skip


@pytest.mark.parametrize(
    ("limit", "state", "expected_sizes", "expected_ids"),
    [
        (3, None, [3, 3], ["g-1", "g-2", "g-3", "g-4", "g-5", "g-6"]),
        (4, None, [4, 2], ["g-1", "g-2", "g-3", "g-4", "g-5", "g-6"]),
        (1, None, [1, 1, 1, 1, 1, 1], ["g-1", "g-2", "g-3", "g-4", "g-5", "g-6"]),
        (10, None, [6], ["g-1", "g-2", "g-3", "g-4", "g-5", "g-6"]),
        (2, "adopted", [2, 1], ["g-2", "g-4", "g-5"]),
    ],
)
def test_list_pages_cover_every_goal_exactly_once(
    db: Database,
    ctx: Context,
    limit: int,
    state: str | None,
    expected_sizes: list[int],
    expected_ids: list[str],
) -> None:
    """Following next_cursor until None visits every matching goal once, in order."""
    _listing_fixture(db, ctx)
    seen: list[str] = []
    sizes: list[int] = []
    totals: set[int] = set()
    cursor: int | None = 0

    while cursor is not None:
        page = commands.list_goals(db, state=state, cursor=cursor, limit=limit)
        seen += [g.id for g in page.goals]
        sizes.append(len(page.goals))
        totals.add(page.count)
        cursor = page.next_cursor
        assert len(sizes) <= 10, "pagination does not end"

    assert (expected_ids, expected_sizes, {len(expected_ids)}) == (seen, sizes, totals)


# --- durability and atomicity ---------------------------------------------------------


def test_goals_survive_closing_and_reopening_the_database(db: Database, ctx: Context) -> None:
    """A new Database on the same file sees every committed goal, version and event."""
    new_goal(db, ctx, id="g-1")
    new_goal(db, ctx, id="g-2")
    commands.adopt_goal(db, ctx, "g-1", 1, vetting=default_vetting())
    commands.delete_goal(db, ctx, "g-2", 1)
    db.close()

    reopened = open_database(db.location)
    try:
        kept = commands.get_goal(reopened, "g-1")
        gone = commands.get_goal(reopened, "g-2", include_deleted=True)
        assert ("adopted", 2) == (kept.state, kept.version)
        assert (True, 2) == (gone.is_deleted, gone.version)
        assert {"goals": 2, "ledger": 4, "outbox": 4} == counts(reopened)
        assert True is commands.verify_ledger(reopened).ok
    finally:
        reopened.close()


def test_failure_after_ledger_append_rolls_back_everything(
    db: Database, ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the outbox write fails, the goal row and the ledger event appended before it are gone."""
    appended: list[int] = []

    def failing_add(conn: Connection, event: LedgerRow) -> None:
        appended.append(event.seq)
        raise RuntimeError("outbox unavailable")

    monkeypatch.setattr("service.store.outbox.add", failing_add)

    with pytest.raises(RuntimeError, match="outbox unavailable"):
        new_goal(db, ctx, id="g-1")

    assert [1] == appended  # the ledger row was written inside the transaction...
    assert {"goals": 0, "ledger": 0, "outbox": 0} == counts(db)  # ...and rolled back with it
    monkeypatch.undo()
    new_goal(db, ctx, id="g-1")  # the connection is usable, and seq 1 is free again
    assert [1] == [e["seq"] for e in ledger_rows(db)]


def test_failed_update_leaves_the_goal_row_as_it_was(
    db: Database, ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure after the row update and ledger append rolls the row back too."""
    new_goal(db, ctx, id="g-1")
    before, row_before = counts(db), goal_row(db, "g-1")

    def failing_add(conn: Connection, event: LedgerRow) -> None:
        raise RuntimeError("outbox unavailable")

    monkeypatch.setattr("service.store.outbox.add", failing_add)

    with pytest.raises(RuntimeError):
        commands.update_goal(db, ctx, "g-1", GoalUpdate(value=0.9), 1)

    assert before == counts(db)
    assert row_before == goal_row(db, "g-1")


def test_a_batch_commits_its_commands_together(db: Database, ctx: Context) -> None:
    """Commands inside batch() share one transaction; the chain and outbox are as if run
    one by one."""
    with db.batch():
        for n in range(3):
            new_goal(db, ctx, id=f"g-{n}")
        commands.adopt_goal(db, ctx, "g-1", vetting=default_vetting())
        other = open_database(db.location)  # another connection sees nothing until the batch ends
        assert 0 == other.connection().execute("SELECT count(*) FROM goals").fetchone()[0]
    assert 3 == other.connection().execute("SELECT count(*) FROM goals").fetchone()[0]
    other.close()
    assert {"goals": 3, "ledger": 4, "outbox": 4} == counts(db)
    assert commands.verify_ledger(db).ok


def test_a_failed_command_in_a_batch_is_undone_alone(
    db: Database, ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A command failing half-way inside a batch leaves nothing of itself (its savepoint is
    rolled back); what the batch did before and after it commits."""
    real_add = outbox.add
    calls: list[int] = []

    def second_fails(conn: Connection, event: LedgerRow) -> None:
        calls.append(event.seq)
        if len(calls) == 2:
            raise RuntimeError("outbox unavailable")
        real_add(conn, event)

    monkeypatch.setattr("service.store.outbox.add", second_fails)
    with db.batch():
        new_goal(db, ctx, id="g-1")
        with pytest.raises(RuntimeError):
            new_goal(db, ctx, id="g-2")  # goal row and ledger row written, then the failure
        new_goal(db, ctx, id="g-3")

    assert ["g-1", "g-3"] == [r[0] for r in db.connection().execute("SELECT id FROM goals")]
    assert [1, 2] == [e["seq"] for e in ledger_rows(db)]  # g-2's seq 2 was rolled back
    assert commands.verify_ledger(db).ok


def test_an_exception_leaving_a_batch_undoes_all_of_it(db: Database, ctx: Context) -> None:
    """An exception raised inside batch() rolls back every command of the batch; the
    connection is usable afterwards."""
    with pytest.raises(RuntimeError), db.batch():
        new_goal(db, ctx, id="g-1")
        raise RuntimeError("the caller changed its mind")

    assert {"goals": 0, "ledger": 0, "outbox": 0} == counts(db)
    new_goal(db, ctx, id="g-1")  # and the connection is usable afterwards


# --- the ledger at the SQL level ------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ledger SET payload = '{}' WHERE seq = 1",
        "UPDATE ledger SET actor = 'mallory'",
        "DELETE FROM ledger WHERE seq = 1",
        "DELETE FROM ledger",
    ],
)
def test_ledger_is_append_only_in_sql(db: Database, ctx: Context, statement: str) -> None:
    """UPDATE and DELETE on the ledger are refused by triggers; the rows stay as written."""
    adopted_goal(db, ctx, id="g-1")
    rows_before = ledger_rows(db)

    with pytest.raises((sqlite3.IntegrityError, psycopg.Error), match="append-only"):
        db.connection().execute(statement)

    assert rows_before == ledger_rows(db)
    assert True is commands.verify_ledger(db).ok


def test_a_sent_write_that_fails_fails_its_transaction_whole(db: Database) -> None:
    """A write sent without reading its result (PostgreSQL queues it for the next round
    trip) that breaks a constraint still fails the transaction by the COMMIT at the
    latest: nothing of it, nor of what came before in it, is written."""
    insert = (
        "INSERT INTO beliefs (id, statement, active, version, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?)"
    )
    with pytest.raises((sqlite3.IntegrityError, psycopg.IntegrityError)), db.write() as conn:
        conn.send(insert, ("b-ok", "fine", 1, 1, "t", "t"))
        conn.send(insert, ("b-bad", "active must be 0 or 1", 7, 1, "t", "t"))

    assert 0 == db.connection().execute("SELECT count(*) FROM beliefs").fetchone()[0]
    with db.write() as conn:  # and the connection is usable afterwards
        conn.send(insert, ("b-ok", "fine", 1, 1, "t", "t"))
    assert 1 == db.connection().execute("SELECT count(*) FROM beliefs").fetchone()[0]


def test_a_savepoint_rolled_back_drops_the_writes_it_sent(db: Database, ctx: Context) -> None:
    """Inside a batch, a command that sent a write (queued on PostgreSQL) and then failed
    is undone alone: its write never reaches the store, even a write that would break a
    constraint, and the batch's other commands commit."""
    bad = (
        "INSERT INTO beliefs (id, statement, active, version, created_at, updated_at)"
        " VALUES ('b', 'active must be 0 or 1', 7, 1, 't', 't')"
    )
    with db.batch():
        new_goal(db, ctx, id="g-1")
        with pytest.raises((RuntimeError, sqlite3.IntegrityError)), db.write() as conn:
            conn.send(bad, ())
            raise RuntimeError("the command changed its mind")
        new_goal(db, ctx, id="g-2")

    assert ["g-1", "g-2"] == [r[0] for r in db.connection().execute("SELECT id FROM goals")]
    assert 0 == db.connection().execute("SELECT count(*) FROM beliefs").fetchone()[0]
    assert commands.verify_ledger(db).ok


def test_a_command_that_fails_before_its_first_statement_undoes_nothing_else(
    db: Database, ctx: Context
) -> None:
    """On PostgreSQL a command's SAVEPOINT waits to go with its first statement when
    nothing is queued, and is sent at once behind queued writes. A command in a batch
    that fails before sending any statement rolls back to its own savepoint only, either
    way: what the batch queued before it (here a belief) is written, and so are the
    commands around it."""
    insert = (
        "INSERT INTO beliefs (id, statement, active, version, created_at, updated_at)"
        " VALUES (?, 's', 1, 1, 't', 't')"
    )
    with db.batch() as conn:
        new_goal(db, ctx, id="g-1")
        with pytest.raises(RuntimeError), db.write():  # its SAVEPOINT still queued
            raise RuntimeError("refused before any statement")
        conn.send(insert, ("b-1",))  # queued outside any command's savepoint
        with pytest.raises(RuntimeError), db.write():  # its SAVEPOINT sent behind b-1
            raise RuntimeError("refused before any statement")
        new_goal(db, ctx, id="g-2")

    goals = [row[0] for row in db.connection().execute("SELECT id FROM goals ORDER BY id")]
    beliefs = [row[0] for row in db.connection().execute("SELECT id FROM beliefs")]
    assert (["g-1", "g-2"], ["b-1"]) == (goals, beliefs)
    assert commands.verify_ledger(db).ok


def test_a_queued_write_that_fails_before_a_command_s_savepoint_raises_its_own_error(
    db: Database, ctx: Context
) -> None:
    """A write queued outside any command, then a command: the write's failure is what
    is raised (on PostgreSQL the command's SAVEPOINT is sent at once behind a queue, so
    it never waits behind a write that aborts the round trip), and nothing is written."""
    insert = (
        "INSERT INTO beliefs (id, statement, active, version, created_at, updated_at)"
        " VALUES (?, 's', 1, 1, 't', 't')"
    )
    with (
        pytest.raises((sqlite3.IntegrityError, psycopg.IntegrityError)) as raised,
        db.batch() as conn,
    ):
        conn.send(insert, ("b-1",))
        conn.send(insert, ("b-1",))
        new_goal(db, ctx, id="g-1")

    assert breaks_beliefs_key(raised.value), raised.value
    assert {"goals": 0, "ledger": 0, "outbox": 0} == counts(db)


def test_a_queued_write_failing_at_the_end_of_a_savepoint_undoes_that_command_only(
    db: Database, ctx: Context
) -> None:
    """A command in a batch whose last, queued write fails (sent on PostgreSQL with the
    savepoint's release) is undone alone, as on SQLite, where it fails at once: the
    caller that catches its error goes on, and the batch commits the other commands."""
    insert = (
        "INSERT INTO beliefs (id, statement, active, version, created_at, updated_at)"
        " VALUES (?, 's', 1, 1, 't', 't')"
    )
    refused: list[BaseException] = []
    with db.batch():
        for belief_id in ("b-10", "b-1", "b-1", "b-11"):  # the second b-1 breaks the key
            try:
                with db.write() as conn:
                    conn.send(insert, (belief_id,))
            except (sqlite3.IntegrityError, psycopg.IntegrityError) as exc:
                refused.append(exc)

    rows = db.connection().execute("SELECT id FROM beliefs ORDER BY id").fetchall()
    assert ["b-1", "b-10", "b-11"] == [row[0] for row in rows]
    assert [True] == [breaks_beliefs_key(exc) for exc in refused], refused
