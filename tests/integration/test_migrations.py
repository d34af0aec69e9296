"""Migrations: forward-only, checksummed, and checked read-only by every CLI command, on
each engine (each test runs once per engine, over that engine's migrations)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from service.store.db import open_database
from service.store.dialect import POSTGRESQL, SQLITE
from service.store.migrate import MigrationError, ensure_schema, migrate, migrations_dir
from tests.integration.conftest import CliRunner


@pytest.fixture
def shipped(tmp_path: Path, database_location: str) -> Path:
    """A copy of the shipped migrations of this test's engine, that a test may change."""
    copy = tmp_path / "migrations"
    dialect = POSTGRESQL if database_location.startswith("postgresql:") else SQLITE
    shutil.copytree(migrations_dir(dialect), copy)
    return copy


def test_an_applied_migration_that_changed_is_refused(
    database_location: str, shipped: Path
) -> None:
    """Editing a migration after it ran is an error naming it."""
    db = open_database(database_location)
    migrate(db, shipped)
    first = sorted(shipped.glob("*.sql"))[0]
    first.write_text(first.read_text() + "\n-- an afterthought\n")

    with pytest.raises(MigrationError, match=f"{first.name} was changed after it was applied"):
        migrate(db, shipped)
    db.close()


def test_a_database_from_newer_code_is_refused(database_location: str, shipped: Path) -> None:
    """Migrations the code does not know mean the code is older than the database."""
    db = open_database(database_location)
    migrate(db, shipped)
    last = sorted(shipped.glob("*.sql"))[-1]
    last.unlink()

    with pytest.raises(MigrationError, match="migrations this code does not know"):
        migrate(db, shipped)
    db.close()


@pytest.mark.parametrize("kind", ["gap", "short"])
def test_misnamed_or_gapped_migrations_are_refused(
    shipped: Path, kind: str, database_location: str
) -> None:
    """Files are NNNN_words.sql, numbered without gaps."""
    skipped = len(list(shipped.glob("*.sql"))) + 2  # one number left out
    name = f"{skipped:04d}_gap.sql" if kind == "gap" else f"{skipped}_short.sql"
    (shipped / name).write_text("SELECT 1;")

    with pytest.raises(MigrationError):
        migrate(open_database(database_location), shipped)


def test_pending_migrations_stop_cli_commands_without_writing(
    tmp_path: Path, shipped: Path, run_cli: CliRunner, database_location: str
) -> None:
    """An existing database behind the code is reported, not migrated behind the operator's back."""
    path = database_location
    only_first = tmp_path / "first"
    only_first.mkdir()
    shutil.copy(sorted(shipped.glob("*.sql"))[0], only_first)
    db = open_database(path)
    migrate(db, only_first)
    db.close()

    code, out = run_cli(path, "goals", "list")

    assert 2 == code
    assert "run `goalstore migrate`" in out["detail"]
    check = open_database(path)
    with pytest.raises(MigrationError):
        ensure_schema(check)
    assert 1 == check.connection().execute("SELECT count(*) FROM schema_migrations").fetchone()[0]
    check.close()


def test_configuration_errors_name_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli: CliRunner
) -> None:
    """A bad environment variable is exit 2 with its name, not a traceback."""
    monkeypatch.setenv("GOALSTORE_BUSY_TIMEOUT_MS", "soon")

    code, out = run_cli(tmp_path / "x.db", "goals", "list")

    assert 2 == code
    assert "GOALSTORE_BUSY_TIMEOUT_MS" in out["detail"]
