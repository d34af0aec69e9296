"""Every entry point adopts with the configured checker and threshold (issue 13).

The checker configured here (GOALSTORE_CHECKER_URL) answers severity 0.3 for every
goal, and GOALSTORE_VET_THRESHOLD is 0.25, so adoption must be refused, and the
built-in checker (severity 0 for these goals) or the default threshold (0.6) would
let it through. REST, the CLI, apply-scenario and the selector worker each meet the
same refusal: they all call the use cases bound once by the composition root.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from redis import Redis

from service import cli
from service.commands import Context
from service.config import Settings
from service.domain.goal import GoalState
from service.domain.inputs import GoalCreate
from service.runtime import build_services
from service.testing import FakeChecker, goal_spec
from tests.integration.conftest import ServerFactory
from workers.scheduler import top_up

SEVERITY, THRESHOLD = 0.3, 0.25
GOAL = goal_spec(id="g-vetted", text="Rewrite the belief kernel's storage layer")


@pytest.fixture
def checker() -> Iterator[FakeChecker]:
    with FakeChecker({"severity": SEVERITY, "belief_ids": []}) as fake:
        yield fake


@pytest.fixture
def vetting_env(monkeypatch: pytest.MonkeyPatch, checker: FakeChecker) -> FakeChecker:
    monkeypatch.setenv("GOALSTORE_CHECKER_URL", checker.url)
    monkeypatch.setenv("GOALSTORE_VET_THRESHOLD", str(THRESHOLD))
    return checker


def test_rest_adoption_asks_the_configured_checker_and_applies_the_threshold(
    start_server: ServerFactory, checker: FakeChecker
) -> None:
    """POST /adopt: 409 goal-blocked at severity 0.3 over threshold 0.25, checker asked."""
    server = start_server(checker_url=checker.url, vet_threshold=THRESHOLD)
    with httpx.Client(base_url=server.url, timeout=10) as http:
        assert 201 == http.post("/v1/goals", json=GOAL).status_code
        refused = http.post("/v1/goals/g-vetted/adopt")
    assert 409 == refused.status_code
    assert "urn:goalstore:problem:goal-blocked" == refused.json()["type"]
    assert [GOAL["text"]] == [asked["query"] for asked in checker.seen]


def _cli(database: str, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    code = cli.main(["--database", database, *argv])
    return code, orjson.loads(capsys.readouterr().out)


def test_cli_adoption_asks_the_configured_checker_and_applies_the_threshold(
    tmp_path: Path,
    database_location: str,
    capsys: pytest.CaptureFixture[str],
    vetting_env: FakeChecker,
) -> None:
    """`goalstore goals adopt`: exit 4 (conflict), the goal stays proposed."""
    (tmp_path / "goal.json").write_bytes(orjson.dumps(GOAL))
    assert 0 == _cli(database_location, capsys, "migrate")[0]
    assert 0 == _cli(database_location, capsys, "goals", "create", str(tmp_path / "goal.json"))[0]
    code, out = _cli(database_location, capsys, "goals", "adopt", "g-vetted")
    assert (cli.EXIT_CONFLICT, "conflict") == (code, out["error"])
    assert "proposed" == _cli(database_location, capsys, "goals", "show", "g-vetted")[1]["state"]
    assert 1 == len(vetting_env.seen)


def test_scenario_adoption_asks_the_configured_checker_and_applies_the_threshold(
    tmp_path: Path,
    database_location: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    vetting_env: FakeChecker,
) -> None:
    """`goalstore apply-scenario`: the adopt step fails with GoalBlocked, as REST's would."""
    scenario = {"name": "vetted", "steps": [
        {"op": "create", "goal": GOAL}, {"op": "adopt", "goal_id": "g-vetted"}]}  # fmt: skip
    (tmp_path / "scenario.json").write_bytes(orjson.dumps(scenario))
    monkeypatch.chdir(tmp_path)
    assert 0 == _cli(database_location, capsys, "migrate")[0]
    code, out = _cli(database_location, capsys, "apply-scenario", "scenario.json")
    assert cli.EXIT_CHECK_FAILED == code
    assert {"step": 2, "op": "adopt", "error": "GoalBlocked"} == {
        k: out["failure"][k] for k in ("step", "op", "error")
    }
    assert 1 == len(vetting_env.seen)


def test_the_selector_worker_re_vets_with_the_configured_checker_and_threshold(
    database_location: str, redis_url: str, redis_client: Redis, checker: FakeChecker, ctx: Context
) -> None:
    """workers.scheduler.top_up (`goalstore selector`) re-vets before it starts a goal: a
    goal adopted while the checker said 0.0 is skipped once it says 0.3, nothing emitted."""
    settings = Settings(
        database=database_location, redis_url=redis_url, redis_prefix="goalstore-test:",
        scheduler_queue="scheduler-test", scheduler_depth=1, cache_max_lag_s=3600,
        checker_url=checker.url, vet_threshold=THRESHOLD,
        GOAL_SYSTEM=True, GOAL_SHADOW=False,  # type: ignore[call-arg]
    )  # fmt: skip
    services = build_services(settings)
    try:
        gs = services.goalstore
        gs.migrate()
        gs.create_goal(ctx, GoalCreate.model_validate(GOAL))
        checker.answer = {"severity": 0.0, "belief_ids": []}
        assert GoalState.ADOPTED == gs.adopt_goal(ctx, "g-vetted").goal.state
        gs.rebuild_cache()
        checker.answer = {"severity": SEVERITY, "belief_ids": []}
        assert {"selected": 0, "waiting": 0} == top_up(services, once=True)
        assert GoalState.ADOPTED == gs.get_goal("g-vetted").state
        assert 2 == len(checker.seen)
    finally:
        services.close()


def test_without_the_settings_the_same_goal_is_adopted(
    tmp_path: Path, database_location: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The control: with the built-in checker and the default threshold this goal passes,
    so the refusals above come from the configured checker and threshold."""
    (tmp_path / "goal.json").write_bytes(orjson.dumps(GOAL))
    assert 0 == _cli(database_location, capsys, "migrate")[0]
    assert 0 == _cli(database_location, capsys, "goals", "create", str(tmp_path / "goal.json"))[0]
    code, out = _cli(database_location, capsys, "goals", "adopt", "g-vetted")
    assert (0, "adopted") == (code, out["state"])
