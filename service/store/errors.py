"""The store's own errors: the database did not take a statement, through no fault of the
command (a 503 to retry). Importable from service.store.db as well."""

from __future__ import annotations

from dataclasses import dataclass

from service.domain.errors import ErrorKind, GoalStoreError


@dataclass
class StoreBusy(GoalStoreError):
    """Another connection held the store's write lock past the busy timeout: the statement
    did not run (a write transaction is rolled back whole)."""

    kind = ErrorKind.UNAVAILABLE
    code = "database-busy"
    title = "Database busy"
    retry_after_s = 1  # the lock is held for milliseconds

    detail: str

    def __str__(self) -> str:
        return f"the database stayed locked past the busy timeout; retry ({self.detail})"


@dataclass
class StoreUnavailable(GoalStoreError):
    """The database server does not answer (restarted, connection cut, unreachable): the
    statement did not run, or its transaction was rolled back whole."""

    kind = ErrorKind.UNAVAILABLE
    code = "database-unavailable"
    title = "Database unavailable"
    retry_after_s = 2  # connections are re-made as soon as the server answers again

    detail: str

    def __str__(self) -> str:
        return f"the database does not answer; retry ({self.detail})"
