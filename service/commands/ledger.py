"""Ledger commands: history, verify, checkpoint, replay."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from service.commands.base import live_goal
from service.domain.errors import FieldError, InvalidInput
from service.domain.ledger import GENESIS, ChainReport, Checkpoint, LedgerRow, links, replay
from service.domain.tasks import TaskNotFound
from service.store import goals as goal_table
from service.store import ledger as ledger_table
from service.store import tasks as task_table
from service.store.db import Database


def goal_history(
    db: Database, goal_id: str, *, after: int = 0, limit: int = 1_000
) -> list[LedgerRow]:
    conn = db.connection()
    live_goal(conn, goal_id, include_deleted=True)  # a deleted goal's history stays readable
    return ledger_table.for_goal(conn, goal_id, after=after, limit=limit)


def checked_history(db: Database, goal_id: str, *, newest: int = 200) -> CheckedHistory:
    """The goal's newest `newest` events, oldest first, each with whether it holds in the
    chain (domain/ledger.py links(): the rows on each side of it are read too, in one
    query). `goalstore ledger verify` walks the whole chain."""
    with db.read() as conn:
        live_goal(conn, goal_id, include_deleted=True)
        rows = ledger_table.newest_for_goal(conn, goal_id, newest)
        near = ledger_table.links_at(conn, sorted({r.seq + d for r in rows for d in (-1, 1)}))
        head_seq, _ = ledger_table.head(conn)
    checked = []
    for r in rows:
        before = GENESIS if r.seq == 1 else near.get(r.seq - 1, (None, None))[1]
        # the row after it names its hash; none after it only at the head ("" is no hash)
        after = near[r.seq + 1][0] if r.seq + 1 in near else "" if r.seq < head_seq else None
        checked.append((r, links(r, before, after)))
    return CheckedHistory(checked, complete=len(rows) < newest)


@dataclass(frozen=True)
class CheckedHistory:
    events: list[tuple[LedgerRow, bool]]  # oldest first, each with whether it holds
    complete: bool  # every event of the goal (else only the newest)


def timeline(
    db: Database, *, goal_id: str | None = None, trace_id: str | None = None,
    task_id: str | None = None, after: int = 0, limit: int = 1_000,
) -> list[LedgerRow]:  # fmt: skip
    """The events of a goal, a trace or a task (every filter given must match), oldest
    first. A goal or task that does not exist is NotFound; a trace is only its events."""
    if goal_id is None and trace_id is None and task_id is None:
        raise InvalidInput([FieldError(("goal_id",), "name a goal, a trace or a task")])
    if limit < 1:
        raise InvalidInput([FieldError(("limit",), "must be at least 1")])
    with db.read() as conn:
        if goal_id is not None:
            live_goal(conn, goal_id, include_deleted=True)
        if task_id is not None:
            task = task_table.fetch(conn, task_id)
            if task is None:
                raise TaskNotFound(task_id)
            if goal_id not in (None, task.goal_id):
                return []
            goal_id = task.goal_id  # a task's events are its goal's: read them by that index
        return ledger_table.matching(conn, goal_id=goal_id, trace_id=trace_id,
                                     task_id=task_id, after=after, limit=limit)  # fmt: skip


def verify_ledger(db: Database, checkpoint: Checkpoint | None = None) -> ChainReport:
    with db.read() as conn:
        return ledger_table.verify(conn, checkpoint)


def ledger_checkpoint(db: Database) -> Checkpoint:
    seq, digest = ledger_table.head(db.connection())
    return Checkpoint(seq, digest)


@dataclass(frozen=True)
class ReplayReport:
    ok: bool
    goals: int
    differences: list[dict[str, Any]]


def replay_check(db: Database, max_differences: int = 20) -> ReplayReport:
    """Rebuild the goal table from the ledger and compare it with the live one."""
    with db.read() as conn:
        rebuilt = replay(ledger_table.rows(conn))
        live = goal_table.all_records(conn)
    differences: list[dict[str, Any]] = []
    for goal_id in sorted(set(rebuilt) | set(live)):
        want, have = rebuilt.get(goal_id), live.get(goal_id)
        if want == have:
            continue
        if want is None or have is None:
            differences.append(
                {"goal_id": goal_id, "only_in": "table" if want is None else "ledger"}
            )
        else:
            fields = sorted(k for k in set(want) | set(have) if want.get(k) != have.get(k))
            differences.append(
                {
                    "goal_id": goal_id,
                    "fields": {k: {"ledger": want.get(k), "table": have.get(k)} for k in fields},
                }
            )
        if len(differences) >= max_differences:
            break
    return ReplayReport(not differences, len(live), differences)
