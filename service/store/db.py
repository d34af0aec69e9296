"""Connections and transactions, for either engine.

`open_database(location)` takes a SQLite path (the default, and the embedded mode) or a
`postgresql://` URL. Both give the same `Database`: `write()` is one transaction that
holds the store's write lock from its first statement (SQLite's `BEGIN IMMEDIATE`, a
PostgreSQL advisory lock), so the ledger stays one chain and every check-then-write is
race-free across processes and hosts; `read()` is one consistent snapshot; `batch()`
runs many commands in one transaction, each in a savepoint. Store queries are written
once, with `?` placeholders, against the `Connection` protocol (service/store/connection.py).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, TypeVar

from service.domain.errors import GoalStoreError
from service.store.connection import Connection as Connection
from service.store.connection import Cursor as Cursor
from service.store.connection import Read as Read
from service.store.dialect import Dialect
from service.store.errors import StoreBusy as StoreBusy
from service.store.errors import StoreUnavailable as StoreUnavailable
from service.store.together import Together

T = TypeVar("T")

log = logging.getLogger(__name__)


# Connections a forked child inherited: kept referenced, never closed by the child
# (closing a parent's connection in a child is as unsafe as using it).
_INHERITED: list[object] = []


class Database(ABC):
    """Transactions over one engine; a connection never crosses a fork or a thread."""

    dialect: Dialect
    location: str  # the path or the URL, as given: open_database(location) opens it again
    shown: str  # the location without a password: for messages and logs

    busy_timeout_ms: int
    pooled = 0  # connections a process may keep open, each possibly dropped by the server

    def __init__(self) -> None:
        self._local = threading.local()
        self._pid = os.getpid()
        self._writers = threading.RLock()
        self._unavailable_at = -1e9  # when a writer of this process last found it away
        self._connecting_since: float | None = None  # when the turn's holder asked for a connection
        self._together = Together(self)

    # --- what an engine provides -------------------------------------------------
    @abstractmethod
    def _checkout(self) -> Any:
        """A context manager giving the connection a transaction runs on."""

    @abstractmethod
    def _statement_connection(self) -> Connection:
        """The connection single statements outside any transaction run on."""

    @abstractmethod
    def _begin(self, conn: Any, *, write: bool, reads: Sequence[Read] = ()) -> list[list[Any]]:
        """Begin; for a write, take the write lock, then run `reads`: their rows, in order."""

    def _reads(self, conn: Any, reads: Sequence[Read]) -> list[list[Any]]:
        """The rows of `reads`, in order, in the transaction `conn` is in (PostgreSQL: in
        one round trip)."""
        return [conn.execute(*read).fetchall() for read in reads]

    def reads(self, reads: Sequence[Read]) -> list[list[Any]]:
        """The rows of `reads`, in order, read in the transaction this thread is in: on
        PostgreSQL in one round trip (with whatever writes are queued)."""
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            raise RuntimeError("Database.reads() outside a transaction")
        return self._reads(conn, reads)

    @abstractmethod
    def _in_transaction(self, conn: Any) -> bool: ...

    @abstractmethod
    def _forget_inherited(self) -> None:
        """In a forked child (an RQ work horse): set the parent's connections aside,
        unclosed; this process opens its own."""

    @abstractmethod
    def answers(self) -> bool:
        """Whether the database answers a read of the schema (readiness)."""

    @abstractmethod
    def close(self) -> None: ...

    # --- shared ------------------------------------------------------------------
    def _this_process(self) -> None:
        if self._pid != os.getpid():
            self._forget_inherited()
            self._local = threading.local()
            self._writers = threading.RLock()
            self._together = Together(self)
            self._pid = os.getpid()

    def connection(self) -> Connection:
        """The connection of the transaction this thread is in, or else one for single
        statements (each its own transaction)."""
        self._this_process()
        current: Connection | None = getattr(self._local, "conn", None)
        return current if current is not None else self._statement_connection()

    @contextmanager
    def _write_turn(self) -> Iterator[None]:
        """This process's writers take turns before they ask for the store's write lock.

        Only one thread of a process then waits on the engine's lock at a time: the others
        queue here, in order and without polling (SQLite's busy handler sleeps up to
        100 ms between tries, which made the 99th percentile of 16 concurrent writers
        hundreds of milliseconds), and without holding a pooled connection. Reentrant,
        so a write begun inside another fails as the engine says, not by deadlock.
        """
        if not self._writers.acquire(timeout=self.busy_timeout_ms / 1000):
            raise self._turn_refused()
        try:
            yield
        except StoreUnavailable:
            self._unavailable_at = time.monotonic()
            raise
        finally:
            self._connecting_since = None
            self._writers.release()

    def _turn_refused(self) -> GoalStoreError:
        """Why a writer waited its whole busy timeout for its turn in this process."""
        # Queued behind a writer that waits on a server that does not answer (still
        # waiting for a connection, or one that found it away just now): say so, rather
        # than that the lock was busy.
        timeout_s = self.busy_timeout_ms / 1000
        now, since = time.monotonic(), self._connecting_since
        if (since is not None and now - since > timeout_s / 4) or (
            now - self._unavailable_at < 2 * timeout_s
        ):
            return StoreUnavailable("this process's writers find the database away")
        return StoreBusy("this process's other writers held the write lock past the timeout")

    @contextmanager
    def _connected(self, *, write: bool) -> Iterator[Any]:
        """A connection from the engine; a writer holding its turn says how long it has
        waited for one, for the writers queued behind it."""
        if write:
            self._connecting_since = time.monotonic()
        with self._checkout() as conn:
            if write:
                self._connecting_since = None
            yield conn

    def _lost(self, conn: Any) -> bool:
        """Whether `conn` is dead (the server dropped it): a connection, not a database,
        problem. An embedded engine never loses one."""
        return False

    def _aborted(self, conn: Any) -> bool:
        """Whether `conn`'s transaction is aborted: a statement failed, and nothing rolled
        it back. (SQLite has no such state: a failed statement leaves the rest in force.)"""
        return False

    def _tries(self) -> range:
        """The tries of a statement that may find its pooled connection dropped: one per
        pooled connection, and a last one on a fresh connection."""
        return range(1 + self.pooled)

    def _try_next(self, conn: Any, attempt: int) -> bool:
        """Whether a statement that failed on `conn` (StoreUnavailable), on `attempt` of
        _tries(), goes on to the next connection: the server had dropped `conn`, and a
        try is left. Nothing of it ran: it failed on a dead connection."""
        return attempt < self.pooled and self._lost(conn)

    @contextmanager
    def _begun(self, *, write: bool, reads: Sequence[Read]) -> Iterator[tuple[Any, list[Any]]]:
        """A connection with its transaction begun. A pooled connection is not checked
        before use (a round trip for every transaction): if the server dropped it while
        it sat in the pool (a restart, a failover, an idle timeout), the begin fails with
        nothing of the transaction run, and the transaction begins again on the next one,
        at worst on a fresh connection once every pooled one has been found dead. A
        server that is away fails that one too (no connection can be made)."""
        for attempt in self._tries():
            with self._connected(write=write) as conn:
                conn.ledger_head = None
                try:
                    rows = self._begin(conn, write=write, reads=reads)
                except StoreUnavailable:
                    if not self._try_next(conn, attempt):
                        raise
                    log.info("a pooled connection was found dropped; beginning on a fresh one")
                    continue  # the dead connection goes back to the pool, which drops it
                except BaseException:  # e.g. the write lock's wait timed out
                    if self._in_transaction(conn):
                        self._rollback(conn)
                    raise
                yield conn, rows
                return

    @contextmanager
    def _transaction(
        self, *, write: bool, reads: Sequence[Read] = ()
    ) -> Iterator[tuple[Connection, list[list[Any]]]]:
        """A transaction, and the rows of `reads`, read as soon as it has begun (for a
        write, as soon as it holds the write lock)."""
        self._this_process()
        turn = self._write_turn() if write else nullcontext()
        with turn, self._begun(write=write, reads=reads) as (conn, rows):
            self._local.conn = conn
            try:
                yield conn, rows
                if write:
                    conn.execute("COMMIT")
            finally:
                self._local.conn = None
                conn.ledger_head, conn.first, conn.together = None, [], False
                # After a failed statement or COMMIT the transaction may still be open,
                # holding the write lock: never leave it so. A read only ends its snapshot.
                if self._in_transaction(conn):
                    self._rollback(conn)

    def _rollback(self, conn: Any) -> None:
        try:
            conn.execute("ROLLBACK")
        except GoalStoreError:  # the connection is gone: so is its transaction
            log.warning("rollback on a lost connection", exc_info=True)

    @contextmanager
    def write(self, *, first: Read | None = None) -> Iterator[Connection]:
        """One write transaction: everything inside commits together or not at all.

        Inside batch() or a group of together() it is a savepoint instead: undone alone if
        it fails, committed with the others if it succeeds.

        `first`: a read the command needs before anything else (whether its id is taken),
        run as soon as the write lock is held; its rows are `conn.first`. On PostgreSQL
        a transaction's first read goes in the begin's round trip, one round trip fewer
        while holding the lock (in a batch, a savepoint's goes with its SAVEPOINT).
        """
        depth: int = getattr(self._local, "depth", 0)
        if depth:
            yield from self._savepoint(self.connection(), depth, first)
            return
        with self._transaction(write=True, reads=[first] if first else []) as (conn, rows):
            conn.first = rows[0] if first else []
            yield conn

    def _savepoint(self, conn: Connection, depth: int, first: Read | None) -> Iterator[Connection]:
        name = f"write_{depth}"
        # On PostgreSQL: with the command's first statement, unless writes are queued (in
        # a group of callers' commands, even then).
        conn.send(f"SAVEPOINT {name}", ())
        self._local.depth = depth + 1
        outer_first = conn.first
        # In a batch, the end of a savepoint is a round trip of its own on PostgreSQL, so
        # that the error of a write it queued is raised here, in this command. In a group
        # (together()) or a batch as one, it goes with the next statement sent (the COMMIT
        # at the latest).
        end = conn.send if conn.together else conn.execute
        try:
            conn.first = self._first_rows(conn, first)
            yield conn
            # Inside the try: on PostgreSQL a write queued by send() is sent with this
            # statement, and if it fails, the savepoint must still be rolled back.
            end(f"RELEASE SAVEPOINT {name}", ())
        except BaseException:
            end(f"ROLLBACK TO SAVEPOINT {name}", ())
            conn.ledger_head = None  # an append inside may be undone: read it again
            end(f"RELEASE SAVEPOINT {name}", ())
            raise
        finally:
            self._local.depth = depth
            conn.first = outer_first

    def _first_rows(self, conn: Connection, first: Read | None) -> list[Any]:
        """A savepoint's first read: read now, unless a group read it with its begin."""
        if first is None:
            return []
        given: tuple[Read, list[Any]] | None = getattr(self._local, "given", None)
        if given is not None and given[0] == first:
            self._local.given = None  # once: for the command that declared it
            return given[1]
        return conn.execute(*first).fetchall()

    def together(self, command: Callable[[], T], *, first: Read | None = None) -> T:
        """`command()` (which writes through write()), sharing one transaction with the
        commands this process's other threads run together at the same moment: one COMMIT,
        one hold of the write lock, for all of them (service/store/together.py). Its result
        or its error is what it would have been alone, but that a COMMIT found unavailable
        answers each command of the group 503 (see together.py). Inside a transaction, or
        inside a command of a group, it just runs.

        `first`: the read the command's write() will ask for first, read with the group's
        begin (on PostgreSQL in its round trip), before any command of the group has run.
        Only for a read no other command can change but in a way the store's keys refuse
        (whether an id is taken: a second create of it fails the id's unique key, and the
        group then runs again, each command alone).

        A command may run twice (its group failed, and it runs again alone): it must start
        afresh, keeping nothing from an earlier run."""
        self._this_process()
        if getattr(self._local, "conn", None) is not None:
            return command()
        return self._together.run(command, first)

    @contextmanager
    def batch(self, *, first: Read | None = None, as_one: bool = False) -> Iterator[Connection]:
        """Many commands in one transaction (one fsync): bulk loads, the benchmark's setup.
        Each command inside keeps its own all-or-nothing through a savepoint. `first`: as
        for write(); its rows are `conn.first` but while a write() inside runs.

        `as_one`: the caller lets any error but a command's refusal fail the whole batch,
        so a write a command queued may fail in a later command's statement: on
        PostgreSQL each savepoint's end then goes with the next statement, not in a round
        trip of its own (Connection.together)."""
        with self.write(first=first) as conn:
            # Inside another transaction this is a savepoint (depth already counted), and
            # a group or a batch as one stays so.
            depth, outer = getattr(self._local, "depth", 0), conn.together
            self._local.depth, conn.together = depth or 1, outer or as_one
            try:
                yield conn
            finally:
                self._local.depth, conn.together = depth, outer

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A consistent snapshot for reads that take more than one statement."""
        if getattr(self._local, "depth", 0):  # inside batch(): already one transaction
            yield self.connection()
            return
        with self._transaction(write=False) as (conn, _):
            yield conn

    def table_exists(self, name: str) -> bool:
        conn = self.connection()
        return conn.execute(conn.dialect.table_exists, (name,)).fetchone() is not None


def insert_rows(conn: Connection, into: str, width: int, rows: list[list[Any]]) -> None:
    """INSERT `rows` (each `width` values) `into` "table (columns)", sent without a
    result read: one statement parsed once for all of them (on PostgreSQL a
    decomposition's hundred goals go in one round trip with one parse)."""
    if rows:
        marks = ", ".join("?" * width)
        conn.send_many(f"INSERT INTO {into} VALUES ({marks})", rows)


def open_database(
    location: str | Path, busy_timeout_ms: int = 5_000, pool_size: int = 10
) -> Database:
    """A SQLite file (a path) or a PostgreSQL database (a `postgresql://` URL)."""
    text = str(location)
    if text.startswith(("postgresql://", "postgres://")):
        from service.store.postgres import PostgresDatabase  # only its users load psycopg

        return PostgresDatabase(text, busy_timeout_ms, pool_size)
    from service.store.sqlite import SqliteDatabase

    return SqliteDatabase(Path(text), busy_timeout_ms)
