"""`goalstore healthcheck`: each part of a deployment checked and reported as one JSON
report, from the same reads of the store and Redis as /metrics (service/commands/observe.py).

A check's status is `ok`, `warn` (worth a look, still healthy: a cold cache, an outbox
behind), `fail` (unhealthy) or `skipped` (what it needs is missing: the schema behind,
Redis down). The report is healthy when no check failed. Extended adds the two full
reads of the ledger: the hash chain from GENESIS and the replay of the goal table.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import psycopg
from redis import Redis

from service.commands.ledger import replay_check, verify_ledger
from service.commands.observe import RedisFigures, store_figures
from service.domain.errors import GoalStoreError
from service.store import ledger as ledger_table
from service.store.db import Database
from service.store.migrate import MigrationError, check_current, load_migrations, migrations_dir
from service.store.sqlite import SqliteDatabase

OK, WARN, FAIL, SKIPPED = "ok", "warn", "fail", "skipped"
Check = dict[str, Any]


def healthcheck(
    db: Database, redis: Redis | None, figures: Callable[[], RedisFigures | None], *,
    now: datetime, max_lag: timedelta, extended: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """The report: `ok`, the names of the `failed` checks, and every check's figures.
    `figures` reads Redis once (GoalStore.redis_figures); `max_lag` is how far behind the
    outbox may be before it is a warning."""
    store, migrated = _store(db)
    checks: dict[str, Check] = {"store": store}
    if store["status"] != OK:
        checks["schema"] = _skip("the store does not answer")
    else:
        checks["schema"] = _schema(db, migrated)
    if checks["schema"]["status"] == OK:
        checks["ledger"] = _ledger(db, extended)
        if extended:
            checks["replay"] = _replay(db)
        checks["outbox"] = _outbox(db, now, max_lag)
    else:
        for name in ("ledger", *(("replay",) if extended else ()), "outbox"):
            checks[name] = _skip("the schema is not current")
    observed = figures()  # None: Redis is not configured, or does not answer
    checks["redis"] = _redis(configured=redis is not None, answers=observed is not None)
    if observed is None:
        reason = "Redis does not answer" if redis is not None else "Redis is not configured"
        checks["queues"] = checks["cache"] = _skip(reason)
    else:
        checks["queues"] = {"status": OK, "depths": observed.queue_depths}
        checks["cache"] = _cache(observed.cache_meta, now)
    failed = [name for name, check in checks.items() if check["status"] == FAIL]
    return {"ok": not failed, "extended": extended, "failed": failed, "checks": checks}


def _skip(why: str) -> Check:
    return {"status": SKIPPED, "detail": f"not checked: {why}"}


def _store(db: Database) -> tuple[Check, bool]:
    """Whether the store answers a query that needs no schema (a new store answers too),
    and whether it has been migrated at all."""
    check: Check = {"engine": db.dialect.name, "database": db.shown}
    if isinstance(db, SqliteDatabase) and not db.path.exists():  # opening it would create it
        return check | {"status": FAIL, "detail": f"no database file at {db.path}"}, False
    try:
        migrated = db.table_exists("schema_migrations")
    except (sqlite3.Error, psycopg.Error, GoalStoreError) as exc:
        return check | {"status": FAIL, "detail": f"the store does not answer: {exc}"}, False
    return check | {"status": OK}, migrated


def _schema(db: Database, migrated: bool) -> Check:
    """The migrations applied against those this code knows (check_current's rule)."""
    known = load_migrations(migrations_dir(db.dialect))
    check: Check = {"known": len(known), "applied": 0}
    if not migrated:
        return check | {"status": FAIL, "detail": "not migrated: run `goalstore migrate`"}
    row = db.connection().execute("SELECT count(*), max(version) FROM schema_migrations")
    count, latest = row.fetchone()
    check |= {"applied": int(count), "version": None if latest is None else int(latest)}
    try:
        check_current(db)
    except MigrationError as exc:
        return check | {"status": FAIL, "detail": str(exc)}
    return check | {"status": OK}


def _ledger(db: Database, extended: bool) -> Check:
    seq, digest = ledger_table.head(db.connection())
    check: Check = {"status": OK, "head_seq": seq, "head_hash": digest}
    if extended:
        report = verify_ledger(db)
        check["verified"] = report.ok
        if not report.ok:
            check |= {"status": FAIL, "first_bad_seq": report.first_bad_seq,
                      "damage": report.damage, "detail": report.reason}  # fmt: skip
    return check


def _replay(db: Database) -> Check:
    report = replay_check(db)
    check: Check = {"status": OK if report.ok else FAIL, "goals": report.goals}
    if not report.ok:
        check |= {"detail": "the goal table differs from its replay of the ledger",
                  "differences": report.differences}  # fmt: skip
    return check


def _outbox(db: Database, now: datetime, max_lag: timedelta) -> Check:
    figures = store_figures(db, now)
    lagging = figures.outbox_lag_s > max_lag.total_seconds()
    check: Check = {"status": WARN if lagging else OK, "pending": figures.outbox_pending,
                    "lag_s": round(figures.outbox_lag_s, 3)}  # fmt: skip
    if lagging:
        check["detail"] = (f"the oldest unapplied event is more than {max_lag.total_seconds():g}"
                           " s old: is the events worker running?")  # fmt: skip
    return check


def _redis(*, configured: bool, answers: bool) -> Check:
    if not configured:
        return {"status": OK, "detail": "not configured (GOALSTORE_REDIS_URL is unset)"}
    if answers:
        return {"status": OK}
    return {"status": FAIL, "detail": "Redis is configured and does not answer"}


def _cache(meta: dict[str, str], now: datetime) -> Check:
    """Warm once a rebuild has filled it (the metrics' rule: `rebuilt_seq` in its meta)."""
    if "rebuilt_seq" not in meta:
        return {"status": WARN, "warm": False,
                "detail": "the ranking cache is cold: run `goalstore cache rebuild` or start "
                          "a worker"}  # fmt: skip
    check: Check = {"status": OK, "warm": True, "rebuilt_seq": int(meta["rebuilt_seq"])}
    refreshed = meta.get("urgency_refreshed_at")
    if refreshed:
        check["staleness_s"] = round(max(0.0, now.timestamp() - float(refreshed)), 3)
    return check
