"""Scenarios: a JSON file of goal commands, replayed through the same command functions.

The whole file is validated before the first step runs, so a malformed file
changes nothing. Steps then run in order, each its own transaction; a step may
`expect` a conflict (a stale version, an illegal transition), which is counted,
not treated as a failure. The first unexpected outcome stops the run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from service.commands import Context
from service.domain.errors import GoalStoreError, IllegalTransition, VersionConflict
from service.domain.inputs import GoalCreate, GoalUpdate, Identifier
from service.tracing import new_trace
from service.usecases import STATE_COMMANDS, GoalStore

MAX_SCENARIO_BYTES = 1_048_576
Expect = Literal["ok", "conflict"]


class _Step(BaseModel):
    model_config = ConfigDict(extra="forbid")

    actor: Identifier | None = None
    expect: Expect = "ok"


class CreateStep(_Step):
    op: Literal["create"]
    goal: GoalCreate


class UpdateStep(_Step):
    op: Literal["update"]
    goal_id: Identifier
    expected_version: int = Field(ge=1)
    changes: GoalUpdate


class StateStep(_Step):
    op: Literal["adopt", "abandon", "delete"]
    goal_id: Identifier
    expected_version: int | None = Field(default=None, ge=1)


Step = Annotated[CreateStep | UpdateStep | StateStep, Field(discriminator="op")]


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    actor: Identifier = "scenario"
    steps: list[Step] = Field(min_length=1, max_length=10_000)


class UnsafePath(ValueError):
    """A scenario path that is absolute or leads outside the working directory."""


def resolve_scenario_path(raw: str, cwd: Path) -> Path:
    path = Path(raw)
    if path.is_absolute():
        raise UnsafePath(f"{raw}: give a path relative to the working directory")
    resolved = (cwd / path).resolve()
    if not resolved.is_relative_to(cwd.resolve()):
        raise UnsafePath(f"{raw}: the path leads outside the working directory")
    return resolved


def load_scenario(raw_path: str, cwd: Path) -> Scenario:
    path = resolve_scenario_path(raw_path, cwd)
    if path.stat().st_size > MAX_SCENARIO_BYTES:
        raise ValueError(f"{raw_path}: scenarios are limited to {MAX_SCENARIO_BYTES} bytes")
    return Scenario.model_validate(orjson.loads(path.read_bytes()))


_COUNTERS = {"create": "created", "update": "updated", "adopt": "adopted",
             "abandon": "abandoned", "delete": "deleted"}  # fmt: skip


def _run_step(gs: GoalStore, ctx: Context, step: CreateStep | UpdateStep | StateStep) -> bool:
    """Apply one step through the same use cases as REST and the CLI; whether it changed
    anything."""
    if isinstance(step, CreateStep):
        gs.create_goal(ctx, step.goal)
        return True
    if isinstance(step, UpdateStep):
        return gs.update_goal(ctx, step.goal_id, step.changes, step.expected_version).changed
    return STATE_COMMANDS[step.op](gs, ctx, step.goal_id, step.expected_version).changed


def apply_scenario(gs: GoalStore, scenario: Scenario) -> dict[str, Any]:
    trace = new_trace()
    seq_before = gs.ledger_checkpoint().seq
    counts = dict.fromkeys(_COUNTERS.values(), 0) | {"unchanged": 0}
    conflicts: list[dict[str, Any]] = []
    failure: dict[str, Any] | None = None
    applied = 0
    for number, step in enumerate(scenario.steps, start=1):
        # The operator's, as the CLI's: admin rights; a step's actor is who the ledger records.
        ctx = Context(actor=step.actor or scenario.actor, trace=trace.child(), admin=True)
        try:
            changed = _run_step(gs, ctx, step)
        except (VersionConflict, IllegalTransition) as exc:
            conflicts.append(
                {"step": number, "op": step.op, "goal_id": exc.goal_id,
                 "error": type(exc).__name__, "detail": str(exc)}
            )  # fmt: skip
            if step.expect != "conflict":
                failure = {"step": number, "op": step.op, "error": type(exc).__name__,
                           "detail": str(exc)}  # fmt: skip
                break
        except GoalStoreError as exc:
            failure = {"step": number, "op": step.op, "error": type(exc).__name__,
                       "detail": str(exc)}  # fmt: skip
            break
        else:
            counts[_COUNTERS[step.op] if changed else "unchanged"] += 1
            if step.expect == "conflict":
                applied += 1  # it was applied: the change is committed
                failure = {"step": number, "op": step.op, "error": "ExpectedConflict",
                           "detail": "the step succeeded but a conflict was expected"}  # fmt: skip
                break
        applied += 1
    seq_after = gs.ledger_checkpoint().seq
    return {
        "scenario": scenario.name,
        "ok": failure is None,
        "steps": len(scenario.steps),
        "applied": applied,
        **counts,
        "conflicts": conflicts,
        "events_written": seq_after - seq_before,
        "trace_id": trace.trace_id,
        **({"failure": failure} if failure else {}),
    }
