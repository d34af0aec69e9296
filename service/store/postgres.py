"""PostgreSQL as the durable store: many web and worker processes, on many hosts.

The same tables, queries and guarantees as SQLite (service/store/db.py):

- a write transaction takes one advisory lock first (`pg_advisory_xact_lock`, keyed by
  the schema), so writes queue as they do on SQLite's write lock: the ledger is one hash
  chain, and a command's reads and its writes see the same rows, whichever host runs it.
  Reads never take it;
- a read is one REPEATABLE READ snapshot;
- connections come from a bounded psycopg pool, not checked before use (that would be a
  round trip per transaction): after a restart or a cut connection, a transaction whose
  begin finds its connection dead begins again on the next one, and a single SELECT
  outside a transaction is read again; while the server is down a statement fails fast
  as StoreUnavailable (503 + Retry-After) and nothing is half written, since the
  transaction it was in never commits.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import ClientCursor
from psycopg import errors as pg_errors
from psycopg.rows import tuple_row
from psycopg_pool import ConnectionPool, PoolTimeout

from service.domain.errors import GoalStoreError
from service.store import ledger as ledger_table
from service.store.db import (
    _INHERITED,
    Connection,
    Cursor,
    Database,
    Read,
    StoreBusy,
    StoreUnavailable,
)
from service.store.dialect import POSTGRESQL
from service.store.pg_rows import Materialized, has_rows, row_factory

log = logging.getLogger(__name__)

# Errors that mean "try again": the lock or the statement timed out, or two
# transactions collided. Everything else that is operational means the server is gone.
_BUSY = (pg_errors.LockNotAvailable, pg_errors.QueryCanceled, pg_errors.DeadlockDetected,
         pg_errors.SerializationFailure)  # fmt: skip


def _store_error(exc: psycopg.Error) -> GoalStoreError | None:
    if isinstance(exc, _BUSY):
        return StoreBusy(str(exc).strip())
    if isinstance(exc, psycopg.OperationalError):  # PoolTimeout included
        return StoreUnavailable(str(exc).strip() or type(exc).__name__)
    return None


def _bound(conn: PgConnection, reads: Sequence[Read]) -> list[str]:
    """`reads` as statements of one simple-protocol query (which takes no parameters):
    their parameters bound as literals by psycopg."""
    bind = ClientCursor(conn.raw).mogrify
    return [bind(_translate(sql), parameters) for sql, parameters in reads]


def _following(cursor: Any, count: int) -> list[list[Any]]:
    """The rows of the `count` results after the one `cursor` is at."""
    rows = []
    for _ in range(count):
        cursor.nextset()
        rows.append(cursor.fetchall())
    return rows


@lru_cache(maxsize=4096)
def _translate(sql: str) -> str:
    """`?` placeholders as psycopg's `%s` (a literal `%` doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


_ROLLBACK_TO = "ROLLBACK TO SAVEPOINT "


def _rows(bind: Any, text: str, rows: Any) -> list[str]:
    """An `INSERT … VALUES (…)` of many rows (what send_many is given: db.insert_rows)
    as one statement of many VALUES rows: parsed and planned once, where a statement a
    row cost a decomposition of 100 children 17 → 25 ms. Any other statement: one a row."""
    if not rows:
        return []
    head, values, row = text.rpartition("VALUES ")
    if not values or not (row.startswith("(") and row.endswith(")")):
        return [bind(text, parameters) for parameters in rows]
    return [head + values + ", ".join(bind(row, parameters) for parameters in rows)]


class PgConnection:
    """One pooled psycopg connection behind the store's Connection protocol."""

    dialect = POSTGRESQL

    def __init__(self, raw: psycopg.Connection[Any]) -> None:
        self.raw = raw
        self.ledger_head: tuple[int, str] | None = None
        self.first: list[Any] = []
        self.together = False
        self._queued: list[tuple[str, Any, bool]] = []  # (sql, parameters, many)

    def _run(self, cursor: psycopg.Cursor[Any], sql: str, parameters: Any) -> Cursor:
        try:
            if self._queued:  # the queued statements and this one: one round trip
                queued, self._queued = self._queued, []
                cursor.execute(self._script(queued, sql, parameters))
                while cursor.nextset():  # to this statement's result
                    pass
            elif parameters:
                cursor.execute(_translate(sql), parameters)
            else:  # no parameters: the text is sent as it is (a script, `%` and all)
                cursor.execute(sql)
        except psycopg.Error as exc:
            mapped = _store_error(exc)
            if mapped is None:
                raise
            raise mapped from exc
        return cursor

    def _script(self, queued: list[tuple[str, Any, bool]], sql: str, parameters: Any) -> str:
        """The queued statements and `sql` as one simple-protocol query: a single message,
        and a single answer. (A pipeline of prepared statements costs the server no parse,
        but each statement is a message and an answer, and on two busy cores each wakes
        the other side: measured slower, with the write lock held the while.) Parameters
        are bound by psycopg as literals, as the begin's first read is."""
        bind = ClientCursor(self.raw).mogrify
        script: list[str] = []
        for queued_sql, queued_parameters, many in queued:
            text = _translate(queued_sql)
            if many:
                script.extend(_rows(bind, text, queued_parameters))
            else:  # no parameters: the text as it is, as execute() sends it
                script.append(bind(text, queued_parameters) if queued_parameters else queued_sql)
        script.append(bind(_translate(sql), parameters) if parameters else sql)
        return "; ".join(script)

    def send(self, sql: str, parameters: Any, /) -> None:
        """A write whose result nobody reads (an INSERT): queued, and sent in one round
        trip with the next statement that is executed (at the latest the COMMIT). Its
        error, if any, is raised there, and the transaction rolls back whole.

        A SAVEPOINT is queued only when nothing else is: behind a write that fails it
        would never be made, and the command that rolls back to it would fail for that
        instead of the write's error being raised, outside the command. Where any such
        error fails the whole transaction (`together`: a group of callers' commands, which
        then runs again, each command alone; a batch as one) it is queued all the same.

        A ROLLBACK TO SAVEPOINT drops what is queued after its savepoint (see _drop_after)."""
        if sql.startswith(_ROLLBACK_TO):
            self._drop_after(f"SAVEPOINT {sql[len(_ROLLBACK_TO) :]}")
        elif self._queued and sql.startswith("SAVEPOINT ") and not self.together:
            self.execute(sql, parameters)
            return
        self._queued.append((sql, parameters, False))

    def send_many(self, sql: str, rows: Any, /) -> None:
        """send() for many parameter rows of one statement (parsed once)."""
        self._queued.append((sql, rows, True))

    def execute(self, sql: str, parameters: Any = (), /) -> Cursor:
        if sql == "COMMIT":
            raw = self.raw.cursor()
            cursor = self._run(raw, sql, parameters)
            if raw.statusmessage == "ROLLBACK":  # PostgreSQL's answer to an aborted one
                raise RuntimeError(
                    "COMMIT rolled the transaction back: a statement in it had failed and "
                    "its error was caught without rolling back"
                )
            return cursor
        if sql == "ROLLBACK":
            self._queued.clear()
        elif sql.startswith(_ROLLBACK_TO):
            self._drop_after(f"SAVEPOINT {sql[len(_ROLLBACK_TO) :]}")
        return self._run(self.raw.cursor(), sql, parameters)

    def _drop_after(self, savepoint: str) -> None:
        """What a savepoint undoes was queued after it: dropped unsent. A SAVEPOINT still
        queued is kept, and goes with the rollback; what was queued before it is another
        command's (in a group, see send). One that was sent came before everything queued."""
        at = len(self._queued)
        while at and self._queued[at - 1][0] != savepoint:
            at -= 1
        del self._queued[at:]

    def tuples(self, sql: str, parameters: Any = (), /) -> Cursor:
        return self._run(self.raw.cursor(row_factory=tuple_row), sql, parameters)

    def executemany(self, sql: str, parameters: Any, /) -> Cursor:
        if self._queued:
            self.execute("SELECT 1")  # what is queued goes first
        cursor = self.raw.cursor()
        try:
            cursor.executemany(_translate(sql), parameters)
        except psycopg.Error as exc:
            mapped = _store_error(exc)
            if mapped is None:
                raise
            raise mapped from exc
        return cursor


class _StatementConnection:
    """Single statements outside a transaction: each takes a pooled connection, runs in
    autocommit, and gives it back with its rows read."""

    dialect = POSTGRESQL
    ledger_head: tuple[int, str] | None = None  # never in a write transaction
    first: list[Any] = []  # noqa: RUF012 (never in a write transaction)
    together = False

    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    def _one(self, sql: str, parameters: Any, tuples: bool) -> Cursor:
        # A read on a connection the server dropped while it was pooled is read again on
        # the next (Database._begun); a write is not: whether it ran is not known.
        again = sql.lstrip()[:6].upper() == "SELECT"
        for attempt in self._db._tries():
            with self._db._checkout() as conn:
                run = conn.tuples if tuples else conn.execute
                try:
                    cursor = run(sql, parameters)
                except StoreUnavailable:
                    if not (again and self._db._try_next(conn, attempt)):
                        raise
                    continue
                rows = cursor.fetchall() if has_rows(cursor) else []
                return Materialized(rows, cursor.rowcount)
        raise AssertionError("unreachable")  # pragma: no cover

    def execute(self, sql: str, parameters: Any = (), /) -> Cursor:
        return self._one(sql, parameters, tuples=False)

    def tuples(self, sql: str, parameters: Any = (), /) -> Cursor:
        return self._one(sql, parameters, tuples=True)

    def send(self, sql: str, parameters: Any, /) -> None:
        self.execute(sql, parameters)

    def send_many(self, sql: str, rows: Any, /) -> None:
        self.executemany(sql, rows)

    def executemany(self, sql: str, parameters: Any, /) -> Cursor:
        with self._db._checkout() as conn:
            cursor = conn.executemany(sql, parameters)
            return Materialized([], cursor.rowcount)


def redact(url: str) -> str:
    """The URL without its password, for logs and messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


class PostgresDatabase(Database):
    dialect = POSTGRESQL

    def __init__(self, url: str, busy_timeout_ms: int = 5_000, pool_size: int = 10) -> None:
        super().__init__()
        self.url = url
        self.location = url
        self.shown = redact(url)
        self.busy_timeout_ms = busy_timeout_ms
        self.pooled = pool_size
        self._pool: ConnectionPool[psycopg.Connection[Any]] | None = None
        self._pool_lock = threading.Lock()
        self._write_lock_key: int | None = None

    # --- the pool ------------------------------------------------------------------
    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        # A queued writer waits at most the busy timeout for the write lock, then 503s.
        conn.execute(f"SET lock_timeout = {int(self.busy_timeout_ms)}")
        # Every query here is short and indexed: JIT compilation only ever costs (a plan
        # whose estimate swells, e.g. a recursive tree query over stale statistics, spent
        # 800 ms compiling a query that runs in 0.1 ms).
        conn.execute("SET jit = off")

    def pool(self) -> ConnectionPool[psycopg.Connection[Any]]:
        self._this_process()
        if self._pool is None:
            with self._pool_lock:
                if self._pool is None:
                    pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
                        self.url,
                        kwargs={"autocommit": True, "row_factory": row_factory},
                        min_size=1,
                        max_size=self.pooled,
                        configure=self._configure,
                        # No check before each use (a round trip per transaction): a
                        # connection the server dropped while pooled fails its begin, and
                        # the transaction begins again on a fresh one (Database._begun);
                        # a single read outside a transaction is read again (_one).
                        timeout=max(self.busy_timeout_ms / 1000, 0.5),
                        # Give a failed connection attempt up after a few seconds (its
                        # backoff doubles with no cap): the next request starts a fresh
                        # one, so the pool is back within a request of the server's return.
                        reconnect_timeout=5,
                        name="goalstore",
                        open=False,
                    )
                    pool.open(wait=False)
                    self._pool = pool
        return self._pool

    def _forget_inherited(self) -> None:
        if self._pool is not None:
            _INHERITED.append(self._pool)
        self._pool = None
        self._pool_lock = threading.Lock()

    @contextmanager
    def _checkout(self) -> Iterator[PgConnection]:
        try:
            with self.pool().connection() as raw:
                yield PgConnection(raw)
        except PoolTimeout as exc:
            raise StoreUnavailable(f"no connection to {self.shown} ({exc})") from exc
        except psycopg.OperationalError as exc:  # lost while handing it back
            raise StoreUnavailable(str(exc).strip()) from exc

    def _statement_connection(self) -> Connection:
        return _StatementConnection(self)

    # --- transactions ----------------------------------------------------------------
    def _lock_key(self, conn: PgConnection) -> int:
        """The write lock's advisory-lock key: one per schema, so two deployments that
        share a database (in different schemas) never queue on each other."""
        if self._write_lock_key is None:
            (schema,) = conn.execute("SELECT current_schema()").fetchone()
            digest = hashlib.sha256(f"goalstore-writes:{schema}".encode()).digest()
            self._write_lock_key = int.from_bytes(digest[:8], "big", signed=True)
        return self._write_lock_key

    def _begin(self, conn: Any, *, write: bool, reads: Sequence[Read] = ()) -> list[list[Any]]:
        if not write:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            return super()._reads(conn, reads)
        # One round trip: begin, take the write lock, then read the ledger's head (after
        # the lock: the head every later append of this transaction builds on) and the
        # `reads`.
        key = self._lock_key(conn)
        lock = f"BEGIN; SELECT pg_advisory_xact_lock({key})"
        try:
            script = [lock, ledger_table.HEAD_SQL, *_bound(conn, reads)]
            cursor: Any = conn.execute("; ".join(script))
        except pg_errors.UndefinedTable:  # no ledger yet: the first migration's turn
            conn.execute("ROLLBACK")
            conn.execute(lock)
            return super()._reads(conn, reads)  # one at a time: each raises, or reads
        cursor.nextset()  # past BEGIN's result, to the lock's
        cursor.nextset()  # to the head's
        conn.ledger_head = ledger_table.head_of(cursor.fetchone())
        return _following(cursor, len(reads))

    def _reads(self, conn: Any, reads: Sequence[Read]) -> list[list[Any]]:
        if not reads:
            return []
        cursor: Any = conn.execute("; ".join(_bound(conn, reads)))
        return [cursor.fetchall(), *_following(cursor, len(reads) - 1)]

    def _lost(self, conn: Any) -> bool:
        return bool(conn.raw.broken)

    def _aborted(self, conn: Any) -> bool:
        return bool(conn.raw.info.transaction_status == psycopg.pq.TransactionStatus.INERROR)

    def _in_transaction(self, conn: Any) -> bool:
        status = conn.raw.info.transaction_status
        return bool(status != psycopg.pq.TransactionStatus.IDLE) and not conn.raw.closed

    # --- health --------------------------------------------------------------------
    def answers(self) -> bool:
        try:
            self.connection().execute("SELECT 1 FROM schema_migrations LIMIT 1").fetchall()
        except (psycopg.Error, GoalStoreError):
            log.warning("readiness check: PostgreSQL does not answer", exc_info=True)
            return False
        return True

    def close(self) -> None:
        self._this_process()  # a forked child sets the parent's pool aside, unclosed
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        self._local = threading.local()
