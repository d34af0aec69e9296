"""`goalstore` in-process: exit codes, JSON on stdout, and apply-scenario over a real SQLite file.

Exit codes (service/cli.py): 0 done, 1 a check failed, 2 usage, 3 not found,
4 conflict, 5 invalid input. Every expected count below is counted by hand from
the scenario it belongs to.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from service.store.db import open_database
from service.testing import goal_spec, row_counts
from tests.integration.conftest import CliRunner

REPO = Path(__file__).resolve().parents[2]
DEMO_SCENARIO = "deploy/scenarios/goal_flow_001.json"


@dataclass
class Cli:
    """`goalstore` over this test's database: `run(*argv)` is its exit code and JSON."""

    database: str
    run_cli: CliRunner

    def __call__(self, *argv: str) -> tuple[int, Any]:
        return self.run_cli(self.database, *argv)

    def counts(self) -> dict[str, int]:
        db = open_database(self.database)
        try:
            return row_counts(db.connection())
        finally:
            db.close()


NOTHING = {"goals": 0, "ledger": 0, "outbox": 0}


@pytest.fixture
def run(database_location: str, run_cli: CliRunner) -> Cli:
    return Cli(database_location, run_cli)


def write_json(path: Path, value: Any) -> str:
    path.write_bytes(orjson.dumps(value))
    return str(path)


def create(run: Cli, tmp_path: Path, goal_id: str, **overrides: Any) -> dict[str, Any]:
    body = write_json(tmp_path / f"{goal_id}.json", goal_spec(id=goal_id, **overrides))
    code, out = run("goals", "create", body)
    assert 0 == code, out
    return dict(out)


# --- migrate --------------------------------------------------------------------------


def test_migrate_twice_applies_everything_once(run: Cli) -> None:
    """The first migrate applies every migration file; the second applies none."""
    on_disk = sorted(p.name for p in (REPO / "migrations" / "sqlite").glob("*.sql"))

    first_code, first = run("migrate")
    second_code, second = run("migrate")

    assert "0001_init.sql" == on_disk[0]
    assert (0, on_disk, str(run.database)) == (first_code, first["applied"], first["database"])
    assert (0, []) == (second_code, second["applied"])


# --- goals ----------------------------------------------------------------------------


def test_create_from_file_then_show(run: Cli, tmp_path: Path) -> None:
    """`goals create FILE` prints the new goal; `goals show` prints the same goal."""
    created = create(run, tmp_path, "G-1", category="exploration", horizon_max_min=60)

    code, shown = run("goals", "show", "G-1")

    assert ("G-1", "exploration", "proposed", 1, "cli", 60) == (
        created["id"], created["category"], created["state"], created["version"],
        created["owner"], created["horizon_max_min"],
    )  # fmt: skip
    assert (0, created) == (code, shown)
    assert {"goals": 1, "ledger": 1, "outbox": 1} == run.counts()


def test_create_from_stdin_takes_the_actor_flag(run: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--actor` names the owner; `-` reads the body from stdin."""
    body = orjson.dumps(goal_spec(id="G-stdin"))
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(body)))

    code, out = run("--actor", "alice", "goals", "create", "-")

    assert (0, "G-stdin", "alice") == (code, out["id"], out["owner"])


def test_the_operator_may_change_any_goal_and_the_ledger_names_it(run: Cli, tmp_path: Path) -> None:
    """The CLI acts as the admin operator (issue 17): goals of alice's are updated,
    adopted and abandoned by the default `cli` and deleted by `--actor ops`, each exit 0;
    the ledger records those actors, alice stays the owner."""
    body = write_json(tmp_path / "a.json", goal_spec(id="G-A"))
    assert 0 == run("--actor", "alice", "goals", "create", body)[0]
    patch = write_json(tmp_path / "patch.json", {"text": "revised by the operator"})

    codes = [
        run("goals", "update", "G-A", patch, "--expected-version", "1")[0],
        run("goals", "adopt", "G-A")[0],
        run("goals", "abandon", "G-A")[0],
        run("--actor", "ops", "goals", "delete", "G-A")[0],
    ]
    _, shown = run("goals", "show", "G-A")
    _, timeline = run("ledger", "timeline", "--goal-id", "G-A")

    assert [0, 0, 0, 0] == codes
    assert ("alice", "abandoned", "revised by the operator") == (
        shown["owner"], shown["state"], shown["text"]
    )  # fmt: skip
    assert ["alice", "cli", "cli", "cli", "ops"] == [e["actor"] for e in timeline["data"]]


def test_show_unknown_goal_exits_3(run: Cli) -> None:
    """`goals show` of an id that does not exist exits 3 with a not_found error."""
    code, out = run("goals", "show", "G-nope")

    assert (3, "not_found") == (code, out["error"])


def test_create_with_duplicate_id_exits_4(run: Cli, tmp_path: Path) -> None:
    """Creating a goal whose id is taken is a conflict (exit 4) and writes nothing."""
    create(run, tmp_path, "G-1")

    code, out = run("goals", "create", write_json(tmp_path / "again.json", goal_spec(id="G-1")))

    assert (4, "conflict") == (code, out["error"])
    assert {"goals": 1, "ledger": 1, "outbox": 1} == run.counts()


@pytest.mark.parametrize(
    "body",
    [
        goal_spec(id="G-1", value=1.5),
        goal_spec(id="G-1", state="adopted"),
        goal_spec(id="G-1", version=3),
        goal_spec(id="G-1", category="chores"),
        goal_spec(id="G-1", goal_type="no_such_type"),
        goal_spec(id="G-1", horizon_min_min=60, horizon_max_min=30),
        goal_spec(id="G-1", depends_on=["G-missing"]),
        {"id": "G-1"},
    ],
)
def test_create_invalid_body_exits_5_and_writes_nothing(
    run: Cli, tmp_path: Path, body: dict[str, Any]
) -> None:
    """A create body that is not a valid goal is invalid input (exit 5); nothing is written."""
    code, out = run("goals", "create", write_json(tmp_path / "bad.json", body))

    assert (5, "invalid") == (code, out["error"])
    assert NOTHING == run.counts()


def test_create_from_a_file_that_is_not_json_exits_5(run: Cli, tmp_path: Path) -> None:
    """A body that does not parse as JSON is invalid input (exit 5)."""
    path = tmp_path / "broken.json"
    path.write_text('{"text": "unterminated')

    code, out = run("goals", "create", str(path))

    assert (5, "invalid") == (code, out["error"])
    assert NOTHING == run.counts()


def test_adopt_twice_then_abandon_then_adopt_conflicts(run: Cli, tmp_path: Path) -> None:
    """adopt → adopted (changed), again → unchanged, abandon → abandoned, adopt → exit 4."""
    create(run, tmp_path, "G-1")

    adopted = run("goals", "adopt", "G-1", "--expected-version", "1")
    again = run("goals", "adopt", "G-1")
    abandoned = run("goals", "abandon", "G-1", "--expected-version", "2")
    refused = run("goals", "adopt", "G-1")

    assert (0, "adopted", 2, True) == (
        adopted[0], adopted[1]["state"], adopted[1]["version"], adopted[1]["changed"]
    )  # fmt: skip
    assert (0, "adopted", 2, False) == (
        again[0], again[1]["state"], again[1]["version"], again[1]["changed"]
    )  # fmt: skip
    assert (0, "abandoned", 3, True) == (
        abandoned[0], abandoned[1]["state"], abandoned[1]["version"], abandoned[1]["changed"]
    )  # fmt: skip
    assert (4, "conflict") == (refused[0], refused[1]["error"])
    assert {"goals": 1, "ledger": 3, "outbox": 3} == run.counts()


def test_adopt_with_stale_version_exits_4(run: Cli, tmp_path: Path) -> None:
    """`goals adopt --expected-version` with a stale version exits 4 and logs the conflict."""
    create(run, tmp_path, "G-1")

    code, out = run("goals", "adopt", "G-1", "--expected-version", "7")

    assert (4, "conflict") == (code, out["error"])
    assert "proposed" == run("goals", "show", "G-1")[1]["state"]
    assert {"goals": 1, "ledger": 2, "outbox": 2} == run.counts()


def test_update_with_current_version_applies(run: Cli, tmp_path: Path) -> None:
    """`goals update ID FILE --expected-version N` changes the given fields, bumps the version."""
    create(run, tmp_path, "G-1")
    patch = write_json(tmp_path / "patch.json", {"value": 0.95, "horizon_max_min": 120})

    code, out = run("goals", "update", "G-1", patch, "--expected-version", "1")

    assert (0, 0.95, 120, 2, True) == (
        code, out["value"], out["horizon_max_min"], out["version"], out["changed"]
    )  # fmt: skip


def test_update_with_stale_version_exits_4_and_changes_nothing(run: Cli, tmp_path: Path) -> None:
    """A stale --expected-version exits 4; the goal keeps its fields and version."""
    create(run, tmp_path, "G-1")
    run("goals", "update", "G-1", write_json(tmp_path / "p1.json", {"value": 0.9}),
        "--expected-version", "1")  # fmt: skip
    patch = write_json(tmp_path / "p2.json", {"value": 0.1})

    code, out = run("goals", "update", "G-1", patch, "--expected-version", "1")

    assert (4, "conflict") == (code, out["error"])
    _, shown = run("goals", "show", "G-1")
    assert (0.9, 2) == (shown["value"], shown["version"])
    assert {"goals": 1, "ledger": 3, "outbox": 3} == run.counts()  # create, update, conflict


@pytest.mark.parametrize(
    "patch", [{"value": 2.0}, {"state": "adopted"}, {"text": None}, {"depends_on": ["G-1"]}]
)
def test_update_with_invalid_patch_exits_5(run: Cli, tmp_path: Path, patch: dict[str, Any]) -> None:
    """A patch that would not make a valid goal is invalid input (exit 5); nothing changes."""
    create(run, tmp_path, "G-1")

    code, out = run("goals", "update", "G-1", write_json(tmp_path / "p.json", patch),
                    "--expected-version", "1")  # fmt: skip

    assert (5, "invalid") == (code, out["error"])
    assert {"goals": 1, "ledger": 1, "outbox": 1} == run.counts()


def test_update_of_unknown_goal_exits_3(run: Cli, tmp_path: Path) -> None:
    """Updating a goal that does not exist exits 3."""
    code, out = run("goals", "update", "G-nope", write_json(tmp_path / "p.json", {"value": 0.1}),
                    "--expected-version", "1")  # fmt: skip

    assert (3, "not_found") == (code, out["error"])


def test_update_without_expected_version_is_a_usage_error(run: Cli, tmp_path: Path) -> None:
    """`goals update` without --expected-version stops at argument parsing (exit 2)."""
    create(run, tmp_path, "G-1")

    with pytest.raises(SystemExit) as stopped:
        run("goals", "update", "G-1", write_json(tmp_path / "p.json", {"value": 0.1}))

    assert 2 == stopped.value.code
    assert {"goals": 1, "ledger": 1, "outbox": 1} == run.counts()


def test_delete_hides_from_list_but_show_still_finds_it(run: Cli, tmp_path: Path) -> None:
    """After `goals delete`, list omits the goal, --include-deleted and show still have it."""
    create(run, tmp_path, "G-1")
    create(run, tmp_path, "G-2")

    code, deleted = run("goals", "delete", "G-1", "--expected-version", "1")

    assert (0, True, 2) == (code, deleted["changed"], deleted["version"])
    assert deleted["deleted_at"] is not None
    assert ["G-2"] == [g["id"] for g in run("goals", "list")[1]["data"]]
    assert ["G-1", "G-2"] == [g["id"] for g in run("goals", "list", "--include-deleted")[1]["data"]]
    shown_code, shown = run("goals", "show", "G-1")
    assert (0, "G-1", deleted["deleted_at"]) == (shown_code, shown["id"], shown["deleted_at"])


def test_list_filters_and_pages(run: Cli, tmp_path: Path) -> None:
    """`goals list` filters by --state and --category and pages with --limit/--cursor."""
    create(run, tmp_path, "G-1", category="maintenance")
    create(run, tmp_path, "G-2", category="exploration")
    create(run, tmp_path, "G-3", category="exploration")
    run("goals", "adopt", "G-2")

    def ids(*argv: str) -> tuple[list[str], int]:
        code, out = run("goals", "list", *argv)
        assert 0 == code
        return [g["id"] for g in out["data"]], out["count"]

    assert (["G-1", "G-2", "G-3"], 3) == ids()
    assert (["G-2"], 1) == ids("--state", "adopted")
    assert (["G-2", "G-3"], 2) == ids("--category", "exploration")
    assert (["G-3"], 1) == ids("--state", "proposed", "--category", "exploration")

    _, first = run("goals", "list", "--limit", "2")
    assert (["G-1", "G-2"], 3) == ([g["id"] for g in first["data"]], first["count"])
    assert first["next_cursor"] is not None
    _, second = run("goals", "list", "--limit", "2", "--cursor", str(first["next_cursor"]))
    assert (["G-3"], None) == ([g["id"] for g in second["data"]], second["next_cursor"])


@pytest.mark.parametrize("limit", ["0", "-1", "-3"])
def test_list_with_a_limit_below_one_is_invalid_input(run: Cli, tmp_path: Path, limit: str) -> None:
    """`goals list --limit N` with N < 1 is invalid input (exit 5), as the API's limit>=1 rule."""
    create(run, tmp_path, "G-1")
    create(run, tmp_path, "G-2")

    code, out = run("goals", "list", "--limit", limit)

    assert (5, "invalid") == (code, out["error"])


# --- ledger ---------------------------------------------------------------------------


def test_timeline_lists_a_goals_events_in_order(run: Cli, tmp_path: Path) -> None:
    """`ledger timeline --goal-id` prints that goal's events, oldest first, and no others."""
    create(run, tmp_path, "G-1")
    create(run, tmp_path, "G-2")
    patch = write_json(tmp_path / "p.json", {"value": 0.9})
    run("goals", "update", "G-1", patch, "--expected-version", "1")
    run("goals", "adopt", "G-2")
    run("goals", "adopt", "G-1", "--expected-version", "2")
    run("goals", "update", "G-1", patch, "--expected-version", "1")  # stale: a conflict

    code, out = run("ledger", "timeline", "--goal-id", "G-1")

    assert (0, "G-1") == (code, out["goal_id"])
    assert [
        (1, "goal_created"),
        (3, "goal_updated"),
        (5, "goal_adopted"),
        (6, "goal_conflict_detected"),
    ] == [(e["seq"], e["event_type"]) for e in out["data"]]
    assert {"cli"} == {e["actor"] for e in out["data"]}


def test_timeline_of_unknown_goal_exits_3(run: Cli) -> None:
    """`ledger timeline` for a goal that does not exist exits 3."""
    code, out = run("ledger", "timeline", "--goal-id", "G-nope")

    assert (3, "not_found") == (code, out["error"])


def _two_tasks(run: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Goals T1 and T2, each adopted with a task added by hand, reported and verified, in
    one scenario (events 1-2 creates, 3-4 adopts, then per goal: add_task, report, verify,
    goal_progressed): its report."""
    monkeypatch.chdir(tmp_path)
    steps: list[dict[str, Any]] = [
        {"op": "create", "goal": goal_spec(id="T1")},
        {"op": "create", "goal": goal_spec(id="T2")},
        {"op": "adopt", "goal_id": "T1"},
        {"op": "adopt", "goal_id": "T2"},
    ]
    for goal_id in ("T1", "T2"):
        steps += [
            {"op": "add_task", "goal_id": goal_id},
            {"op": "report", "goal_id": goal_id, "state": "succeeded", "evidence": "done"},
            {"op": "verify", "goal_id": goal_id},
        ]
    write_json(tmp_path / "tasks.json", {"name": "tasks", "steps": steps})
    code, out = run("apply-scenario", "tasks.json")
    assert 0 == code, out
    return dict(out)


def test_timeline_of_a_task_lists_its_events_only(
    run: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ledger timeline --task-id` prints the events naming that task, oldest first: its
    start, report, review and the progress it moved; none of the other task's."""
    _two_tasks(run, tmp_path, monkeypatch)
    _, goal = run("ledger", "timeline", "--goal-id", "T2")
    added = [e for e in goal["data"] if e["event_type"] == "goal_task_added"]
    task_id = added[0]["payload"]["task"]["task_id"]

    code, out = run("ledger", "timeline", "--task-id", task_id)

    assert (0, task_id, None) == (code, out["task_id"], out["goal_id"])
    assert [
        (9, "goal_task_added"), (10, "task_reported"), (11, "task_reviewed"),
        (12, "goal_progressed"),
    ] == [(e["seq"], e["event_type"]) for e in out["data"]]  # fmt: skip
    assert {"T2"} == {e["goal_id"] for e in out["data"]}


def test_timeline_of_a_trace_and_of_a_goal_within_it(
    run: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--trace-id` of a scenario run prints every event it wrote (and none written outside
    it); with `--goal-id` as well, only that goal's among them."""
    report = _two_tasks(run, tmp_path, monkeypatch)
    run("notes", "add", "T1", "--kind", "info", "--text", "outside the scenario's trace")

    code, trace = run("ledger", "timeline", "--trace-id", report["trace_id"])
    _, both = run("ledger", "timeline", "--trace-id", report["trace_id"], "--goal-id", "T1")

    assert (0, list(range(1, report["events_written"] + 1))) == (
        code, [e["seq"] for e in trace["data"]]
    )  # fmt: skip
    assert 12 == report["events_written"]
    assert [1, 3, 5, 6, 7, 8] == [e["seq"] for e in both["data"]]


def test_timeline_pages_with_after_and_limit(
    run: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--limit` cuts a page and names `next_after`; `--after` starts the next page there;
    the last page has no `next_after`."""
    report = _two_tasks(run, tmp_path, monkeypatch)

    _, first = run("ledger", "timeline", "--trace-id", report["trace_id"], "--limit", "5")
    _, second = run("ledger", "timeline", "--trace-id", report["trace_id"], "--limit", "10",
                    "--after", str(first["next_after"]))  # fmt: skip

    assert ([1, 2, 3, 4, 5], 5) == ([e["seq"] for e in first["data"]], first["next_after"])
    assert (list(range(6, 13)), None) == ([e["seq"] for e in second["data"]], second["next_after"])


@pytest.mark.parametrize(
    ("argv", "code", "error"),
    [
        (["--task-id", "t-nope"], 3, "not_found"),
        (["--goal-id", "G-nope", "--trace-id", "x"], 3, "not_found"),
        ([], 2, "usage"),
        (["--trace-id", "x", "--limit", "0"], 5, "invalid"),
    ],
)
def test_timeline_refusals(run: Cli, argv: list[str], code: int, error: str) -> None:
    """An unknown task or goal exits 3; no filter at all is a usage error (2); a limit
    below 1 is invalid input (5)."""
    got, out = run("ledger", "timeline", *argv)

    assert (code, error) == (got, out["error"])


def test_timeline_of_an_unknown_trace_is_empty(run: Cli, tmp_path: Path) -> None:
    """A trace with no events is an empty timeline (exit 0), not an error."""
    create(run, tmp_path, "G-1")

    code, out = run("ledger", "timeline", "--trace-id", "0" * 32)

    assert (0, []) == (code, out["data"])


def test_checkpoint_prints_the_head_and_verifies(run: Cli, tmp_path: Path) -> None:
    """`ledger checkpoint` prints SEQ:HASH of the head; verify accepts it with exit 0."""
    create(run, tmp_path, "G-1")
    run("goals", "adopt", "G-1")
    run("goals", "abandon", "G-1")

    code, checkpoint = run("ledger", "checkpoint")
    verify_code, report = run("ledger", "verify", "--checkpoint", checkpoint["checkpoint"])

    assert (0, 3) == (code, checkpoint["seq"])
    assert 64 == len(checkpoint["hash"])
    assert f"3:{checkpoint['hash']}" == checkpoint["checkpoint"]
    assert (0, True, 3, checkpoint["hash"]) == (
        verify_code, report["ok"], report["head_seq"], report["head_hash"]
    )  # fmt: skip


def test_replay_check_agrees_with_the_table(run: Cli, tmp_path: Path) -> None:
    """`ledger replay --check` rebuilds every goal, deleted ones included, and exits 0."""
    create(run, tmp_path, "G-1")
    create(run, tmp_path, "G-2")
    run("goals", "update", "G-1", write_json(tmp_path / "p.json", {"metadata": {"k": [1, 2]}}),
        "--expected-version", "1")  # fmt: skip
    run("goals", "delete", "G-2")

    code, out = run("ledger", "replay", "--check")

    assert (0, True, 2, []) == (code, out["ok"], out["goals"], out["differences"])


# --- apply-scenario -------------------------------------------------------------------


def scenario_summary(out: dict[str, Any]) -> dict[str, Any]:
    keys = ("ok", "steps", "applied", "created", "updated", "adopted", "abandoned", "deleted",
            "unchanged", "events_written")  # fmt: skip
    return {key: out[key] for key in keys} | {
        "conflict_steps": [c["step"] for c in out["conflicts"]]
    }


def test_demo_scenario_applies_with_one_expected_conflict(
    run: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shipped goal_flow_001 demo runs whole: two goals, one logged stale-version conflict."""
    monkeypatch.chdir(REPO)

    code, out = run("apply-scenario", DEMO_SCENARIO)

    # 2 creates, 1 update, 2 adopts, 1 conflict (step 6), 1 abandon: 7 events.
    assert (0, "GOAL_FLOW_001") == (code, out["scenario"])
    assert {
        "ok": True,
        "steps": 7,
        "applied": 7,
        "created": 2,
        "updated": 1,
        "adopted": 2,
        "abandoned": 1,
        "deleted": 0,
        "unchanged": 0,
        "events_written": 7,
        "conflict_steps": [6],
    } == scenario_summary(out)
    _, first = run("goals", "show", "G-DEMO-001")
    _, second = run("goals", "show", "G-DEMO-002")
    assert ("abandoned", 4, 0.8, "liam") == (
        first["state"], first["version"], first["value"], first["owner"]
    )  # fmt: skip
    assert ("adopted", 2, 0.1, "codex", ["G-DEMO-001"]) == (
        second["state"], second["version"], second["risk"], second["owner"], second["depends_on"]
    )  # fmt: skip
    assert {"goals": 2, "ledger": 7, "outbox": 7} == run.counts()
    assert 0 == run("ledger", "verify")[0]
    assert 0 == run("ledger", "replay", "--check")[0]


def test_own_scenario_counts_every_kind_of_step(
    run: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Creates, updates, adopts, abandons, deletes, repeats and both conflicts are counted."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "scenarios").mkdir()
    steps: list[dict[str, Any]] = [
        # events 1-3
        {"op": "create", "goal": goal_spec(id="A")},
        {"op": "create", "goal": goal_spec(id="B")},
        {"op": "create", "goal": goal_spec(id="C", depends_on=["A"])},
        # event 4: A v2
        {"op": "update", "goal_id": "A", "expected_version": 1, "changes": {"text": "A, revised"}},
        # event 5: A v3, then the same adopt again: unchanged, no event
        {"op": "adopt", "goal_id": "A"},
        {"op": "adopt", "goal_id": "A", "expected_version": 3},
        # event 6: B v2, abandoned
        {"op": "abandon", "goal_id": "B", "expected_version": 1},
        # step 8, expected conflict: an illegal transition writes no event
        {"op": "adopt", "goal_id": "B", "expect": "conflict"},
        # step 9, expected conflict: a stale version writes event 7
        {"op": "update", "goal_id": "C", "expected_version": 5, "changes": {"value": 0.1},
         "expect": "conflict"},
        # event 8: C v2, deleted; deleting again is unchanged, no event
        {"op": "delete", "goal_id": "C", "expected_version": 1},
        {"op": "delete", "goal_id": "C"},
        # event 9: A v4, by another actor
        {"op": "update", "goal_id": "A", "expected_version": 3, "changes": {"value": 0.9},
         "actor": "reviewer"},
    ]  # fmt: skip
    path = write_json(tmp_path / "scenarios" / "mine.json",
                      {"name": "mine", "actor": "planner", "steps": steps})  # fmt: skip

    code, out = run("apply-scenario", str(Path(path).relative_to(tmp_path)))

    assert 0 == code
    assert {
        "ok": True,
        "steps": 12,
        "applied": 12,
        "created": 3,
        "updated": 2,
        "adopted": 1,
        "abandoned": 1,
        "deleted": 1,
        "unchanged": 2,
        "events_written": 9,
        "conflict_steps": [8, 9],
    } == scenario_summary(out)
    _, a = run("goals", "show", "A")
    assert ("adopted", 4, 0.9, "A, revised", "planner") == (
        a["state"], a["version"], a["value"], a["text"], a["owner"]
    )  # fmt: skip
    _, timeline = run("ledger", "timeline", "--goal-id", "A")
    assert ["planner", "planner", "planner", "reviewer"] == [e["actor"] for e in timeline["data"]]
    assert {out["trace_id"]} == {e["trace_id"] for e in timeline["data"]}
    assert {"goals": 3, "ledger": 9, "outbox": 9} == run.counts()


def _valid_scenario() -> dict[str, Any]:
    return {"name": "valid", "steps": [{"op": "create", "goal": goal_spec(id="A")}]}


def test_absolute_scenario_path_is_refused(
    run: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An absolute scenario path exits 5 and applies nothing, even though the file is valid."""
    monkeypatch.chdir(tmp_path)
    path = write_json(tmp_path / "valid.json", _valid_scenario())

    code, out = run("apply-scenario", str(Path(path).resolve()))

    assert (5, "invalid") == (code, out["error"])
    assert NOTHING == run.counts()


@pytest.mark.parametrize("raw", ["../outside.json", "sub/../../outside.json", "./../outside.json"])
def test_scenario_path_escaping_the_working_directory_is_refused(
    run: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, raw: str
) -> None:
    """A relative path that leads out of the working directory exits 5 and applies nothing."""
    work = tmp_path / "work"
    (work / "sub").mkdir(parents=True)
    monkeypatch.chdir(work)
    write_json(tmp_path / "outside.json", _valid_scenario())

    code, out = run("apply-scenario", raw)

    assert (5, "invalid") == (code, out["error"])
    assert NOTHING == run.counts()


def test_scenario_symlink_out_of_the_working_directory_is_refused(
    run: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A symlink inside the working directory that points outside it is refused too."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    write_json(tmp_path / "outside.json", _valid_scenario())
    (work / "link.json").symlink_to(tmp_path / "outside.json")

    code, out = run("apply-scenario", "link.json")

    assert (5, "invalid") == (code, out["error"])
    assert NOTHING == run.counts()


@pytest.mark.parametrize(
    "bad_step",
    [
        {"op": "explode", "goal_id": "A"},
        {"op": "adopt"},
        {"op": "update", "goal_id": "A", "changes": {"value": 0.2}},
        {"op": "update", "goal_id": "A", "expected_version": 1, "changes": {"value": 3}},
        {"op": "create", "goal": goal_spec(id="B", state="adopted")},
        {"op": "adopt", "goal_id": "A", "expect": "maybe"},
        {"op": "adopt", "goal_id": "A", "surprise": True},
    ],
)
def test_malformed_scenario_applies_nothing(
    run: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bad_step: dict[str, Any]
) -> None:
    """One malformed step makes the whole file invalid (exit 5): not even earlier steps run."""
    monkeypatch.chdir(tmp_path)
    scenario = _valid_scenario()
    scenario["steps"].append(bad_step)
    write_json(tmp_path / "bad.json", scenario)

    code, out = run("apply-scenario", "bad.json")

    assert (5, "invalid") == (code, out["error"])
    assert NOTHING == run.counts()


@pytest.mark.parametrize(
    "scenario",
    [{"name": "empty", "steps": []}, {"steps": [{"op": "adopt", "goal_id": "A"}]}, ["not", "a"]],
)
def test_scenario_without_name_or_steps_is_invalid(
    run: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scenario: Any
) -> None:
    """A scenario needs a name and at least one step; otherwise exit 5."""
    monkeypatch.chdir(tmp_path)
    write_json(tmp_path / "s.json", scenario)

    code, out = run("apply-scenario", "s.json")

    assert (5, "invalid") == (code, out["error"])
    assert NOTHING == run.counts()


def test_step_that_succeeds_when_a_conflict_was_expected_stops_the_run(
    run: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A step expecting a conflict that succeeds fails the run (exit 1), is counted as applied
    (its change is committed), and later steps do not run."""
    monkeypatch.chdir(tmp_path)
    steps = [
        {"op": "create", "goal": goal_spec(id="A")},
        {"op": "update", "goal_id": "A", "expected_version": 1, "changes": {"value": 0.9},
         "expect": "conflict"},
        {"op": "create", "goal": goal_spec(id="B")},
    ]  # fmt: skip
    write_json(tmp_path / "s.json", {"name": "wrong-expectation", "steps": steps})

    code, out = run("apply-scenario", "s.json")

    assert (1, False, 3, 2, 1) == (code, out["ok"], out["steps"], out["applied"], out["updated"])
    assert (2, "update", "ExpectedConflict") == (
        out["failure"]["step"], out["failure"]["op"], out["failure"]["error"]
    )  # fmt: skip
    assert 3 == run("goals", "show", "B")[0]
    assert 1 == run.counts()["goals"]


@pytest.mark.parametrize(
    ("failing_step", "error", "events"),
    [
        # stale version, no expect: the conflict event is still written (create + conflict)
        ({"op": "update", "goal_id": "A", "expected_version": 2, "changes": {"value": 0.9}},
         "VersionConflict", 2),
        ({"op": "adopt", "goal_id": "missing"}, "GoalNotFound", 1),
        ({"op": "create", "goal": goal_spec(id="A")}, "GoalAlreadyExists", 1),
        ({"op": "update", "goal_id": "A", "expected_version": 1,
          "changes": {"depends_on": ["nope"]}}, "InvalidGoal", 1),
    ],
)  # fmt: skip
def test_unexpected_failure_stops_the_run(
    run: Cli,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    failing_step: dict[str, Any],
    error: str,
    events: int,
) -> None:
    """A step that fails without `expect: conflict` stops the run at that step with exit 1."""
    monkeypatch.chdir(tmp_path)
    steps = [
        {"op": "create", "goal": goal_spec(id="A")},
        failing_step,
        {"op": "adopt", "goal_id": "A", "expected_version": 1},
    ]
    write_json(tmp_path / "s.json", {"name": "fails", "steps": steps})

    code, out = run("apply-scenario", "s.json")

    assert (1, False, 1, 1) == (code, out["ok"], out["applied"], out["created"])
    assert (2, error) == (out["failure"]["step"], out["failure"]["error"])
    assert (events, events) == (out["events_written"], run.counts()["ledger"])
    _, goal = run("goals", "show", "A")
    assert ("proposed", 1) == (goal["state"], goal["version"])
