"""Goal trees (issue 18): a leaf's progress rolled up to the root of a tree of ~10k goals,
and a goal decomposed into 100 children, on each backend.

The tree: one root decomposed level by level through decompose_goal, `tree_branching`
children a goal, `tree_depth` levels (6 and 6: 1+6+36+216+1296+7776 = 9,331 goals).
It is built on SQLite and copied into PostgreSQL (as the other sections' stores are),
so both backends measure the same tree.

The leaf figure: `tree_leaves` leaves spread across the tree (no two under the same
parent while there are enough parents, so no parent completes and every path to the
root is as long as the tree is deep), each prepared beforehand through the gate:
adopted, started, its task reported succeeded. Then one leaf at a time, each command
timed alone, from its call to its commit:
- `verify` (review_task): the task verified, the leaf's progress 1, and that climbs to
  the root, a goal_progressed event each level, in the command's one transaction. This
  is the call that updates the root's progress, the figure held to the target; the root
  is read afterwards (untimed), and must have moved, or nothing was measured.
- `satisfy` (satisfy_goal): the leaf through the gate, its parent settled (its policy
  checked) in the same transaction. Its progress was already 1: nothing climbs further
  unless a parent completes. Reported beside it, held to the same target.

The decompose figure: a new root decomposed into `decompose_children` children,
`decompose_runs` times, in the same store (the tree in it); only the call is timed.
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path
from typing import Any

from service import commands
from service.bench.dataset import VETTING
from service.bench.plan import POSTGRESQL, SQLITE, TARGETS, Plan
from service.bench.postgres import BenchServer
from service.bench.stats import percentiles, progress, timed
from service.commands import Context
from service.commands.starting import Started
from service.config import Settings
from service.domain.inputs import GoalCreate, Subgoals
from service.domain.tasks import TaskState
from service.store.db import Database, open_database
from service.store.migrate import migrate

ROOT = "tree"
CHUNK = 200  # decompositions per transaction while building (one fsync each)
MAX_ATTEMPTS: int = Settings.model_fields["max_attempts"].default
CTX = Context("bench")


def measure_all(work: Path, server: BenchServer | None, plan: Plan) -> dict[str, dict[str, Any]]:
    """The figures on SQLite and, given a server, on PostgreSQL (a copy of the SQLite
    store made before either is measured): by backend."""
    sqlite = open_database(work / "trees.db", busy_timeout_ms=30_000)
    copied = None
    try:
        migrate(sqlite)
        leaves, built = build(sqlite, plan.tree_branching, plan.tree_depth)
        if server is not None:
            progress("postgresql: copying the tree into schema trees")
            copied = server.copy(sqlite, "trees")
        out = {SQLITE: measure(sqlite, SQLITE, plan, leaves, built)}
        if copied is not None:
            tree = {**built, "via": "store copy", "copied_in_s": copied.report["seconds"]}
            out[POSTGRESQL] = measure(copied.db, POSTGRESQL, plan, leaves, tree)
    finally:
        sqlite.close()
        if copied is not None and server is not None:
            copied.db.close()
            server.drop_schema(copied.schema)
    return out


def build(db: Database, branching: int, depth: int) -> tuple[list[str], dict[str, Any]]:
    """The tree, level by level; its leaves (the last level) in breadth-first order."""
    progress(f"trees: building a tree of {branching} children a goal, {depth} levels")
    began = time.perf_counter()
    commands.create_goal(db, CTX, _spec(ROOT))
    level = [ROOT]
    for _ in range(depth - 1):
        below: list[str] = []
        for start in range(0, len(level), CHUNK):
            with db.batch():
                for parent in level[start : start + CHUNK]:
                    kids = [_spec(f"{parent}.{n}") for n in range(branching)]
                    commands.decompose_goal(db, CTX, parent, Subgoals(children=kids))
                    below.extend(str(k.id) for k in kids)
        level = below
    seconds = time.perf_counter() - began
    goals = sum(branching**n for n in range(depth))
    progress(f"  {goals} goals in {seconds:.1f} s")
    return level, {"goals": goals, "depth": depth, "branching": branching,
                   "via": "decompose_goal", "built_in_s": round(seconds, 3)}  # fmt: skip


def _spec(goal_id: str, text: str = "bench tree goal") -> GoalCreate:
    return GoalCreate.model_validate({"id": goal_id, "text": text, "category": "maintenance",
                                      "value": 0.5, "effort": 0.5, "risk": 0.2})  # fmt: skip


def measure(
    db: Database, backend: str, plan: Plan, leaves: list[str], tree: dict[str, Any]
) -> dict[str, Any]:
    picked = spread(leaves, plan.tree_leaves)
    progress(f"{backend}: {len(picked)} leaves adopted, started and reported")
    tasks = {leaf: prepare(db, leaf) for leaf in picked}
    progress(f"{backend}: verify then satisfy, leaf by leaf, timed alone")
    verify, satisfy, root = [], [], _root_progress(db)
    for leaf, task_id in tasks.items():
        verify.extend(timed(partial(commands.review_task, db, CTX, leaf, task_id, "verify",
                                    max_attempts=MAX_ATTEMPTS), 1))  # fmt: skip
        now = _root_progress(db)
        if not now > root:
            raise RuntimeError(f"bench: verifying {leaf} left the root's progress at {now}")
        root = now
        satisfy.extend(timed(partial(commands.satisfy_goal, db, CTX, leaf, {"summary": "ok"}), 1))
    target = TARGETS["tree_leaf_rollup_p95_ms"]
    verified, satisfied = percentiles(verify), percentiles(satisfy)
    rollup = {"verify": verified, "satisfy": satisfied, "root_progress": root,
              "target_p95_ms": target,
              "met": max(verified["p95_ms"], satisfied["p95_ms"]) <= target}  # fmt: skip
    return {"tree": tree, "leaf_rollup": rollup, "decompose": decompose(db, backend, plan)}


def spread(items: list[str], count: int) -> list[str]:
    """`count` items evenly spaced through `items` (all of them if there are fewer)."""
    step = max(1, len(items) // max(1, count))
    return items[::step][:count]


def prepare(db: Database, leaf: str) -> str:
    """Adopt and start the leaf, its task reported succeeded: ready to be verified."""
    commands.adopt_goal(db, CTX, leaf, vetting=VETTING)
    version = commands.get_goal(db, leaf).version
    [started] = commands.start_goals(db, CTX, [(leaf, version)], VETTING)
    if not isinstance(started, Started):
        raise RuntimeError(f"bench: the leaf {leaf} did not start: {started}")
    task_id = started.task.task_id
    commands.report_task(db, CTX, task_id, TaskState.SUCCEEDED, evidence={"summary": "done"},
                         max_attempts=MAX_ATTEMPTS)  # fmt: skip
    return task_id


def _root_progress(db: Database) -> float:
    return commands.get_goal(db, ROOT).progress


def decompose(db: Database, backend: str, plan: Plan) -> dict[str, Any]:
    size, runs = plan.decompose_children, plan.decompose_runs
    progress(f"{backend}: decomposing a goal into {size} children x{runs}")
    samples = []
    for run in range(runs):
        parent = f"wide-{backend}-{run}"
        commands.create_goal(db, CTX, _spec(parent))
        spec = Subgoals(children=[_spec(f"{parent}.{n}") for n in range(size)])
        samples.extend(timed(partial(commands.decompose_goal, db, CTX, parent, spec), 1))
    figure = percentiles(samples)
    target = TARGETS["tree_decompose_100_p95_ms"]
    return {"children": size, **figure, "target_p95_ms": target,
            "met": figure["p95_ms"] <= target}  # fmt: skip
