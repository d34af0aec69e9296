"""The Connection protocol store functions are written against, whichever the engine
(service/store/db.py has the engines' common part; sqlite.py and postgres.py each give
one), and the Read a write may declare."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from service.store.dialect import Dialect


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def fetchmany(self, size: int = ...) -> list[Any]: ...
    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """What store functions use: rows read by position or by column name."""

    dialect: Dialect
    # The ledger's (seq, hash) head as this write transaction knows it, None when it must
    # be read: set by an append (and on PostgreSQL by the begin), cleared when the
    # transaction ends or a savepoint rolls back.
    ledger_head: tuple[int, str] | None
    # The rows of the write's `first` read (Database.write), [] without one.
    first: list[Any]
    # Whether a write's error anywhere fails the whole transaction, only refusals being a
    # command's own (a group of callers' commands, Database.together, which then runs
    # again, each command alone; a batch(as_one=True)): each savepoint's SAVEPOINT,
    # RELEASE and ROLLBACK TO may then be sent with the next statement, and a queued
    # write's error may surface in a later command's statement.
    together: bool

    def execute(self, sql: str, parameters: Any = (), /) -> Cursor: ...
    def executemany(self, sql: str, parameters: Any, /) -> Cursor: ...
    def send(self, sql: str, parameters: Any, /) -> None:
        """A write whose result nobody reads: the engine may send it with the next
        statement (PostgreSQL: one round trip for both); its error, if any, is raised
        no later than the COMMIT."""
        ...

    def send_many(self, sql: str, rows: Any, /) -> None:
        """send() for many parameter rows of one statement."""
        ...

    def tuples(self, sql: str, parameters: Any = (), /) -> Cursor:
        """Like execute, with rows as plain tuples (cheaper, for bulk reads by position)."""
        ...


# A query and its parameters: a write's `first` read.
Read = tuple[str, Sequence[Any]]
