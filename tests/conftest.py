"""Fixtures shared by every tier."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from redis import Redis

from service.commands import Context
from service.store.db import Database
from service.testing import FrozenClock, make_context, migrated_database


@pytest.fixture(autouse=True)
def _keep_root_logging() -> Iterator[None]:
    """cli.main points the root logger at the test's captured stderr; put it back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def ctx(clock: FrozenClock) -> Context:
    return make_context("tester", clock)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    """A migrated SQLite file of this test's own."""
    database = migrated_database(tmp_path / "goalstore.db")
    yield database
    database.close()


# The tests' Redis: a database number of their own on the machine's server.
TEST_REDIS_URL = os.environ.get("GOALSTORE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture
def redis_url() -> str:
    """Where the tests' Redis is (GOALSTORE_TEST_REDIS_URL); use with redis_client to have
    it flushed around the test."""
    return TEST_REDIS_URL


@pytest.fixture
def redis_client() -> Iterator[Redis]:
    """A real Redis: its own database number, flushed before and after each test."""
    client = Redis.from_url(TEST_REDIS_URL)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


# The tests' PostgreSQL: a server where the test run may create a database of its own.
TEST_POSTGRES_URL = os.environ.get(
    "GOALSTORE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


class PostgresRun:
    """A database of this test run's own on the tests' PostgreSQL server, dropped at the
    end; each test that asks gets a schema of its own in it (`schema()`)."""

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url
        self.name = f"goalstore_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        base = server_url.rsplit("/", 1)[0]
        self.url = f"{base}/{self.name}"
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.name}"')

    def schema(self) -> tuple[str, str]:
        """A new empty schema: its name, and a URL whose connections use it."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {name}")
        return name, f"{self.url}?options=-csearch_path%3D{name}&application_name={name}"

    def drop_schema(self, name: str) -> None:
        """Drop the schema, cutting any connection a test left open on it."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            conn.execute(f"DROP SCHEMA {name} CASCADE")

    def drop(self) -> None:
        with psycopg.connect(self.server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_run() -> Iterator[PostgresRun]:
    run = PostgresRun(TEST_POSTGRES_URL)
    yield run
    run.drop()


@pytest.fixture
def postgres_url(postgres_run: PostgresRun) -> Iterator[str]:
    """A URL of an empty PostgreSQL schema of this test's own, dropped afterwards."""
    name, url = postgres_run.schema()
    yield url
    postgres_run.drop_schema(name)
