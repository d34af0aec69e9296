"""Real processes: the Procfile's commands, `goalstore serve` restarted, the CLI binary."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.testing import goal_spec
from tests.integration.conftest import free_port

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def procfile() -> dict[str, str]:
    entries = {}
    for line in (REPO / "Procfile").read_text().splitlines():
        name, sep, command = line.partition(":")
        if sep and not line.startswith("#"):
            entries[name.strip()] = command.strip()
    return entries


def environment(tmp_path: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOALSTORE_")}
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        GOALSTORE_DATABASE=str(tmp_path / "e2e.db"),
        PORT=str(port),
    )
    return env


def run_procfile(name: str, env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    """Start a Procfile entry the way a process manager does: through the shell."""
    return subprocess.Popen(
        ["/bin/sh", "-c", f"exec {procfile()[name]}"],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def wait_ready(url: str, process: subprocess.Popen[bytes], seconds: float = 20) -> None:
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


@pytest.fixture
def web(tmp_path: Path) -> Iterator[tuple[str, dict[str, str], Path]]:
    port = free_port()
    yield f"http://127.0.0.1:{port}", environment(tmp_path, port), tmp_path


def goalstore(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "goalstore"), *args], env=env, cwd=cwd, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip


def test_procfile_release_then_web_serves_and_goals_survive_a_restart(
    web: tuple[str, dict[str, str], Path],
) -> None:
    """release migrates; web serves on $PORT; a goal outlives a SIGTERM and restart."""
    url, env, cwd = web
    assert {"web", "release"} <= set(procfile())

    release = subprocess.run(
        ["/bin/sh", "-c", procfile()["release"]], env=env, cwd=cwd, capture_output=True, text=True
    )
    assert 0 == release.returncode, release.stderr
    shipped = sorted(path.name for path in (REPO / "migrations").glob("*.sql"))
    assert shipped == json.loads(release.stdout)["applied"]

    first = run_procfile("web", env, cwd)
    wait_ready(url, first)
    created = httpx.post(f"{url}/v1/goals", json=goal_spec(text="survive a restart"))
    assert 201 == created.status_code
    goal_id = created.json()["id"]
    assert 200 == httpx.post(f"{url}/v1/goals/{goal_id}/adopt").status_code
    assert "Application shutdown complete" in stop(first)

    second = run_procfile("web", env, cwd)
    try:
        wait_ready(url, second)
        after = httpx.get(f"{url}/v1/goals/{goal_id}").json()
    finally:
        stop(second)
    assert ("survive a restart", "adopted", 2) == (after["text"], after["state"], after["version"])

    verify = goalstore(env, cwd, "ledger", "verify")
    assert 0 == verify.returncode, verify.stdout
    assert 2 == json.loads(verify.stdout)["rows"]


def test_cli_binary_reports_errors_with_exit_codes(web: tuple[str, dict[str, str], Path]) -> None:
    """The installed `goalstore` prints JSON on stdout, logs on stderr, and exits by outcome."""
    _, env, cwd = web
    (cwd / "goal.json").write_text(json.dumps(goal_spec(id="g-cli")))

    created = goalstore(env, cwd, "goals", "create", "goal.json")
    duplicate = goalstore(env, cwd, "goals", "create", "goal.json")
    missing = goalstore(env, cwd, "goals", "show", "g-none")
    escape = goalstore(env, cwd, "apply-scenario", "../outside.json")

    assert (0, 4, 3, 5) == tuple(r.returncode for r in (created, duplicate, missing, escape))
    assert "g-cli" == json.loads(created.stdout)["id"]
    assert "conflict" == json.loads(duplicate.stdout)["error"]
    assert "not_found" == json.loads(missing.stderr.splitlines()[-1])["msg"].split(":")[0]


def test_demo_scenario_from_the_readme(web: tuple[str, dict[str, str], Path]) -> None:
    """The shipped scenario runs from the repository root and the ledger verifies after it."""
    _, env, _ = web

    result = goalstore(env, REPO, "apply-scenario", "deploy/scenarios/goal_flow_001.json")
    verify = goalstore(env, REPO, "ledger", "verify")

    assert 0 == result.returncode, result.stdout + result.stderr
    summary = json.loads(result.stdout)
    assert (True, 2, 1, 7) == (
        summary["ok"],
        summary["created"],
        len(summary["conflicts"]),
        summary["events_written"],
    )
    assert 0 == verify.returncode
    assert shlex.split(procfile()["web"])[0] == "goalstore"
