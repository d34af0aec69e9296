"""`goalstore healthcheck [--extended]` on each engine, on a real Redis: healthy, Redis
configured on a closed port, a tampered ledger, a schema behind this code, a store never
migrated. Exit 0 when healthy (warnings included), 1 when a check failed.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from redis import Redis

from service.store.db import open_database
from service.store.migrate import migrate, migrations_dir
from service.testing import free_port, goal_spec, tampering
from tests.integration.conftest import CliRunner
from tests.integration.test_cli_and_scenario import Cli, write_json

CHECKS = ["store", "schema", "ledger", "outbox", "redis", "queues", "cache"]
EXTENDED = ["store", "schema", "ledger", "replay", "outbox", "redis", "queues", "cache"]


@pytest.fixture
def run(database_location: str, run_cli: CliRunner) -> Cli:
    return Cli(database_location, run_cli)


def statuses(report: dict[str, Any]) -> dict[str, str]:
    return {name: check["status"] for name, check in report["checks"].items()}


def some_goals(run: Cli, tmp_path: Path) -> None:
    """Three goals, two adopted, one abandoned: 6 events."""
    for goal_id in ("G-1", "G-2", "G-3"):
        assert 0 == run("goals", "create", write_json(tmp_path / f"{goal_id}.json",
                                                      goal_spec(id=goal_id)))[0]  # fmt: skip
    assert 0 == run("goals", "adopt", "G-1")[0]
    assert 0 == run("goals", "adopt", "G-2")[0]
    assert 0 == run("goals", "abandon", "G-3")[0]


def test_healthy_with_redis_every_check_ok(
    run: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_url: str,
    redis_client: Redis,
) -> None:  # fmt: skip
    """After a cache rebuild and one more event every check is ok: the schema at this
    code's migrations, the ledger head as `ledger checkpoint` prints it, the one event
    since the rebuild pending in the outbox, Redis answering, both queues empty, the
    cache warm at the rebuild's seq; --extended adds the chain and the replay, both ok."""
    monkeypatch.setenv("GOALSTORE_REDIS_URL", redis_url)
    some_goals(run, tmp_path)
    assert 0 == run("cache", "rebuild")[0]
    assert 0 == run("goals", "abandon", "G-2")[0]  # event 7: after the rebuild
    _, head = run("ledger", "checkpoint")
    known = len(list(migrations_dir(open_database(run.database).dialect).glob("*.sql")))

    code, report = run("healthcheck")
    extended_code, extended = run("healthcheck", "--extended")

    assert (0, True, [], False) == (code, report["ok"], report["failed"], report["extended"])
    assert dict.fromkeys(CHECKS, "ok") == statuses(report)
    checks = report["checks"]
    assert (known, known, known) == (
        checks["schema"]["known"], checks["schema"]["applied"], checks["schema"]["version"]
    )  # fmt: skip
    assert (7, 7, head["hash"]) == (
        head["seq"], checks["ledger"]["head_seq"], checks["ledger"]["head_hash"]
    )  # fmt: skip
    assert 1 == checks["outbox"]["pending"]  # the abandon: no worker applies it
    assert {"goalstore-events": 0, "scheduler": 0} == checks["queues"]["depths"]
    assert (True, 6) == (checks["cache"]["warm"], checks["cache"]["rebuilt_seq"])
    assert (0, True, EXTENDED) == (extended_code, extended["ok"], list(extended["checks"]))
    assert (True, 3) == (
        extended["checks"]["ledger"]["verified"], extended["checks"]["replay"]["goals"]
    )  # fmt: skip


def test_without_redis_configured_it_is_healthy_and_says_so(run: Cli, tmp_path: Path) -> None:
    """No GOALSTORE_REDIS_URL (the CLI's default): healthy, Redis `not configured`, the
    queues and the cache skipped."""
    some_goals(run, tmp_path)

    code, report = run("healthcheck")

    assert (0, True) == (code, report["ok"])
    assert ("ok", "skipped", "skipped") == (
        statuses(report)["redis"], statuses(report)["queues"], statuses(report)["cache"]
    )  # fmt: skip
    assert "not configured" in report["checks"]["redis"]["detail"]


def test_cold_cache_is_a_warning_not_a_failure(
    run: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_url: str,
    redis_client: Redis,
) -> None:  # fmt: skip
    """Redis answering but never rebuilt: the cache check warns, the report stays ok."""
    monkeypatch.setenv("GOALSTORE_REDIS_URL", redis_url)
    some_goals(run, tmp_path)

    code, report = run("healthcheck")

    assert (0, True, "warn", False) == (
        code, report["ok"], statuses(report)["cache"], report["checks"]["cache"]["warm"]
    )  # fmt: skip


def test_redis_on_a_closed_port_fails_the_redis_check(
    run: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis configured where nothing listens: exit 1, `redis` the one failed check, the
    queues and cache skipped, the store's checks still ok."""
    some_goals(run, tmp_path)
    monkeypatch.setenv("GOALSTORE_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")

    code, report = run("healthcheck")

    assert (1, False, ["redis"]) == (code, report["ok"], report["failed"])
    assert {"store": "ok", "schema": "ok", "ledger": "ok", "outbox": "ok", "redis": "fail",
            "queues": "skipped", "cache": "skipped"} == statuses(report)  # fmt: skip


def test_tampered_ledger_fails_only_the_extended_check(run: Cli, tmp_path: Path) -> None:
    """An event's payload edited behind GoalStore's back: the plain healthcheck (head only)
    stays ok; --extended fails the ledger at that seq, and the replay too (the edit
    changed a goal's value in the ledger, not in the table)."""
    some_goals(run, tmp_path)
    db = open_database(run.database)
    try:
        with tampering(db) as conn:
            payload = conn.execute("SELECT payload FROM ledger WHERE seq = 2").fetchone()[0]
            conn.execute("UPDATE ledger SET payload = ? WHERE seq = 2",
                         (payload.replace('"value":0.6', '"value":0.99'),))  # fmt: skip
    finally:
        db.close()

    code, report = run("healthcheck")
    extended_code, extended = run("healthcheck", "--extended")

    assert (0, True) == (code, report["ok"])
    assert (1, ["ledger", "replay"]) == (extended_code, extended["failed"])
    ledger = extended["checks"]["ledger"]
    assert (False, 2, "edited") == (ledger["verified"], ledger["first_bad_seq"], ledger["damage"])
    assert [{"goal_id": "G-2", "fields": {"value": {"ledger": 0.99, "table": 0.6}}}] == (
        extended["checks"]["replay"]["differences"]
    )


def test_schema_behind_fails_and_skips_what_needs_it(
    database_location: str, run_cli: CliRunner, tmp_path: Path
) -> None:
    """A store migrated to all but the last migration: exit 1, the schema check names the
    pending file, the ledger and outbox checks are skipped; nothing is migrated."""
    db = open_database(database_location)
    source = migrations_dir(db.dialect)
    files = sorted(source.glob("*.sql"))
    older = tmp_path / "older"
    older.mkdir()
    for path in files[:-1]:
        shutil.copy(path, older / path.name)
    migrate(db, older)
    db.close()

    code, report = run_cli(database_location, "healthcheck")

    assert (1, ["schema"]) == (code, report["failed"])
    schema = report["checks"]["schema"]
    assert (len(files), len(files) - 1) == (schema["known"], schema["applied"])
    assert files[-1].name in schema["detail"]
    assert ("skipped", "skipped") == (statuses(report)["ledger"], statuses(report)["outbox"])
    again = open_database(database_location)
    try:
        count = again.connection().execute("SELECT count(*) FROM schema_migrations").fetchone()
        assert len(files) - 1 == count[0]
    finally:
        again.close()


def test_store_never_migrated_fails_and_stays_unmigrated(
    database_location: str, run_cli: CliRunner
) -> None:
    """A store with no schema (an empty SQLite file, an empty PostgreSQL schema): exit 1,
    `not migrated`; the healthcheck creates nothing."""
    if not database_location.startswith("postgresql://"):
        Path(database_location).touch()
    code, report = run_cli(database_location, "healthcheck", "--extended")

    assert (1, ["schema"], 0) == (code, report["failed"], report["checks"]["schema"]["applied"])
    assert "not migrated" in report["checks"]["schema"]["detail"]
    assert ("skipped", "skipped") == (statuses(report)["ledger"], statuses(report)["replay"])
    db = open_database(database_location)
    try:
        assert not db.table_exists("schema_migrations")
    finally:
        db.close()


def test_a_missing_sqlite_file_fails_the_store_check_and_is_not_created(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """Pointed at a SQLite file that does not exist, the healthcheck fails `store`
    (naming the path) instead of creating an empty database and its directory."""
    missing = tmp_path / "nowhere" / "goalstore.db"

    code, report = run_cli(str(missing), "healthcheck")

    assert (1, ["store"]) == (code, report["failed"])
    assert f"no database file at {missing}" == report["checks"]["store"]["detail"]
    assert not missing.parent.exists()
