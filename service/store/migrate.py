"""Forward-only migrations: numbered SQL files applied in order, each recorded with a checksum.

Each engine has its folder (`migrations/sqlite/`, `migrations/postgresql/`), numbered
alike: migration N makes the same tables on both. `migrate` runs inside the store's
write transaction, so two nodes migrating at once (two release steps) queue on the
write lock (a PostgreSQL advisory lock) and the second finds everything applied.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from service.domain.timefmt import format_ts
from service.store.db import Connection, Database
from service.store.dialect import Dialect

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")

_LEDGER_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    checksum    TEXT NOT NULL,
    applied_at  TEXT NOT NULL
)
"""


class MigrationError(Exception):
    """The migrations on disk and those applied to the database disagree."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def migrations_dir(dialect: Dialect) -> Path:
    """Inside the package in a wheel install; beside it in a source checkout."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "migrations", here.parent / "migrations"):
        if (candidate / dialect.name).is_dir():
            return candidate / dialect.name
    raise MigrationError(f"no migrations/{dialect.name} directory next to {here}")


def load_migrations(directory: Path) -> list[Migration]:
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if match is None:
            raise MigrationError(f"{path.name}: migration files are named NNNN_words.sql")
        found.append(Migration(int(match.group(1)), path.name, path.read_text()))
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise MigrationError(f"migration numbers must run 1, 2, 3… without gaps: {versions}")
    return found


def migrate(db: Database, directory: Path | None = None) -> list[str]:
    """Apply what is not applied yet; return the names applied. Safe to run again."""
    migrations = load_migrations(directory or migrations_dir(db.dialect))
    applied_now: list[str] = []
    with db.write() as tx:
        tx.execute(_LEDGER_TABLE)
        applied = {row["version"]: row for row in tx.execute("SELECT * FROM schema_migrations")}
        for migration in migrations:
            done = applied.get(migration.version)
            if done is not None:
                if done["checksum"] != migration.checksum:
                    raise MigrationError(
                        f"{migration.name} was changed after it was applied; "
                        "add a new migration instead"
                    )
                continue
            _apply(tx, migration)
            tx.execute(
                "INSERT INTO schema_migrations (version, name, checksum, applied_at)"
                " VALUES (?, ?, ?, ?)",
                (
                    migration.version,
                    migration.name,
                    migration.checksum,
                    format_ts(datetime.now(UTC)),
                ),
            )
            applied_now.append(migration.name)
        unknown = set(applied) - {m.version for m in migrations}
        if unknown:
            raise MigrationError(
                f"the database has migrations this code does not know: {sorted(unknown)}"
            )
    return applied_now


def ensure_schema(db: Database, directory: Path | None = None) -> None:
    """A new database gets the schema; an existing one must already be up to date.

    Reads only, unless the database is new: auditing a copy never changes it, and a
    busy database does not block a read command on the write lock.
    """
    if not db.table_exists("schema_migrations"):
        migrate(db, directory)
        return
    check_current(db, directory)


def check_current(
    db: Database, directory: Path | None = None, fix: str = "run `goalstore migrate`"
) -> None:
    """A migrated database at exactly this code's migrations, else MigrationError naming
    what is pending (and `fix`) or what this code does not know. Reads only."""
    applied = {
        int(row[0]) for row in db.connection().execute("SELECT version FROM schema_migrations")
    }
    known = load_migrations(directory or migrations_dir(db.dialect))
    pending = [m.name for m in known if m.version not in applied]
    if pending:
        raise MigrationError(f"{db.shown} needs migrations {', '.join(pending)}: {fix}")
    unknown = applied - {m.version for m in known}
    if unknown:
        raise MigrationError(
            f"{db.shown} has migrations this code does not know: {sorted(unknown)}"
        )


def _apply(tx: Connection, migration: Migration) -> None:
    if tx.dialect.name == "sqlite":
        # executescript would COMMIT our transaction, so run statement by statement.
        for statement in _statements(migration.sql):
            tx.execute(statement)
    else:  # PostgreSQL runs a whole script inside the open transaction
        tx.execute(migration.sql)


def _statements(sql: str) -> list[str]:
    """Split a script into complete statements (triggers included) with sqlite3's own test."""
    statements, current = [], ""
    for line in sql.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            if current.strip():
                statements.append(current.strip())
            current = ""
    if current.strip() and not current.strip().startswith("--"):
        raise MigrationError(f"incomplete SQL statement at the end: {current.strip()[:60]}")
    return statements
