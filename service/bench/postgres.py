"""The PostgreSQL stage's database: one of the bench's own on the server it is given
(`goalstore_bench_<pid>_<hex>`), dropped at the end WITH (FORCE), as the SQLite file is
removed with its temporary directory.

Each read size gets a schema of its own in it, filled by copying the SQLite store as it
stands (service.store.copy, what `goalstore store copy` runs): the same goals, ledger
and outbox rows, so the two backends are measured over the same data. Loading through
the commands, as the SQLite store is, costs a network round trip per statement (17 a
goal): 2.6-4.9 ms a goal here, 4 to 8 minutes for 100k (docs/benchmarks.md).
"""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql

from service.store.copy import copy_store
from service.store.db import Database, open_database
from service.store.postgres import redact

CONNECT_TIMEOUT_S = 5
BUSY_TIMEOUT_MS = 30_000  # as the bench's processes get it (stage.py)


class PostgresStageUnavailable(Exception):
    """The PostgreSQL stage cannot start: the server does not answer (`answered` False),
    or it refused to make the bench's database. Nothing was measured yet."""

    def __init__(self, message: str, answered: bool) -> None:
        super().__init__(message)
        self.answered = answered


@dataclass(frozen=True)
class Copied:
    """A read size's schema, and what copying the SQLite store into it took."""

    db: Database
    schema: str
    report: dict[str, Any]


class BenchServer:
    """The bench's database on `server_url`'s server, made on construction."""

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url
        self.shown = redact(server_url)
        self.name = f"goalstore_bench_{os.getpid()}_{secrets.token_hex(4)}"
        skip = "or pass --no-postgres to measure SQLite alone"
        try:
            conn = psycopg.connect(server_url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
        except psycopg.Error as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise PostgresStageUnavailable(
                f"bench: PostgreSQL at {self.shown} does not answer ({reason}): start it, "
                f"give another server with --postgres-url or GOALSTORE_BENCH_POSTGRES_URL, {skip}",
                answered=False,
            ) from exc
        try:
            with conn:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.name)))
        except psycopg.Error as exc:
            raise PostgresStageUnavailable(
                f"bench: PostgreSQL at {self.shown} refused to create the database "
                f"{self.name} ({str(exc).strip()}): the bench needs a role that may create "
                f"databases (CREATEDB), {skip}",
                answered=True,
            ) from exc

    def url(self, schema: str) -> str:
        return schema_url(self.server_url, self.name, schema)

    def copy(self, source: Database, schema: str) -> Copied:
        """A new schema holding a verified copy of `source` (its writers stopped)."""
        with psycopg.connect(self.url("public"), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        target = open_database(self.url(schema), busy_timeout_ms=BUSY_TIMEOUT_MS)
        started = time.perf_counter()
        copied = copy_store(source, target)
        seconds = time.perf_counter() - started
        if not copied.ok:
            target.close()
            raise RuntimeError(f"bench: the copy into PostgreSQL failed: {copied.problems}")
        goals = copied.tables["goals"]
        return Copied(target, schema, {
            "goals": goals, "via": "store copy", "seconds": round(seconds, 3),
            "goals_per_s": round(goals / seconds), "rows": sum(copied.tables.values()),
        })  # fmt: skip

    def drop_schema(self, schema: str) -> None:
        with psycopg.connect(self.url("public"), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))

    def drop(self) -> None:
        """Drop the bench's database, cutting any connection still open on it."""
        with psycopg.connect(self.server_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.name))
            )


def schema_url(server_url: str, database: str, schema: str) -> str:
    """The URL of `schema` in `database` on `server_url`'s server: the same URL (its role,
    host and parameters) with the database replaced and the schema first on the search
    path (added to any `options` the URL already has)."""
    parts = urlsplit(server_url)
    query = dict(parse_qsl(parts.query))
    query["options"] = f"{query.get('options', '')} -csearch_path={schema}".strip()
    return urlunsplit(parts._replace(path=f"/{database}", query=urlencode(query, quote_via=quote)))
