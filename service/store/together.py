"""Writes run together: the commands one process's threads write at the same moment
share one transaction.

A write transaction holds the store's write lock until its COMMIT has returned: on
PostgreSQL that is a network round trip and a WAL flush, on SQLite a WAL fsync. The lock,
not the machine, then caps the writes a second (docs/benchmarks.md). `together(command)`
lets concurrent writers share the cost: the first to arrive (the leader) begins a
transaction at once and runs its own command and those queued behind it (up to
MAX_GROUP), each in a savepoint, commits once, and hands each caller its own answer. The
group is the queue as the leader found it, joined by the commands that queued while its
begin waited for the write lock (on PostgreSQL, while other processes' groups held it):
they would only have waited for the next group, begun after this one. No writer waits
for company: a command that finds nobody ahead of it, and is joined by nobody, runs
alone in that transaction, its errors its own answer, as without this module.

What each caller sees does not change:
- its result is handed over only once the shared COMMIT has returned;
- its own refusal (a GoalStoreError such as a 404 or 409) undoes its savepoint only, as
  it would have undone its transaction, and is raised in its thread;
- anything else (a database error, a connection lost while a command runs, a bug) rolls
  the whole group back, and every command of it then runs again, alone, in its own
  thread. Nothing of the group was committed or answered, so it is as if no group had
  formed. This also covers PostgreSQL's queued writes (PgConnection.send), whose error
  can surface in a later command's statement: a group never has to say whose error it
  was. So a command may run twice: it must keep nothing from one run to the next;
- where the store was unavailable to the whole group, each command that has no refusal
  of its own gets that 503, and nothing runs again: the group's begin failed (the write
  lock stayed busy, the server is away: alone, each would wait as long for the same), or
  its COMMIT failed as unavailable (the answer lost: the group may have committed, and
  running it again could apply a change twice, or answer 409 for a goal just created;
  on PostgreSQL the last command's queued writes go with the COMMIT, so their server
  errors count here too);
- a writer waits for its group at most GOALSTORE_BUSY_TIMEOUT_MS, then answers 503, as
  it would have waited for its turn; once its command is in a running group, it waits
  for the group's end;
- each command runs in its caller's context variables (its log and trace context).
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from service.domain.errors import ErrorKind, GoalStoreError
from service.store.errors import StoreBusy, StoreUnavailable

if TYPE_CHECKING:
    from service.store.db import Database, Read

T = TypeVar("T")

log = logging.getLogger(__name__)

MAX_GROUP = 32  # commands in one transaction: bounds the first one's wait


class _Member(Generic[T]):
    """One caller's command, and what became of it."""

    def __init__(self, command: Callable[[], T], first: Read | None) -> None:
        self.command, self.first = command, first
        self.context = contextvars.copy_context()
        self.woken = threading.Event()
        self.lead = False  # woken to lead the next group
        self.alone = False  # woken to run its command again, alone
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self, *, alone: bool) -> None:
        """The command, in its caller's context. Alone, whatever it raises is its answer;
        in a group, only its own refusal is (anything else fails the group)."""
        try:
            self.result = self.context.run(self.command)
        except GoalStoreError as exc:
            if not alone and exc.kind is ErrorKind.UNAVAILABLE:  # the database's trouble
                raise
            self.error = exc
        except BaseException as exc:
            if not alone:
                raise
            self.error = exc

    def answer(self) -> T:
        if self.error is not None:
            raise self.error
        result: T = self.result
        return result


class _GroupFailed(Exception):
    """A command left the shared transaction aborted: the group runs again, alone."""


class _Unavailable(Exception):
    """The group's answer for every command: the store was unavailable to all of them."""

    def __init__(self, error: StoreBusy | StoreUnavailable) -> None:
        super().__init__(str(error))
        self.error = error


class Together:
    """One process's writers that share transactions (Database.together)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._lock = threading.Lock()
        self._queue: deque[_Member[Any]] = deque()
        self._leading = False  # a leader is running a group; arrivals queue for the next
        self._leader: int | None = None  # the thread running a group (or a command alone)
        self.transactions = 0  # shared transactions committed, and the commands in them
        self.commands = 0

    def waiting(self) -> int:
        """Commands queued for the next group."""
        with self._lock:
            return len(self._queue)

    def run(self, command: Callable[[], T], first: Read | None = None) -> T:
        if self._leader == threading.get_ident():  # a command of this thread's group
            return command()
        member = _Member(command, first)
        with self._lock:
            self._queue.append(member)
            member.lead = not self._leading
            self._leading = True
        if not member.lead:
            self._wait(member)  # answered, asked to lead, or asked to run alone
        if member.lead:
            self._lead()
        if member.alone:
            return command()  # in this thread: its context is its own
        return member.answer()

    def _wait(self, member: _Member[Any]) -> None:
        if member.woken.wait(self._db.busy_timeout_ms / 1000):
            return
        with self._lock:
            if member in self._queue and not member.woken.is_set():  # no group took it
                self._queue.remove(member)
                raise self._db._turn_refused()
        member.woken.wait()  # its command is in a running group: the group's end answers

    def _lead(self) -> None:
        """Run the queue's head (this thread's member is first) as one group, then wake
        the next leader, if any, and every member of the group."""
        with self._lock:
            group = [self._queue.popleft() for _ in range(min(MAX_GROUP, len(self._queue)))]
        self._leader = threading.get_ident()
        try:
            self._together(group)
        except _Unavailable as unavailable:
            for member in group:  # a refusal stays its own: it did not wait for the COMMIT
                if member.error is None:
                    member.error = replace(unavailable.error)  # an exception of its own
        except BaseException as exc:
            log.debug("a group of %d writes failed (%r): each runs again alone", len(group), exc)
            for member in group:
                member.alone, member.error = True, None
        finally:
            self._leader = None
            with self._lock:
                if self._queue:
                    self._queue[0].lead = True
                    self._queue[0].woken.set()
                else:
                    self._leading = False
            for member in group:
                member.woken.set()

    def _together(self, group: list[_Member[Any]]) -> None:
        """Run `group` in one transaction, joined by the commands queued while its begin
        waited for the write lock (they are added to `group`: the caller answers them)."""
        db = self._db
        # The members' declared first reads go with the begin; every write() inside is a
        # savepoint of this one transaction.
        begun = ran = alone = False
        try:
            with db._transaction(write=True, reads=_firsts(group)) as (conn, rows):
                begun = True
                late = self._late(MAX_GROUP - len(group))
                group += late  # in the group before anything can fail: it answers them
                read = iter([*rows, *db._reads(conn, _firsts(late))])  # theirs: one round trip
                alone = len(group) == 1
                conn.together = True
                db._local.depth = 1  # as in batch()
                try:
                    for member in group:
                        # its declared first read, as the begin read it (Database._first_rows)
                        given = None if member.first is None else (member.first, next(read))
                        db._local.given = given
                        member.run(alone=alone)
                        # A statement failed, and nothing rolled it back: the group fails.
                        # (Alone and answered with an error, the command's own savepoint
                        # rollback is queued, on PostgreSQL: the COMMIT sends it.)
                        if db._aborted(conn) and not (alone and member.error is not None):
                            raise _GroupFailed
                finally:
                    db._local.depth, db._local.given = 0, None
                ran = True
        except BaseException as exc:
            # Alone, each command would have met the same: the write lock stayed busy, or
            # the server was away, at the begin; or the COMMIT's answer was lost, and the
            # group may have committed (run again, a change could be applied twice).
            if isinstance(exc, StoreBusy | StoreUnavailable) and (
                not begun or (ran and isinstance(exc, StoreUnavailable))
            ):
                raise _Unavailable(exc) from exc
            if not (alone and ran):
                raise
            # A command alone: its COMMIT's error is its answer, as without a group.
            group[0].error = group[0].error or exc
            return
        if len(group) > 1:
            self.transactions += 1
            self.commands += len(group)

    def _late(self, room: int) -> list[_Member[Any]]:
        """The commands queued since the group was taken (up to `room` of them): they
        queued while its begin waited for the write lock, and join it rather than wait
        for the next."""
        with self._lock:
            return [self._queue.popleft() for _ in range(min(room, len(self._queue)))]


def _firsts(members: list[_Member[Any]]) -> list[Read]:
    """The members' declared first reads, in order."""
    return [member.first for member in members if member.first is not None]
