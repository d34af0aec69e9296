"""Copy a deployment's store into another (SQLite to PostgreSQL, or any pair), resumably.

`copy_store(source, target, progress)`:

1. checks the source is a GoalStore at this code's schema, and the target is empty (no
   goal, no ledger row) or holds an unfinished copy of the same, unchanged source;
2. verifies the source's ledger chain (a broken chain is refused: nothing is written);
3. migrates the target and records the copy in a table of its own, `store_copy` (one
   row: the source, its ledger head when the copy began, how far each table got);
4. copies every table but schema_migrations, in key order (primary keys kept), in
   batches of `batch_rows`: each batch is one target transaction that also moves the
   progress mark, so a copy stopped anywhere resumes after the last committed batch;
5. moves PostgreSQL's identity sequences past the copied keys, verifies the target's
   chain, and compares the heads and the row counts; only then is the copy marked done.

The source is read in one snapshot (the chain verified is the one copied); its writers
must be stopped all the same, and an interrupted copy whose source has moved on since is
not resumed. Nothing here prints: progress is reported to the callback.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from service.domain.errors import ErrorKind, GoalStoreError
from service.domain.ledger import ChainReport
from service.domain.timefmt import format_ts
from service.store import catalog
from service.store import ledger as ledger_table
from service.store.db import Connection, Database
from service.store.migrate import MigrationError, check_current, migrate

BATCH_ROWS = 5_000
MARKER = "store_copy"


@dataclass(frozen=True)
class Table:
    name: str
    key: str  # the primary key: the copy's order and where a resumed copy goes on from


# Every table the migrations make but schema_migrations, each after those it refers to.
TABLES = (
    Table("goals", "pk"),
    Table("ledger", "seq"),
    Table("outbox", "id"),  # -> ledger
    Table("outbox_watermark", "id"),
    Table("beliefs", "id"),
    Table("decisions", "decision_id"),
    Table("decision_outcomes", "id"),  # -> decisions
    Table("tasks", "pk"),  # -> goals
)
NOT_COPIED = frozenset({"schema_migrations", MARKER})

# The copy's own record in the target: made by the copy, not by a migration.
_MARKER_TABLE = f"""
CREATE TABLE IF NOT EXISTS {MARKER} (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    source       TEXT NOT NULL,
    source_head  TEXT NOT NULL,
    progress     TEXT NOT NULL,
    started_at   TEXT NOT NULL,
    finished_at  TEXT
)
"""


@dataclass
class CopyRefused(GoalStoreError):
    """`store copy` will not start (or resume): the target holds other data, or the source
    cannot be copied as it is. Nothing was copied."""

    kind = ErrorKind.CONFLICT
    code = "copy-refused"
    title = "Store copy refused"

    reason: str
    details: dict[str, Any] = field(default_factory=dict)

    def fields(self) -> dict[str, Any]:
        return dict(self.details)

    def __str__(self) -> str:
        return self.reason


@dataclass(frozen=True)
class Step:
    """How far one table's copy is: reported before it starts and after each batch."""

    table: str
    copied: int
    total: int

    def __str__(self) -> str:
        return f"{self.table} {self.copied}/{self.total}"


Progress = Callable[[Step], None]


@dataclass(frozen=True)
class CopyReport:
    ok: bool
    source: str
    target: str
    resumed: bool  # an interrupted copy was taken up again
    tables: dict[str, int]  # rows per table in the source (all copied when ok)
    head: dict[str, Any]  # the source ledger's head: seq and hash
    target_ledger: ChainReport  # the target's chain, verified after the copy
    sequences: dict[str, int]  # PostgreSQL target: the next value of each identity column
    problems: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "source": self.source,
            "target": self.target,
            "resumed": self.resumed,
            "tables": self.tables,
            "head": self.head,
            "target_ledger": self.target_ledger.as_dict(),
            "sequences": self.sequences,
            "problems": self.problems,
        }


def copy_store(
    source: Database,
    target: Database,
    progress: Progress | None = None,
    *,
    batch_rows: int = BATCH_ROWS,
) -> CopyReport:
    """Copy `source` into `target` (see the module's docstring); rerun to resume."""
    if batch_rows < 1:
        raise ValueError("batch_rows must be at least 1")
    report_step = progress or (lambda step: None)
    origin = identity(source)
    if origin == identity(target):
        raise CopyRefused(f"{source.shown} is both the source and the target")
    _check_source_schema(source)
    marker = _claimable(target, origin)

    with source.read() as src:  # one snapshot: the chain verified is the one copied
        chain = ledger_table.verify(src)
        if not chain.ok:
            raise CopyRefused(
                f"the ledger of {source.shown} is broken at seq {chain.first_bad_seq} "
                f"({chain.damage}: {chain.reason}); `goalstore ledger verify` shows it. "
                "Nothing was copied",
                {"first_bad_seq": chain.first_bad_seq, "damage": chain.damage},
            )
        head = f"{chain.head_seq}:{chain.head_hash}"
        if marker is not None and marker["source_head"] != head:
            raise CopyRefused(
                f"{source.shown} changed since the copy into {target.shown} began (ledger "
                f"head {marker['source_head']}, now {head}): stop every writer of the "
                "source, empty the target and copy again",
                {"began_at_head": marker["source_head"], "head": head},
            )

        migrate(target)
        state = marker["progress"] if marker is not None else _start(target, origin, head)
        columns = _columns_of(src, target)
        totals = {t.name: catalog.count(src, t.name) for t in TABLES}
        for table in TABLES:
            _copy_table(src, target, table, columns[table.name], totals[table.name], state,
                        report_step, batch_rows)  # fmt: skip

    with target.write() as dst:
        sequences = catalog.move_identities(dst, {t.name for t in TABLES})
    # The planner's statistics of the tables just filled: without them PostgreSQL plans
    # for empty tables (sequential scans where an index answers in microseconds) until
    # autovacuum gets round to it.
    target.connection().execute("ANALYZE")
    target_chain = _verify(target)
    problems = _compare(chain, target_chain, totals, target)
    if not problems:
        with target.write() as dst:
            dst.execute(
                f"UPDATE {MARKER} SET finished_at = ? WHERE id = 1", (format_ts(datetime.now(UTC)),)
            )
    return CopyReport(
        ok=not problems,
        source=source.shown,
        target=target.shown,
        resumed=marker is not None,
        tables=totals,
        head={"seq": chain.head_seq, "hash": chain.head_hash},
        target_ledger=target_chain,
        sequences=sequences,
        problems=problems,
    )


def identity(db: Database) -> str:
    """What names a store in the copy's record: a SQLite file's absolute path, or the URL
    without its password."""
    if db.dialect.name == "sqlite":
        return str(Path(db.location).resolve())
    return db.shown


# --- before anything is written ---------------------------------------------------------


def _check_source_schema(source: Database) -> None:
    """The source is a GoalStore at exactly the schema this code knows (its tables are the
    ones TABLES lists); reads only."""
    if not source.table_exists("schema_migrations"):
        raise MigrationError(f"{source.shown} is not a GoalStore database (no schema_migrations)")
    check_current(source, fix="run `goalstore --database SOURCE migrate` first")
    present = catalog.tables(source.connection())
    missing = {t.name for t in TABLES} - present
    extra = present - {t.name for t in TABLES} - NOT_COPIED
    if missing or extra:  # the migrations and TABLES disagree: this module is out of date
        raise MigrationError(
            f"store copy does not know the tables of {source.shown}: "
            f"missing {sorted(missing)}, unknown {sorted(extra)}"
        )


def _claimable(target: Database, origin: str) -> dict[str, Any] | None:
    """The unfinished copy of `origin` the target holds (to resume), or None when the
    target is empty; refuses any other target. Reads only."""
    conn = target.connection()
    if target.table_exists(MARKER):
        row = conn.execute(
            f"SELECT source, source_head, progress, started_at, finished_at FROM {MARKER}"
        ).fetchone()
        if row is not None:
            if row["source"] != origin:
                raise CopyRefused(
                    f"{target.shown} holds a copy of {row['source']}, not of the source "
                    "asked for: copy into an empty store",
                    {"copy_of": row["source"]},
                )
            if row["finished_at"] is not None:
                raise CopyRefused(
                    f"{target.shown} already holds a finished copy of {origin} "
                    f"(finished at {row['finished_at']})",
                    {"copy_of": row["source"], "finished_at": row["finished_at"]},
                )
            return {
                "source_head": row["source_head"],
                "progress": orjson.loads(row["progress"]),
            }
    occupied = _occupied(target)
    if occupied:
        raise CopyRefused(
            f"{target.shown} is not empty ({occupied['goals']} goals, {occupied['ledger']} "
            "ledger rows): store copy only writes into an empty store (or resumes its own "
            "unfinished copy)",
            {"target_goals": occupied["goals"], "target_ledger_rows": occupied["ledger"]},
        )
    return None


def _occupied(target: Database) -> dict[str, int]:
    """How many goals and ledger rows the target holds, if any."""
    conn = target.connection()
    counts = {
        name: catalog.count(conn, name) if target.table_exists(name) else 0
        for name in ("goals", "ledger")
    }
    return counts if any(counts.values()) else {}


def _start(target: Database, origin: str, head: str) -> dict[str, Any]:
    """Record a new copy in the (migrated, still empty) target; its progress: none yet."""
    state: dict[str, Any] = {}
    with target.write() as dst:
        dst.execute(_MARKER_TABLE)
        if any(catalog.count(dst, name) for name in ("goals", "ledger")):  # written to meanwhile
            raise CopyRefused(f"{target.shown} was written to while the copy was starting")
        dst.execute(
            f"INSERT INTO {MARKER} (id, source, source_head, progress, started_at)"
            " VALUES (1, ?, ?, ?, ?)",
            (origin, head, orjson.dumps(state).decode(), format_ts(datetime.now(UTC))),
        )
    return state


# --- the copy ---------------------------------------------------------------------------


def _copy_table(
    src: Connection, target: Database, table: Table, columns: Sequence[str], total: int,
    state: dict[str, Any], report: Progress, batch_rows: int,
) -> None:  # fmt: skip
    """Copy what is left of one table: each batch, with the progress mark that says it is
    there, is one transaction of the target."""
    done = state.setdefault(table.name, {"after": None, "copied": 0})
    report(Step(table.name, done["copied"], total))
    insert, key_at = _insert_sql(table, columns), list(columns).index(table.key)
    for rows in _batches(src, table, columns, done["after"], batch_rows):
        mark = {"after": rows[-1][key_at], "copied": done["copied"] + len(rows)}
        with target.write() as dst:
            insert_rows(dst, insert, rows)
            dst.execute(
                f"UPDATE {MARKER} SET progress = ? WHERE id = 1",
                (orjson.dumps({**state, table.name: mark}).decode(),),
            )
        done.update(mark)
        report(Step(table.name, done["copied"], total))


def _batches(
    src: Connection, table: Table, columns: Sequence[str], after: Any, size: int
) -> Iterator[list[tuple[Any, ...]]]:
    """The source's rows of `table` past key `after` (None: from the first), in key order,
    `size` at a time."""
    select, key_at = (
        f"SELECT {', '.join(columns)} FROM {table.name}",
        list(columns).index(table.key),
    )
    while True:
        if after is None:
            cursor = src.tuples(f"{select} ORDER BY {table.key} LIMIT ?", (size,))
        else:
            cursor = src.tuples(
                f"{select} WHERE {table.key} > ? ORDER BY {table.key} LIMIT ?", (after, size)
            )
        rows = [tuple(row) for row in cursor.fetchall()]
        if not rows:
            return
        yield rows
        after = rows[-1][key_at]


def _insert_sql(table: Table, columns: Sequence[str]) -> str:
    """Rows in as they are. The ledger's rows are only ever inserted (its triggers refuse
    anything else); other tables take the source's row over one a migration seeded (the
    goal_selected decision, the outbox watermark)."""
    sql = (
        f"INSERT INTO {table.name} ({', '.join(columns)})"
        f" VALUES ({', '.join('?' for _ in columns)})"
    )
    if table.name == "ledger":
        return sql
    sets = ", ".join(f"{c} = excluded.{c}" for c in columns if c != table.key)
    return f"{sql} ON CONFLICT ({table.key}) DO UPDATE SET {sets}"


def insert_rows(conn: Connection, sql: str, rows: list[Any]) -> None:
    """One batch into the target (a seam for tests that interrupt a copy)."""
    conn.executemany(sql, rows)


# --- checks -----------------------------------------------------------------------------


def _verify(db: Database) -> ChainReport:
    with db.read() as conn:
        return ledger_table.verify(conn)


def _compare(
    source: ChainReport, target: ChainReport, totals: dict[str, int], db: Database
) -> list[str]:
    problems = []
    if not target.ok:
        problems.append(
            f"the target's ledger is broken at seq {target.first_bad_seq} "
            f"({target.damage}: {target.reason})"
        )
    if (source.head_seq, source.head_hash) != (target.head_seq, target.head_hash):
        problems.append(
            f"ledger heads differ: source {source.head_seq}:{source.head_hash}, "
            f"target {target.head_seq}:{target.head_hash}"
        )
    conn = db.connection()
    for name, total in totals.items():
        copied = catalog.count(conn, name)
        if copied != total:
            problems.append(f"{name}: {total} rows in the source, {copied} in the target")
    return problems


def _columns_of(src: Connection, target: Database) -> dict[str, list[str]]:
    """Each table's columns, in the source's order; the target's must be the same."""
    dst = target.connection()
    found = {}
    for table in TABLES:
        mine, theirs = catalog.columns(src, table.name), catalog.columns(dst, table.name)
        if set(mine) != set(theirs):
            raise MigrationError(
                f"{table.name} has other columns in the source ({', '.join(mine)}) than in "
                f"the target ({', '.join(theirs)})"
            )
        found[table.name] = mine
    return found
