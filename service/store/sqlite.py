"""The SQLite engine: the default store, one file beside the processes that use it."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from service.domain.errors import GoalStoreError
from service.store.db import _INHERITED, Connection, Database, Read, StoreBusy
from service.store.dialect import SQLITE

log = logging.getLogger(__name__)


def _raise_if_busy(exc: sqlite3.OperationalError) -> None:
    if "locked" in str(exc) or "busy" in str(exc):
        raise StoreBusy(str(exc)) from exc


class _SqliteConnection(sqlite3.Connection):
    """A connection whose statements report a database held locked past the busy
    timeout as StoreBusy (a 503 to retry), wherever they run: reads and writes alike."""

    dialect = SQLITE
    ledger_head: tuple[int, str] | None = None
    first: list[Any] = []  # noqa: RUF012 (set, never changed in place, by each write)
    together = False  # errors are raised by the statement that fails: nothing is queued

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

    def send(self, sql: str, parameters: Any, /) -> None:
        self.execute(sql, parameters)

    def send_many(self, sql: str, rows: Any, /) -> None:
        self.executemany(sql, rows)

    def tuples(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        cursor = self.cursor()
        cursor.row_factory = None
        try:
            return cursor.execute(sql, parameters)
        except sqlite3.OperationalError as exc:
            _raise_if_busy(exc)
            raise


class SqliteDatabase(Database):
    """One connection per thread, WAL so readers never wait for the writer, a busy
    timeout so writers queue instead of failing, and `BEGIN IMMEDIATE` so a write
    transaction holds the write lock from its first statement (no upgrade deadlocks)."""

    dialect = SQLITE

    def __init__(self, path: Path, busy_timeout_ms: int = 5_000) -> None:
        super().__init__()
        self.path = path
        self.location = self.shown = str(path)
        self.busy_timeout_ms = busy_timeout_ms
        self._opened: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def _forget_inherited(self) -> None:
        _INHERITED.extend(self._opened)
        self._opened = []
        self._lock = threading.Lock()

    def _thread_connection(self) -> _SqliteConnection:
        conn: _SqliteConnection | None = getattr(self._local, "sqlite", None)
        if conn is None:
            conn = self._open()
            self._local.sqlite = conn
        return conn

    @contextmanager
    def _checkout(self) -> Iterator[_SqliteConnection]:
        yield self._thread_connection()

    def _statement_connection(self) -> Connection:
        return self._thread_connection()

    def _begin(self, conn: Any, *, write: bool, reads: Sequence[Read] = ()) -> list[list[Any]]:
        conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        return self._reads(conn, reads)

    def _in_transaction(self, conn: Any) -> bool:
        return bool(conn.in_transaction)

    def _open(self) -> _SqliteConnection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self.path,
            timeout=self.busy_timeout_ms / 1000,
            isolation_level=None,  # transactions are explicit: see write() and read()
            check_same_thread=False,  # used by its own thread only; closed by close()
            factory=_SqliteConnection,
        )
        assert isinstance(conn, _SqliteConnection)
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

    def answers(self) -> bool:
        try:
            self.connection().execute("SELECT 1 FROM schema_migrations LIMIT 1").fetchall()
        except (sqlite3.Error, GoalStoreError):
            log.exception("readiness check: SQLite does not answer")
            return False
        return True

    def close(self) -> None:
        self._this_process()  # a forked child sets the parent's connections aside, unclosed
        with self._lock:
            for conn in self._opened:
                conn.close()
            self._opened.clear()
        self._local = threading.local()
