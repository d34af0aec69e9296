"""Connections and transactions.

One connection per thread, WAL so readers never wait for the writer, a busy
timeout so writers queue instead of failing, and `BEGIN IMMEDIATE` so a write
transaction holds the write lock from its first statement (no upgrade deadlocks).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service.domain.errors import ErrorKind, GoalStoreError

log = logging.getLogger(__name__)


@dataclass
class StoreBusy(GoalStoreError):
    """Another connection held the database locked past the busy timeout: the statement
    did not run (a write transaction is rolled back whole)."""

    kind = ErrorKind.UNAVAILABLE
    code = "database-busy"
    title = "Database busy"
    retry_after_s = 1  # the lock is held for milliseconds

    detail: str

    def __str__(self) -> str:
        return f"the database stayed locked past the busy timeout; retry ({self.detail})"


def _raise_if_busy(exc: sqlite3.OperationalError) -> None:
    if "locked" in str(exc) or "busy" in str(exc):
        raise StoreBusy(str(exc)) from exc


class _Connection(sqlite3.Connection):
    """A connection whose statements report a database held locked past the busy
    timeout as StoreBusy (a 503 to retry), wherever they run: reads and writes alike."""

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        try:
            return super().execute(sql, parameters)
        except sqlite3.OperationalError as exc:
            _raise_if_busy(exc)
            raise

    def executemany(self, sql: str, parameters: Any, /) -> sqlite3.Cursor:
        try:
            return super().executemany(sql, parameters)
        except sqlite3.OperationalError as exc:
            _raise_if_busy(exc)
            raise


# Connections a forked child inherited: kept referenced, never closed by the child
# (closing a parent's SQLite connection in a child is as unsafe as using it).
_INHERITED: list[sqlite3.Connection] = []


class Database:
    def __init__(self, path: Path | str, busy_timeout_ms: int = 5_000) -> None:
        self.path = Path(path)
        self.busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def _forget_inherited(self) -> None:
        """In a forked child (an RQ work horse): set the parent's connections aside,
        unclosed, since a SQLite connection must not cross a fork; this process opens
        its own."""
        _INHERITED.extend(self._opened)
        self._local = threading.local()
        self._opened = []
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def connection(self) -> sqlite3.Connection:
        if self._pid != os.getpid():
            self._forget_inherited()
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._open()
            self._local.conn = conn
        return conn

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self.path,
            timeout=self.busy_timeout_ms / 1000,
            isolation_level=None,  # transactions are explicit: see write() and read()
            check_same_thread=False,  # used by its own thread only; closed by close()
            factory=_Connection,
        )
        conn.row_factory = sqlite3.Row
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            conn.close()
            raise sqlite3.OperationalError(
                f"{self.path}: SQLite cannot use WAL here (journal mode {mode!r}); "
                "put the database on a local filesystem"
            )
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
        conn.execute("PRAGMA foreign_keys = ON")
        # FULL: a commit that returned survives power loss, not just a crash.
        conn.execute("PRAGMA synchronous = FULL")
        with self._lock:
            self._opened.append(conn)
        return conn

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: everything inside commits together or not at all.

        Inside batch() it is a savepoint instead: undone alone if it fails, committed
        with the batch if it succeeds.
        """
        conn = self.connection()
        depth: int = getattr(self._local, "depth", 0)
        if depth:
            yield from self._savepoint(conn, depth)
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
            yield conn
            conn.execute("COMMIT")
        finally:
            # After a failed statement or COMMIT (disk full, I/O error) the transaction
            # may still be open, holding the write lock: never leave it so. SQLite may
            # also have rolled back already, hence the check.
            if conn.in_transaction:
                conn.rollback()

    def _savepoint(self, conn: sqlite3.Connection, depth: int) -> Iterator[sqlite3.Connection]:
        name = f"write_{depth}"
        conn.execute(f"SAVEPOINT {name}")
        self._local.depth = depth + 1
        try:
            yield conn
        except BaseException:
            conn.execute(f"ROLLBACK TO {name}")
            raise
        finally:
            self._local.depth = depth
            conn.execute(f"RELEASE {name}")

    @contextmanager
    def batch(self) -> Iterator[sqlite3.Connection]:
        """Many commands in one transaction (one fsync): bulk loads, the benchmark's setup.
        Each command inside keeps its own all-or-nothing through a savepoint."""
        with self.write() as conn:
            self._local.depth = 1
            try:
                yield conn
            finally:
                self._local.depth = 0

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A consistent snapshot for reads that take more than one statement."""
        conn = self.connection()
        if getattr(self._local, "depth", 0):  # inside batch(): already one transaction
            yield conn
            return
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            if conn.in_transaction:
                conn.rollback()  # nothing was written: ending the snapshot is all it does

    def answers(self) -> bool:
        """Whether the database answers a read of the schema (readiness)."""
        try:
            self.connection().execute("SELECT 1 FROM schema_migrations LIMIT 1").fetchall()
        except sqlite3.Error:
            log.exception("readiness check: SQLite does not answer")
            return False
        return True

    def close(self) -> None:
        with self._lock:
            for conn in self._opened:
                conn.close()
            self._opened.clear()
        self._local = threading.local()
