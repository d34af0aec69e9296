"""The integration tier's runners: a real server for HTTP tests (uvicorn on a free loopback
port, in a thread of this process), the `goalstore` CLI, called in this process, and the
ranking cache on the tests' Redis.

Every test that uses the store runs twice, once per engine (`database_location`: a
SQLite file of its own, or a PostgreSQL schema of its own).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from redis import Redis

from service import cli
from service.api.app import create_app
from service.cache.keys import Keys
from service.cache.ranking import RankingCache
from service.commands import Context
from service.config import Settings
from service.runtime import Services, build_services
from service.store.db import Database
from service.testing import free_port, migrated_database
from tests.conftest import TEST_REDIS_URL


@pytest.fixture(params=["sqlite", "postgresql"])
def database_location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where this test's store is: a SQLite path, or a postgresql:// URL."""
    if request.param == "sqlite":
        return str(tmp_path / "goalstore.db")
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def engine(database_location: str) -> str:
    """The engine this test runs on: `sqlite` or `postgresql`."""
    return "postgresql" if database_location.startswith("postgresql://") else "sqlite"


@pytest.fixture
def db(database_location: str) -> Iterator[Database]:
    """A migrated store of this test's own, on each engine in turn."""
    database = migrated_database(database_location)
    yield database
    database.close()


class LiveServer:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            create_app(services), host="127.0.0.1", port=self.port, log_config=None
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.services.close()

    def client(self, **options: Any) -> httpx.Client:
        """An HTTP client of this server (close it, or use it in a `with`)."""
        options.setdefault("timeout", 10)
        return httpx.Client(base_url=self.url, **options)


ServerFactory = Callable[..., LiveServer]


@pytest.fixture
def start_server(database_location: str) -> Iterator[ServerFactory]:
    """Start a server over this test's store, with any Settings overrides."""
    started: list[LiveServer] = []

    def start(**overrides: object) -> LiveServer:
        settings = Settings(database=database_location, **overrides)  # type: ignore[arg-type]
        server = LiveServer(build_services(settings)).__enter__()
        started.append(server)
        return server

    yield start
    for server in started:
        server.__exit__()


@pytest.fixture
def server(start_server: ServerFactory) -> LiveServer:
    return start_server()


@pytest.fixture
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client() as http:
        yield http


CliRunner = Callable[..., tuple[int, Any]]


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> CliRunner:
    """`run_cli(database, *argv)`: `goalstore --database DATABASE ARGV...` in this process,
    its exit code and the JSON it printed on stdout."""

    def run(database: Path | str, *argv: str) -> tuple[int, Any]:
        code = cli.main(["--database", str(database), *argv])
        return code, orjson.loads(capsys.readouterr().out)

    return run


KEYS = Keys("goalstore-test:")  # the prefix of the tests' keys in their Redis


@pytest.fixture
def cache(redis_client: Redis) -> RankingCache:
    """The ranking cache on the tests' Redis (flushed around the test), under KEYS."""
    return RankingCache(redis_client, KEYS)


def selection_settings(database: str, **overrides: Any) -> Settings:
    """Settings of a store with live selection (GOAL_SYSTEM on, shadow off) on the test
    Redis, the scheduler queue `scheduler-test`, and a cache trusted however far behind."""
    base: dict[str, Any] = {
        "database": database, "redis_url": TEST_REDIS_URL,
        "redis_prefix": "goalstore-test:", "scheduler_queue": "scheduler-test",
        "GOAL_SYSTEM": True, "GOAL_SHADOW": False, "cache_max_lag_s": 3600,
    }  # fmt: skip
    base.update(overrides)
    return Settings(**base)


@pytest.fixture
def selection_services(database_location: str, redis_client: Redis) -> Iterator[Services]:
    """Services built from selection_settings on a migrated store of this test's engine."""
    from service.store.migrate import migrate

    built = build_services(selection_settings(database_location))
    migrate(built.db)
    yield built
    built.close()


@pytest.fixture
def services(selection_services: Services) -> Services:
    """The selection services, under the name the ranking and selection tests use."""
    return selection_services


@pytest.fixture
def people() -> Context:
    """A person acting on the real clock: Redis is trusted only while the outbox is not
    far behind it."""
    return Context(actor="tester")
