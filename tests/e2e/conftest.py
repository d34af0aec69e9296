"""The e2e tier's runners: the installed `goalstore` binary, the Procfile's commands started
as a process manager starts them, and a Stack of one SQLite file, a redis-server of the
test's own (killed, it comes back empty) and the processes started over them."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from redis import Redis

from service.store import outbox
from service.testing import free_port, migrated_database, wait_for

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def procfile() -> dict[str, str]:
    """The Procfile's entries: name -> command."""
    entries = {}
    for line in (REPO / "Procfile").read_text().splitlines():
        name, sep, command = line.partition(":")
        if sep and not line.startswith("#"):
            entries[name.strip()] = command.strip()
    return entries


def process_env(**extra: str) -> dict[str, str]:
    """This process's environment without any GOALSTORE_ setting, the virtualenv's bin
    first on PATH, anonymous access allowed (the Procfile's web binds 0.0.0.0 and these
    tests run without keys), and `extra` on top."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOALSTORE_")}
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", GOALSTORE_ALLOW_ANONYMOUS="true")
    env.update(extra)
    return env


def goalstore(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The installed `goalstore` binary, run to its end: exit code, stdout and stderr."""
    return subprocess.run(
        [str(BIN / "goalstore"), *args], env=env, cwd=cwd, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip


def wait_ready(url: str, process: subprocess.Popen[bytes], seconds: float = 20) -> None:
    """Wait until the server at `url` answers /readyz with 200; fail if its process exits."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read().decode() if process.stdout else ""
            raise AssertionError(f"server exited with {process.returncode}:\n{output}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("server did not become ready")


def stop(process: subprocess.Popen[bytes]) -> str:
    """SIGTERM, as a process manager sends it; the server's output once it has exited."""
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=20)
    # uvicorn re-raises the signal after a graceful shutdown, so it exits "killed by SIGTERM".
    assert process.returncode in (0, -signal.SIGTERM), output
    return output.decode()


class RedisServer:
    """A redis-server on a free port, keeping nothing on disk: killed, it comes back empty."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed (make test installs it via .ci/run)"
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = self.client()
        wait_for("redis-server", lambda: _pings(client), seconds=10)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)

    def client(self) -> Redis:
        return Redis(port=self.port, socket_timeout=2)


def _pings(client: Redis) -> bool:
    try:
        return bool(client.ping())
    except Exception:
        return False


class Stack:
    """One SQLite file, one Redis, and the processes started over them."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.redis = RedisServer(tmp_path)
        self.redis.start()
        self.database = tmp_path / "loop.db"
        migrated_database(self.database).close()
        self.processes: list[subprocess.Popen[bytes]] = []
        self.clients: list[httpx.Client] = []
        self.url = ""

    def env(self, **extra: str) -> dict[str, str]:
        return process_env(
            GOALSTORE_DATABASE=str(self.database),
            GOALSTORE_REDIS_URL=self.redis.url,
            GOALSTORE_TICK_SECONDS="1",
            GOALSTORE_REDELIVER_AFTER_S="1",
            GOALSTORE_RELAY_INTERVAL_MS="10",
            **extra,
        )

    def spawn(self, entry: str, **env: str) -> subprocess.Popen[bytes]:
        """Start a Procfile entry through the shell, as a process manager does."""
        log = open(self.tmp_path / f"{entry}-{len(self.processes)}.log", "wb")  # noqa: SIM115
        process = subprocess.Popen(
            ["/bin/sh", "-c", f"exec {procfile()[entry]}"], env=self.env(**env),
            cwd=self.tmp_path, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.processes.append(process)
        return process

    def serve(self, **env: str) -> httpx.Client:
        """The Procfile's `web` on a free port, once ready; a client of it."""
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        wait_ready(self.url, self.spawn("web", PORT=str(port), **env))
        client = httpx.Client(base_url=self.url, timeout=10)
        self.clients.append(client)
        return client

    def worker(self, **env: str) -> subprocess.Popen[bytes]:
        """The Procfile's `worker`, once its start-up rebuild is done."""
        process = self.spawn("worker", **env)
        client = self.redis.client()
        wait_for(
            "the worker's start-up rebuild",
            lambda: client.hexists("goalstore:meta", "rebuilt_seq"),
        )
        return process

    def goalstore(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        """The `goalstore` binary over this stack, run to its end."""
        return goalstore(self.env(**env), self.tmp_path, *args)

    def unapplied(self) -> int:
        with sqlite3.connect(self.database) as conn:
            conn.row_factory = sqlite3.Row
            return int(outbox.backlog(conn)["unapplied"])

    def close(self) -> None:
        for client in self.clients:
            client.close()
        for process in self.processes:  # SIGTERM, as a process manager stops them
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=20)
        if self.redis.process and self.redis.process.poll() is None:
            self.redis.kill()


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    """A Stack of this test's own, its processes stopped afterwards."""
    s = Stack(tmp_path)
    yield s
    s.close()


class PgStack:
    """One PostgreSQL schema (a URL), a redis-server of the test's own, and `goalstore`
    processes started over them, each in a working directory of its own: the nodes share
    no file, as processes on many hosts would not."""

    def __init__(self, tmp_path: Path, database_url: str, **env: str) -> None:
        self.tmp_path = tmp_path
        self.database_url = database_url
        self.redis = RedisServer(tmp_path)
        self.redis.start()
        self.extra = env
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.webs: dict[str, str] = {}  # process name -> base URL
        release = self.goalstore("migrate")
        assert 0 == release.returncode, release.stdout + release.stderr

    def env(self, **extra: str) -> dict[str, str]:
        return process_env(
            GOALSTORE_DATABASE=self.database_url,
            GOALSTORE_REDIS_URL=self.redis.url,
            GOALSTORE_TICK_SECONDS="1",
            GOALSTORE_REDELIVER_AFTER_S="1",
            GOALSTORE_RELAY_INTERVAL_MS="10",
            **{**self.extra, **extra},
        )

    def node(self, name: str) -> Path:
        """The working directory of the process `name`, made on first use."""
        cwd = self.tmp_path / "nodes" / name
        cwd.mkdir(parents=True, exist_ok=True)
        return cwd

    def spawn(self, name: str, command: str, **env: str) -> subprocess.Popen[bytes]:
        """Start `command` through the shell in its own directory, as a process manager
        does; its output goes to `<name>.log` under tmp_path."""
        log = open(self.tmp_path / f"{name}.log", "wb")  # noqa: SIM115
        process = subprocess.Popen(
            ["/bin/sh", "-c", f"exec {command}"], env=self.env(**env), cwd=self.node(name),
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.processes[name] = process
        return process

    def start(self, webs: int, workers: int, schedulers: int, selectors: int) -> None:
        """The Procfile's web (each on a free port), worker and scheduler, and `goalstore
        selector`, all started at once; returns when every web answers /readyz and the
        workers' start-up rebuild is done."""
        entries = procfile()
        for n in range(webs):
            port = free_port()
            self.spawn(f"web-{n}", entries["web"], PORT=str(port))
            self.webs[f"web-{n}"] = f"http://127.0.0.1:{port}"
        for n in range(workers):
            self.spawn(f"worker-{n}", entries["worker"])
        for n in range(schedulers):
            self.spawn(f"scheduler-{n}", entries["scheduler"])
        for n in range(selectors):
            self.spawn(f"selector-{n}", "goalstore selector")
        for name, url in self.webs.items():
            wait_ready(url, self.processes[name], seconds=60)
        client = self.redis.client()
        wait_for("the workers' start-up rebuild",
                 lambda: client.hexists("goalstore:meta", "rebuilt_seq"))  # fmt: skip
        self.assert_running()

    def exited(self) -> dict[str, int | None]:
        """The processes that are no longer running: name -> exit code."""
        return {name: p.returncode for name, p in self.processes.items() if p.poll() is not None}

    def assert_running(self) -> None:
        """Every process started is still running (none exited, none was restarted)."""
        exited = self.exited()
        logs = {name: self.log(name)[-2000:] for name in exited}
        assert {} == exited, "\n".join(f"--- {name}:\n{text}" for name, text in logs.items())

    def log(self, name: str) -> str:
        return (self.tmp_path / f"{name}.log").read_text(errors="replace")

    def goalstore(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        """The `goalstore` binary over this stack, run to its end in a directory of its own."""
        return goalstore(self.env(**env), self.node("cli"), *args)

    def close(self) -> None:
        for process in self.processes.values():  # SIGTERM, as a process manager stops them
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        if self.redis.process and self.redis.process.poll() is None:
            self.redis.kill()
