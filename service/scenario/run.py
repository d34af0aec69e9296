"""Running a scenario: each step through the GoalStore's use cases, as REST and the CLI.

The whole file is validated before the first step runs (steps.py), so a malformed
file changes nothing. Steps then run in order, each its own transaction; a step may
`expect` a conflict (a 409: a stale version, an illegal transition, a closed gate),
which is counted, not treated as a failure. The first unexpected outcome stops the run.

A run whose first step is already applied (its create finds the goal, or it changes
nothing) stops there, writing nothing: the scenario ran before, and `from_step`
resumes it where it stopped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from service.commands import Context
from service.commands.kinds import SelectionMode
from service.domain.errors import ErrorKind, GoalAlreadyExists, GoalStoreError
from service.domain.inputs import Subgoals
from service.domain.tasks import Task, TaskState
from service.scenario.steps import (
    LAST,
    LATEST,
    AddTaskStep,
    AnyStep,
    BlockStep,
    CreateStep,
    CriterionStep,
    DecomposeStep,
    LinkStep,
    NoteStep,
    ReportStep,
    ReviewStep,
    SatisfyStep,
    Scenario,
    SelectStep,
    StateStep,
    UnblockStep,
    UpdateStep,
    check_from_step,
    describe,
)
from service.tracing import new_trace
from service.usecases import STATE_COMMANDS, GoalStore

MAX_SCENARIO_BYTES = 1_048_576


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


_COUNTERS = {
    "create": "created", "update": "updated", "adopt": "adopted", "abandon": "abandoned",
    "delete": "deleted", "decompose": "decomposed", "select": "selected",
    "add_task": "tasks_added", "report": "reported", "verify": "verified", "reject": "rejected",
    "satisfy": "satisfied", "note": "noted", "block": "blocked", "unblock": "unblocked",
    "link": "linked", "review_criterion": "criteria_reviewed",
}  # fmt: skip


class StepFailed(Exception):
    """A step whose outcome is not the one the file states (e.g. another goal selected)."""

    def __init__(self, error: str, detail: str) -> None:
        super().__init__(detail)
        self.error = error


@dataclass
class Runner:
    gs: GoalStore
    last_task: Task | None = None  # made by the latest select or add_task step of this run

    def task_id(self, step: ReportStep | ReviewStep) -> str:
        if step.task == LAST:
            task = self.last_task
            if task is None:  # check_from_step refuses such a file: kept for safety
                raise StepFailed("NoTask", f'no earlier step of this run made a task: "{LAST}"')
            if task.goal_id != step.goal_id:
                raise StepFailed("TaskOfAnotherGoal", f'"{LAST}" is task {task.task_id} of '
                                 f"goal {task.goal_id}, not of goal {step.goal_id}")  # fmt: skip
            return task.task_id
        if step.task == LATEST:
            live = [t for t in self.gs.list_tasks(step.goal_id) if not t.superseded]
            if not live:
                raise StepFailed("NoTask", f"goal {step.goal_id} has no live task")
            return max(live, key=lambda t: (t.created_at, t.attempt)).task_id
        return step.task

    def run(self, ctx: Context, step: AnyStep) -> bool | None:
        """Apply one step; whether it changed anything (None: judge by the ledger)."""
        return _HANDLERS[type(step)](self, ctx, step)


def _create(r: Runner, ctx: Context, s: CreateStep) -> bool:
    r.gs.create_goal(ctx, s.goal)
    return True


def _update(r: Runner, ctx: Context, s: UpdateStep) -> bool:
    return r.gs.update_goal(ctx, s.goal_id, s.changes, s.expected_version).changed


def _state(r: Runner, ctx: Context, s: StateStep) -> bool:
    return STATE_COMMANDS[s.op](r.gs, ctx, s.goal_id, s.expected_version).changed


def _decompose(r: Runner, ctx: Context, s: DecomposeStep) -> bool:
    r.gs.decompose_goal(ctx, s.goal_id, Subgoals(children=s.children), s.expected_version)
    return True


def _select(r: Runner, ctx: Context, s: SelectStep) -> bool:
    selection = r.gs.select(ctx)
    got = selection.goal.id if selection.goal is not None else None
    if selection.mode == SelectionMode.EMITTED and got == s.goal_id:
        r.last_task = selection.task
        return True
    if selection.mode == SelectionMode.EMITTED:
        task = selection.task.task_id if selection.task else None
        raise StepFailed("SelectedAnotherGoal", f"goal {got} was selected, not {s.goal_id} "
                         f"(it is executing now, as task {task})")  # fmt: skip
    why = {
        SelectionMode.SHADOW: f"selection runs in shadow mode (it would have picked {got}) and "
        "hands out no task: set GOAL_SYSTEM=on and GOAL_SHADOW=off, or record the work "
        "with an add_task step",
        SelectionMode.OFF: "selection is off (GOAL_SYSTEM and GOAL_SHADOW are off)",
        SelectionMode.NOT_IN_CANARY: "this run's trace is outside the canary percentage",
        SelectionMode.EMPTY: "no goal was selectable"
        + "".join(f"; {g}: {reason}" for g, reason in selection.skipped),
    }[selection.mode]
    raise StepFailed("NotSelected", f"goal {s.goal_id} was not selected: {why}")


def _add_task(r: Runner, ctx: Context, s: AddTaskStep) -> bool:
    r.last_task = r.gs.create_task(ctx, s.goal_id, evidence=s.evidence, note=s.note,
                                   expected_version=s.expected_version)  # fmt: skip
    return True


def _report(r: Runner, ctx: Context, s: ReportStep) -> None:
    r.gs.report_task(ctx, r.task_id(s), TaskState(s.state), evidence=s.evidence,
                     reason=s.reason, goal_id=s.goal_id)  # fmt: skip


def _review(r: Runner, ctx: Context, s: ReviewStep) -> None:
    r.gs.review_task(ctx, s.goal_id, r.task_id(s), s.op, reason=s.reason,
                     expected_version=s.expected_version)  # fmt: skip


def _satisfy(r: Runner, ctx: Context, s: SatisfyStep) -> None:
    r.gs.satisfy_goal(ctx, s.goal_id, s.result, s.expected_version)


def _note(r: Runner, ctx: Context, s: NoteStep) -> bool:
    r.gs.add_note(ctx, s.goal_id, s.kind, s.text)
    return True


def _block(r: Runner, ctx: Context, s: BlockStep) -> bool:
    return r.gs.block_goal(ctx, s.goal_id, s.reason, s.expected_version).changed


def _unblock(r: Runner, ctx: Context, s: UnblockStep) -> bool:
    return r.gs.unblock_goal(ctx, s.goal_id, s.expected_version).changed


def _link(r: Runner, ctx: Context, s: LinkStep) -> bool:
    return r.gs.link_work(ctx, s.goal_id, s.kind, s.ref, s.url, s.expected_version).changed


def _criterion(r: Runner, ctx: Context, s: CriterionStep) -> bool:
    return r.gs.review_criterion(ctx, s.goal_id, s.criterion_id, s.met, s.evidence,
                                 s.expected_version).changed  # fmt: skip


_HANDLERS: dict[type[Any], Callable[[Runner, Context, Any], bool | None]] = {
    CreateStep: _create, UpdateStep: _update, StateStep: _state, DecomposeStep: _decompose,
    SelectStep: _select,
    AddTaskStep: _add_task, ReportStep: _report, ReviewStep: _review, SatisfyStep: _satisfy,
    NoteStep: _note, BlockStep: _block, UnblockStep: _unblock, LinkStep: _link,
    CriterionStep: _criterion,
}  # fmt: skip


def _goal_of(step: AnyStep) -> str | None:
    return step.goal.id if isinstance(step, CreateStep) else step.goal_id


def _failure(number: int, step: AnyStep, error: str, detail: str) -> dict[str, Any]:
    return {"step": number, "op": step.op, "error": error, "detail": detail}


def _already_applied(number: int, step: AnyStep) -> dict[str, Any]:
    detail = (f"step {number} ({describe(step)}) is already applied: this scenario ran "
              "before; use --from-step N to resume at the first step not applied yet")  # fmt: skip
    return _failure(number, step, "AlreadyApplied", detail)


def apply_scenario(gs: GoalStore, scenario: Scenario, *, from_step: int = 1) -> dict[str, Any]:
    """Run the steps from `from_step` (1-based) on; the run's report. ValueError (nothing
    run) when `from_step` is outside the file or leaves a `"$last"` without its task."""
    check_from_step(scenario, from_step)
    trace = new_trace()
    runner = Runner(gs)
    seq_before = gs.ledger_checkpoint().seq
    counts = dict.fromkeys(_COUNTERS.values(), 0) | {"unchanged": 0}
    conflicts: list[dict[str, Any]] = []
    failure: dict[str, Any] | None = None
    already_applied = False
    applied = 0
    for number, step in enumerate(scenario.steps[from_step - 1 :], start=from_step):
        first = number == from_step
        # The operator's, as the CLI's: admin rights; a step's actor is who the ledger records.
        ctx = Context(actor=step.actor or scenario.actor, trace=trace.child(), admin=True)
        seq = gs.ledger_checkpoint().seq
        try:
            changed = runner.run(ctx, step)
        except GoalStoreError as exc:
            if first and isinstance(exc, GoalAlreadyExists) and step.expect != "conflict":
                failure, already_applied = _already_applied(number, step), True
                break
            conflict = exc.kind == ErrorKind.CONFLICT
            if conflict:
                conflicts.append({"step": number, "op": step.op,
                                  "goal_id": getattr(exc, "goal_id", _goal_of(step)),
                                  "error": type(exc).__name__, "detail": str(exc)})  # fmt: skip
            if not conflict or step.expect != "conflict":
                failure = _failure(number, step, type(exc).__name__, str(exc))
                break
        except StepFailed as exc:
            failure = _failure(number, step, exc.error, str(exc))
            break
        else:
            if changed is None:
                changed = gs.ledger_checkpoint().seq != seq
            if first and not changed and step.expect != "conflict":
                failure, already_applied = _already_applied(number, step), True
                break
            counts[_COUNTERS[step.op] if changed else "unchanged"] += 1
            if step.expect == "conflict":
                applied += 1  # it was applied: the change is committed
                failure = _failure(number, step, "ExpectedConflict",
                                   "the step succeeded but a conflict was expected")  # fmt: skip
                break
        applied += 1
    seq_after = gs.ledger_checkpoint().seq
    return {
        "scenario": scenario.name,
        "ok": failure is None,
        "steps": len(scenario.steps),
        "from_step": from_step,
        "applied": applied,
        **counts,
        "conflicts": conflicts,
        "events_written": seq_after - seq_before,
        "trace_id": trace.trace_id,
        **({"failure": failure} if failure else {}),
        **({"already_applied": True} if already_applied else {}),
    }
