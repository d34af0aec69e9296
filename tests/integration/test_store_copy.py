"""`goalstore store copy`: a deployment moved from SQLite to PostgreSQL (and back), its
refusals, and a copy stopped part way then resumed by running the same command again.

The source is real: the demo scenario plus 5,000 random goals (adopted, updated,
abandoned, deleted), with tasks, beliefs, a decision change, outcomes and a part-relayed
outbox. Every check compares the target with the source as read independently here.
"""

from __future__ import annotations

import functools
import random
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from service import cli, commands
from service.commands import Context
from service.commands.starting import Started
from service.config import Settings
from service.domain.beliefs import BeliefPut
from service.domain.decisions import DecisionChange, OutcomeCreate
from service.domain.goal import GoalCategory
from service.domain.inputs import GoalUpdate
from service.domain.tasks import TaskState
from service.runtime import build_services
from service.scenario import apply_scenario, load_scenario
from service.store import copy as store_copy
from service.store import goals as goal_table
from service.store import ledger as ledger_table
from service.store import outbox as outbox_table
from service.store.db import Database, StoreUnavailable, open_database
from service.testing import (
    MAX_ATTEMPTS,
    FrozenClock,
    default_vetting,
    make_context,
    migrated_database,
    new_goal,
    tampering,
)

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = "deploy/scenarios/goal_flow_001.json"  # relative to ROOT, as apply-scenario wants
RANDOM_GOALS = 5_000
EXIT_INTERRUPTED = 130


# --- sources ---------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_leftover_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The CLI's Settings read the environment: no Redis, no database of the caller's."""
    monkeypatch.delenv("GOALSTORE_REDIS_URL", raising=False)
    monkeypatch.delenv("GOALSTORE_DATABASE", raising=False)
    yield


def scenario_goals() -> int:
    steps = orjson.loads((ROOT / SCENARIO).read_bytes())["steps"]
    return sum(1 for step in steps if step["op"] == "create")


def make_source(path: Path, random_goals: int) -> Path:
    """A SQLite deployment: the demo scenario, `random_goals` random goals, and some of
    everything else (tasks, beliefs, a decision change, outcomes, a relayed outbox)."""
    services = build_services(Settings(database=str(path), redis_url=None))
    db = services.db
    try:
        services.goalstore.migrate()
        assert apply_scenario(services.goalstore, load_scenario(SCENARIO, ROOT))["ok"]
        rng = random.Random(20260101)
        clock = FrozenClock()
        ctx = make_context("loader", clock)
        vetting = default_vetting()
        categories = [c.value for c in GoalCategory]
        adopted: list[str] = []
        with db.batch():
            for n in range(random_goals):
                clock.advance(seconds=rng.randint(1, 90))
                horizon = rng.choice([None, None, 600, 10_080])
                spec: dict[str, Any] = {
                    "text": f"Random goal {n}: {rng.choice(['tidy', 'probe', 'learn', 'fix'])}",
                    "category": rng.choice(categories),
                    "value": round(rng.random(), 4),
                    "effort": round(rng.random(), 4),
                    "risk": round(rng.random(), 4),
                    "metadata": {"n": n, "tag": rng.choice(["a", "b", "ü"])},
                    **({"horizon_max_min": horizon} if horizon else {}),
                }
                goal = new_goal(db, ctx, **spec)
                fate = rng.random()
                if fate < 0.35:
                    commands.adopt_goal(db, ctx, goal.id, vetting=vetting)
                    if horizon is None:
                        adopted.append(goal.id)
                elif fate < 0.5:
                    change = GoalUpdate(value=round(rng.random(), 4), metadata={"n": n, "v": 2})
                    commands.update_goal(db, ctx, goal.id, change, expected_version=1)
                elif fate < 0.6:
                    commands.abandon_goal(db, ctx, goal.id)
                elif fate < 0.7:
                    commands.delete_goal(db, ctx, goal.id)
        the_rest(db, ctx, adopted[:12] if random_goals else [])
    finally:
        services.close()
    return path


def the_rest(db: Database, ctx: Context, adopted: list[str]) -> None:
    """Beliefs, a decision change, outcomes, tasks of the `adopted` goals (verified and
    satisfied, failed, queued), a part-relayed outbox and its watermark."""
    commands.put_belief(db, ctx, "core.rest", BeliefPut(statement="Rest at night"))
    commands.put_belief(db, ctx, "core.old", BeliefPut(statement="Old habit", active=False))
    commands.change_decision(
        db, ctx, "goal_selected", DecisionChange(parameters={"value_weight": 0.45})
    )
    commands.record_outcome(
        db, ctx, "goal_selected", OutcomeCreate(goal_id="G-DEMO-001", metrics={"coherence": 0.7})
    )
    vetting = default_vetting()
    versions = [(g, commands.get_goal(db, g).version) for g in adopted]
    outcomes = commands.start_goals(db, ctx, versions, vetting)
    started = [s for s in outcomes if isinstance(s, Started)]
    assert len(started) == len(adopted), outcomes
    for n, start in enumerate(started):
        task_id, goal_id = start.task.task_id, start.goal.id
        if n % 3 == 0:  # verified and satisfied: an outcome
            evidence = {"summary": f"done {n}"}
            commands.report_task(db, ctx, task_id, TaskState.SUCCEEDED, evidence=evidence,
                                 max_attempts=MAX_ATTEMPTS)  # fmt: skip
            commands.review_task(db, ctx, goal_id, task_id, "verify", max_attempts=MAX_ATTEMPTS)
            commands.satisfy_goal(db, ctx, goal_id, {"summary": f"satisfied {n}"})
        elif n % 3 == 1:
            commands.report_task(db, ctx, task_id, TaskState.FAILED, reason="tool crashed",
                                 max_attempts=MAX_ATTEMPTS)  # fmt: skip
    commands.relay_outbox(db, lambda events: None, limit=400, batch=100)
    with db.write() as conn:
        outbox_table.mark_applied_through(conn, 250)


@pytest.fixture(scope="module")
def big_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo scenario plus 5,000 random goals; tests only read it."""
    return make_source(tmp_path_factory.mktemp("source") / "goalstore.db", RANDOM_GOALS)


@pytest.fixture
def small_source(tmp_path: Path) -> Path:
    """The demo scenario, beliefs, a decision change, an outcome, a relayed outbox."""
    return make_source(tmp_path / "small.db", 0)


# --- reading stores independently of the copy ------------------------------------------


@functools.cache
def copied_tables() -> list[str]:
    """Every table the migrations create but schema_migrations (read off a new database)."""
    with tempfile.TemporaryDirectory() as folder:
        db = migrated_database(Path(folder) / "probe.db")
        try:
            rows = db.connection().execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
            return sorted(str(r[0]) for r in rows if r[0] != "schema_migrations")
        finally:
            db.close()


def rows_by_key(location: str | Path, table: str) -> dict[Any, tuple[Any, ...]]:
    """A table's rows keyed by their first column (the primary key of every table here)."""
    db = open_database(location)
    try:
        rows = [tuple(r) for r in db.connection().tuples(f"SELECT * FROM {table}").fetchall()]
    finally:
        db.close()
    keyed = {row[0]: row for row in rows}
    assert len(rows) == len(keyed)
    return keyed


def counts(location: str | Path, tables: list[str]) -> dict[str, int]:
    return {table: len(rows_by_key(location, table)) for table in tables}


def assert_same_store(source: str | Path, target: str | Path) -> None:
    """Every copied table holds the same rows (keys kept); the goal records and the ledger
    read back alike through the store's own readers."""
    for table in copied_tables():
        assert rows_by_key(source, table) == rows_by_key(target, table), table
    src, dst = open_database(source), open_database(target)
    try:
        with src.read() as a, dst.read() as b:
            assert goal_table.all_records(a) == goal_table.all_records(b)
            assert list(ledger_table.rows(a)) == list(ledger_table.rows(b))
    finally:
        src.close()
        dst.close()


Copy = Callable[..., tuple[int, Any, str]]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Copy:
    """`run(*argv)`: `goalstore ARGV...` in this process: exit code, JSON, stderr."""

    def go(*argv: str) -> tuple[int, Any, str]:
        code = cli.main(list(argv))
        captured = capsys.readouterr()
        return code, orjson.loads(captured.out), captured.err

    return go


def copy_args(source: Path | str, target: Path | str, *extra: str) -> list[str]:
    return ["store", "copy", "--from", str(source), "--to", str(target), *extra]


# --- the move ----------------------------------------------------------------------------


def test_a_deployment_moves_from_sqlite_to_postgresql(
    big_source: Path, postgres_url: str, run: Copy
) -> None:
    tables = copied_tables()
    want = counts(big_source, tables)
    assert RANDOM_GOALS + scenario_goals() == want["goals"]
    assert all(want[t] > 0 for t in tables), want  # every table has something to copy
    with sqlite3.connect(big_source) as raw:
        states = set(raw.execute("SELECT state, deleted_at IS NOT NULL FROM goals"))
    assert {("proposed", 0), ("proposed", 1), ("adopted", 0), ("abandoned", 0)} <= states
    _, checkpoint, _ = run("--database", str(big_source), "ledger", "checkpoint")

    code, report, err = run(*copy_args(big_source, postgres_url))

    assert (0, True, []) == (code, report["ok"], report["problems"])
    assert want == report["tables"]
    assert {"seq": checkpoint["seq"], "hash": checkpoint["hash"]} == report["head"]
    assert f"store copy: goals 5000/{want['goals']}" in err.splitlines()
    assert f"store copy: tasks {want['tasks']}/{want['tasks']}" in err.splitlines()
    assert_same_store(big_source, postgres_url)
    code, verified, _ = run("--database", postgres_url, "ledger", "verify")
    assert (0, True) == (code, verified["ok"])
    assert (checkpoint["seq"], checkpoint["hash"]) == (verified["head_seq"], verified["head_hash"])

    # The target takes new rows: every identity sequence was moved past the copied keys.
    before = {t: max(rows_by_key(big_source, t)) for t in ("goals", "outbox", "tasks")}
    before["decision_outcomes"] = max(rows_by_key(big_source, "decision_outcomes"))
    target = open_database(postgres_url)
    try:
        ctx = make_context("after-the-move")
        goal = new_goal(target, ctx, text="First goal on PostgreSQL")
        commands.adopt_goal(target, ctx, goal.id, vetting=default_vetting())
        version = commands.get_goal(target, goal.id).version
        [started] = commands.start_goals(target, ctx, [(goal.id, version)], default_vetting())
        assert isinstance(started, Started), started
        outcome = commands.record_outcome(
            target, ctx, "goal_selected", OutcomeCreate(goal_id=goal.id, metrics={"coherence": 1})
        )
        conn = target.connection()
        new_keys = {
            "goals": conn.execute("SELECT pk FROM goals WHERE id = ?", (goal.id,)).fetchone()[0],
            "outbox": conn.execute(  # the new goal's first event: its creation
                "SELECT min(id) FROM outbox WHERE goal_id = ?", (goal.id,)
            ).fetchone()[0],
            "tasks": conn.execute(
                "SELECT pk FROM tasks WHERE task_id = ?", (started.task.task_id,)
            ).fetchone()[0],
            "decision_outcomes": outcome["id"],
        }
        # The list cursor (goals.pk) goes on after the copied goals to the new one.
        page, more = goal_table.page(conn, state=None, category=None, include_deleted=True,
                                     after=before["goals"] - 1, limit=5)  # fmt: skip
    finally:
        target.close()
    assert {t: before[t] + 1 for t in before} == new_keys
    assert (2, goal.id, None) == (len(page), page[-1]["id"], more)
    code, verified, _ = run("--database", postgres_url, "ledger", "verify")
    assert (0, True, checkpoint["seq"] + 4) == (code, verified["ok"], verified["head_seq"])


def test_a_copy_goes_back_from_postgresql_to_sqlite(
    small_source: Path, postgres_url: str, tmp_path: Path, run: Copy
) -> None:
    """Any pair of engines: SQLite -> PostgreSQL -> SQLite gives the first store back."""
    assert 0 == run(*copy_args(small_source, postgres_url, "--batch", "3"))[0]

    code, report, _ = run(*copy_args(postgres_url, tmp_path / "back.db", "--batch", "3"))

    assert (0, True, {}) == (code, report["ok"], report["sequences"])
    assert_same_store(small_source, tmp_path / "back.db")


# --- refusals: nothing written --------------------------------------------------------------


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_a_target_that_is_not_empty_is_refused(
    engine: str, small_source: Path, tmp_path: Path, run: Copy, request: pytest.FixtureRequest
) -> None:
    location = str(tmp_path / "busy.db") if engine == "sqlite" else request.getfixturevalue(
        "postgres_url"
    )  # fmt: skip
    target = migrated_database(location)
    new_goal(target, make_context(), id="g-already-here")
    before = {t: rows_by_key(location, t) for t in copied_tables()}

    code, out, err = run(*copy_args(small_source, location))

    assert (4, "conflict", 1, 1) == (code, out["error"], out["target_goals"],
                                     out["target_ledger_rows"])  # fmt: skip
    assert "is not empty" in out["detail"]
    assert "store copy:" not in err  # refused before the first batch
    assert before == {t: rows_by_key(location, t) for t in copied_tables()}
    assert not target.table_exists(store_copy.MARKER)
    target.close()


def test_a_source_with_a_broken_chain_is_refused(
    small_source: Path, postgres_url: str, run: Copy
) -> None:
    source = open_database(small_source)
    with tampering(source) as conn:
        conn.execute("UPDATE ledger SET actor = 'mallory' WHERE seq = 3")
    source.close()

    code, out, _ = run(*copy_args(small_source, postgres_url))

    assert (4, "conflict", 3, "edited") == (code, out["error"], out["first_bad_seq"],
                                            out["damage"])  # fmt: skip
    assert "ledger" in out["detail"] and "broken at seq 3" in out["detail"]
    target = open_database(postgres_url)
    assert (False, False) == (target.table_exists("goals"), target.table_exists("ledger"))
    target.close()


def test_a_finished_copy_another_source_and_a_changed_source_are_refused(
    small_source: Path, postgres_url: str, tmp_path: Path, run: Copy
) -> None:
    assert 0 == run(*copy_args(small_source, postgres_url))[0]
    code, out, _ = run(*copy_args(small_source, postgres_url))
    assert (4, "conflict") == (code, out["error"])
    assert "already holds a finished copy" in out["detail"]

    other = make_source(tmp_path / "other.db", 0)
    code, out, _ = run(*copy_args(other, postgres_url))
    assert (4, str(small_source.resolve())) == (code, out.get("copy_of"))

    # An interrupted copy whose source then changes: resuming it would mix two states.
    target = tmp_path / "half.db"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(store_copy, "insert_rows", interrupt_at("ledger", 1))
        assert EXIT_INTERRUPTED == run(*copy_args(small_source, target, "--batch", "2"))[0]
    source = open_database(small_source)
    new_goal(source, make_context(), id="g-written-meanwhile")
    source.close()
    code, out, _ = run(*copy_args(small_source, target, "--batch", "2"))
    assert (4, "conflict") == (code, out["error"])
    assert "changed since the copy" in out["detail"]


# --- stopped part way, then resumed -------------------------------------------------------


def interrupt_at(table: str, batch: int, error: BaseException | None = None) -> Callable[..., None]:
    """An insert_rows that fails at the `batch`-th batch (from 1) of `table`."""
    seen = {"n": 0}
    real = store_copy.insert_rows

    def insert(conn: Any, sql: str, rows: list[Any]) -> None:
        if sql.startswith(f"INSERT INTO {table} "):
            seen["n"] += 1
            if seen["n"] == batch:
                raise error or KeyboardInterrupt()
        real(conn, sql, rows)

    return insert


def spy_inserts(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Counts the rows each table gets from now on."""
    inserted: dict[str, int] = {}
    real = store_copy.insert_rows

    def insert(conn: Any, sql: str, rows: list[Any]) -> None:
        table = sql.split()[2]
        inserted[table] = inserted.get(table, 0) + len(rows)
        real(conn, sql, rows)

    monkeypatch.setattr(store_copy, "insert_rows", insert)
    return inserted


def test_an_interrupted_copy_resumes_where_it_stopped(
    big_source: Path, postgres_url: str, run: Copy, monkeypatch: pytest.MonkeyPatch
) -> None:
    want = counts(big_source, copied_tables())

    # Ctrl-C during the second batch of goals: the first batch (5,000) stays committed.
    monkeypatch.setattr(store_copy, "insert_rows", interrupt_at("goals", 2))
    code, out, err = run(*copy_args(big_source, postgres_url))
    assert (EXIT_INTERRUPTED, "interrupted", "goals", 5000) == (
        code, out["error"], out["table"], out["copied"],
    )  # fmt: skip
    assert f"goals 5000/{want['goals']}" in out["detail"]
    assert "rerun the same command to resume" in out["detail"]
    assert f"store copy: goals 5000/{want['goals']}" in err.splitlines()
    assert {"goals": 5000, "ledger": 0} == counts(postgres_url, ["goals", "ledger"])

    # The server goes away during the second batch of the ledger.
    monkeypatch.setattr(
        store_copy, "insert_rows", interrupt_at("ledger", 2, StoreUnavailable("cut"))
    )
    code, out, err = run(*copy_args(big_source, postgres_url))
    assert (6, "unavailable") == (code, out["error"])
    assert "stopped at ledger 5000/" in err and "rerun the same command to resume" in err
    assert {"goals": want["goals"], "ledger": 5000} == counts(postgres_url, ["goals", "ledger"])

    # The same command again: only what is missing is copied, and the result is whole.
    inserted = spy_inserts(monkeypatch)
    code, report, err = run(*copy_args(big_source, postgres_url))

    assert (0, True, True, []) == (code, report["ok"], report["resumed"], report["problems"])
    assert want == report["tables"]
    assert want["ledger"] - 5000 == inserted["ledger"]
    assert "goals" not in inserted  # already all there
    assert f"store copy: goals {want['goals']}/{want['goals']}" in err.splitlines()
    assert_same_store(big_source, postgres_url)
    code, verified, _ = run("--database", postgres_url, "ledger", "verify")
    assert (0, True, report["head"]["hash"]) == (code, verified["ok"], verified["head_hash"])


def test_the_copy_reads_the_tables_the_migrations_make() -> None:
    """store copy's list of tables is the migrations' (a new table must be added to it)."""
    assert copied_tables() == sorted(t.name for t in store_copy.TABLES)
