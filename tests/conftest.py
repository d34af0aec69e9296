"""Fixtures shared by every tier."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

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
