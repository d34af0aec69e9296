"""The bench's selector process (`python -m service.bench.selector`): its arguments, the
select loop it times, and the line it prints for the bench to read back."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
import pytest

from service.bench import selector
from service.commands import Context
from service.commands.selection import Selection
from service.domain.goal import Goal
from service.domain.inputs import GoalCreate
from service.testing import goal_spec

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def emitted(goal_id: str) -> Selection:
    goal: Goal = GoalCreate.model_validate(goal_spec(id=goal_id)).build("bench", NOW)
    return Selection(mode="emitted", goal=goal)


@dataclass
class FakeSelector:
    """Emits g0, g1, … until `available` run out, then answers `empty`; logs each call."""

    available: int
    calls: list[tuple[str, int]] = field(default_factory=list)
    next_id: int = 0

    def _take(self, want: int) -> list[Selection]:
        got = min(want, self.available - self.next_id)
        if got <= 0:
            return [Selection(mode="empty")]
        out = [emitted(f"g{n}") for n in range(self.next_id, self.next_id + got)]
        self.next_id += got
        return out

    def select(self, ctx: Context) -> Selection:
        self.calls.append(("select", 1))
        return self._take(1)[0]

    def select_many(self, ctx: Context, want: int) -> list[Selection]:
        self.calls.append(("select_many", want))
        return self._take(want)


def test_parse_args_reads_quota_batch_and_go_key() -> None:
    """The three positional arguments the bench passes, in its order."""
    assert selector.Args(quota=50, batch=32, go="goalstore-bench:select-go") == (
        selector.parse_args(["50", "32", "goalstore-bench:select-go"])
    )


def test_parse_args_reads_the_ready_key_when_given() -> None:
    """--ready names the list the selector tells once it is connected (the bench waits
    for every selector's word before the start signal)."""
    assert selector.Args(quota=5, batch=1, go="go", ready="ready") == (
        selector.parse_args(["5", "1", "go", "--ready", "ready"])
    )
    assert selector.parse_args(["5", "1", "go"]).ready is None


@pytest.mark.parametrize("argv", [[], ["50", "32"], ["fifty", "32", "go"]])
def test_parse_args_refuses_missing_or_non_integer_arguments(argv: list[str]) -> None:
    """A bad command line is argparse's usage error (exit status 2), not a traceback."""
    with pytest.raises(SystemExit) as exit_:
        selector.parse_args(argv)

    assert 2 == exit_.value.code


def test_one_per_call_uses_select_until_the_quota() -> None:
    """Batch 1 is select(), POST /v1/goals/select's path, called once per goal."""
    fake = FakeSelector(available=10)

    ids = selector.select_until(fake, quota=3, batch=1)

    assert ["g0", "g1", "g2"] == ids
    assert [("select", 1)] * 3 == fake.calls


def test_batches_use_select_many_and_never_ask_past_the_quota() -> None:
    """Larger batches are select_many(); the last call asks only for what is left."""
    fake = FakeSelector(available=100)

    ids = selector.select_until(fake, quota=70, batch=32)

    assert [f"g{n}" for n in range(70)] == ids
    assert [("select_many", 32), ("select_many", 32), ("select_many", 6)] == fake.calls


def test_stops_when_nothing_more_is_emitted() -> None:
    """An `empty` answer ends the loop short of the quota, with what was emitted."""
    fake = FakeSelector(available=5)

    ids = selector.select_until(fake, quota=8, batch=4)

    assert ["g0", "g1", "g2", "g3", "g4"] == ids
    assert [("select_many", 4), ("select_many", 4), ("select_many", 3)] == fake.calls


def test_report_is_one_json_line_of_ids_and_seconds() -> None:
    """The bench reads {"emitted": [...], "seconds": s} back from the process's stdout."""
    line = selector.report(["g1", "g2"], 0.25)

    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert {"emitted": ["g1", "g2"], "seconds": 0.25} == orjson.loads(line)
