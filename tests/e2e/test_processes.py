"""Real processes: the Procfile's commands, `goalstore serve` restarted, the CLI binary."""

from __future__ import annotations

import json
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.testing import free_port, goal_spec, post_adopted_goal
from tests.e2e.conftest import REPO, goalstore, process_env, procfile, stop, wait_ready

pytestmark = pytest.mark.e2e


def environment(tmp_path: Path, port: int) -> dict[str, str]:
    return process_env(GOALSTORE_DATABASE=str(tmp_path / "e2e.db"), PORT=str(port))


def run_procfile(name: str, env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    """Start a Procfile entry the way a process manager does: through the shell."""
    return subprocess.Popen(
        ["/bin/sh", "-c", f"exec {procfile()[name]}"],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


@pytest.fixture
def web(tmp_path: Path) -> Iterator[tuple[str, dict[str, str], Path]]:
    port = free_port()
    yield f"http://127.0.0.1:{port}", environment(tmp_path, port), tmp_path


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
    shipped = sorted(path.name for path in (REPO / "migrations" / "sqlite").glob("*.sql"))
    assert shipped == json.loads(release.stdout)["applied"]

    first = run_procfile("web", env, cwd)
    wait_ready(url, first)
    with httpx.Client(base_url=url, timeout=10) as http:
        goal_id = post_adopted_goal(http, text="survive a restart")
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


def test_procfile_web_refuses_the_network_without_keys(
    web: tuple[str, dict[str, str], Path],
) -> None:
    """The Procfile's web binds 0.0.0.0: without GOALSTORE_API_KEYS (and without an
    explicit GOALSTORE_ALLOW_ANONYMOUS) it exits 2 saying how to fix it, before serving;
    with keys it serves, and a request without one is a 401."""
    url, env, cwd = web
    assert 0 == subprocess.run(["/bin/sh", "-c", procfile()["release"]], env=env,
                               cwd=cwd, capture_output=True).returncode  # fmt: skip
    keyless = {k: v for k, v in env.items() if k != "GOALSTORE_ALLOW_ANONYMOUS"}
    refused = run_procfile("web", keyless, cwd)
    output, _ = refused.communicate(timeout=30)
    assert 2 == refused.returncode
    assert "GOALSTORE_API_KEYS" in output.decode() and "0.0.0.0" in output.decode()

    key = "k" * 24
    keyed = run_procfile("web", {**keyless, "GOALSTORE_API_KEYS": f"ops:admin:{key}"}, cwd)
    try:
        wait_ready(url, keyed)
        anonymous = httpx.get(f"{url}/v1/goals")
        known = httpx.get(f"{url}/v1/goals", headers={"Authorization": f"Bearer {key}"})
    finally:
        stop(keyed)
    assert (401, 200) == (anonymous.status_code, known.status_code)


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
