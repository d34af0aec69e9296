"""The example executor's walk-through (examples/executor/README.md), run as written: the
marked sh block, verbatim, under `bash -euo pipefail`, with a redis-server, a port and a
SQLite file of the test's own. Real processes: the API, the events worker, `rq worker`."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from service.testing import free_port
from tests.e2e.conftest import BIN, REPO, RedisServer, process_env

pytestmark = pytest.mark.e2e

README = REPO / "examples" / "executor" / "README.md"
FLOW = re.compile(r"<!-- flow -->\n```sh\n(.*?)\n```\n", re.DOTALL)
TIMEOUT_S = 90


def flow_block() -> str:
    """The README's one sh block marked `<!-- flow -->`, exactly as a user copies it."""
    blocks = FLOW.findall(README.read_text())
    assert 1 == len(blocks), "examples/executor/README.md needs exactly one marked block"
    block: str = blocks[0]
    return block


def session_members(session_id: int) -> list[int]:
    """Processes still alive in a session: everything the block started, work horses too
    (RQ puts a work horse in a process group of its own, but not in a new session)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # it ended while we looked
            continue
        fields = stat.rpartition(")")[2].split()  # after "pid (comm)": state ppid pgrp sid
        if fields[0] != "Z" and int(fields[3]) == session_id:
            members.append(int(entry.name))
    return members


def kill_all(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):  # it ended by itself meanwhile
            os.kill(pid, signal.SIGKILL)


def clone(tmp_path: Path) -> Path:
    """A working directory that looks like a fresh clone after `make run`'s setup, as far
    as the block can tell: `examples/` and `.venv/` (this test run's virtualenv)."""
    workdir = tmp_path / "clone"
    workdir.mkdir()
    (workdir / "examples").symlink_to(REPO / "examples")
    (workdir / ".venv").symlink_to(BIN.parent)
    return workdir


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.kill()


def run_flow(tmp_path: Path, redis: RedisServer, database: Path) -> tuple[Path, str]:
    """The block in a session of its own, its variables pointing at this test's Redis, port
    and SQLite file; fails on a timeout or on any process left running afterwards. The
    working directory and the block's output."""
    assert shutil.which("curl"), "the README's block calls the API with curl"
    workdir = clone(tmp_path)
    script = tmp_path / "flow.sh"
    script.write_text(flow_block())
    env = process_env(DEMO_PORT=str(free_port()), DEMO_REDIS_URL=redis.url,
                      DEMO_DATABASE=str(database))  # fmt: skip
    process = subprocess.Popen(
        ["bash", "-euo", "pipefail", str(script)], cwd=workdir, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        output, _ = process.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        kill_all(session_members(process.pid))
        output, _ = process.communicate(timeout=10)
        pytest.fail(f"the block ran over {TIMEOUT_S} s:\n{output}\n{logs(workdir)}")
    left = session_members(process.pid)
    kill_all(left)
    assert 0 == process.returncode, f"{output}\n{logs(workdir)}"
    assert [] == left, "the block left processes running"
    return workdir, output


def logs(workdir: Path) -> str:
    """The three processes' logs (in the block's default DEMO_DIR), for a failure's message."""
    return "\n".join(f"--- {log.name}\n{log.read_text()[-4000:]}"
                     for log in sorted((workdir / "data").glob("**/*.log")))  # fmt: skip


def stored(database: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The one goal and its one task, as the SQLite file holds them."""
    with sqlite3.connect(database) as conn:
        conn.row_factory = sqlite3.Row
        goals = [dict(row) for row in conn.execute("SELECT id, text, state FROM goals")]
        tasks = [dict(row) for row in conn.execute("SELECT goal_id, state, evidence FROM tasks")]
    assert (1, 1) == (len(goals), len(tasks))
    return goals[0], tasks[0]


def test_the_readme_flow_writes_a_report_and_satisfies_the_goal(
    tmp_path: Path, redis: RedisServer
) -> None:
    """The README's block, verbatim, exits 0 and stops every process it started; the
    stock rq worker ran report_writer.run: the report is in the goal's report_dir (under
    the block's DEMO_DIR), holds the goal's text, and hashes to the evidence's sha256,
    which the block showed; the task was verified and the goal ended satisfied."""
    database = tmp_path / "example.db"
    workdir, output = run_flow(tmp_path, redis, database)

    goal, task = stored(database)
    evidence = json.loads(task["evidence"])
    report = Path(evidence["path"])
    content = report.read_bytes()
    assert (workdir / "data" / "report-example" / "reports").resolve() == report.parent.resolve()
    assert goal["text"] in content.decode()
    assert (hashlib.sha256(content).hexdigest(), len(content)) == (
        evidence["sha256"],
        evidence["bytes"],
    )
    assert evidence["sha256"] in output
    assert (goal["id"], "verified", "satisfied") == (task["goal_id"], task["state"], goal["state"])
    assert ["verified", "satisfied"] == output.split()[-2:]
