"""Random forests driven through the command functions on a real store of each engine,
checked after every step against issue 18's rules recomputed here from the table alone
(nothing from service.domain.trees is called). The steps: roots created; goals
decomposed (1-4 children, random policies and values, 0 included, some depending on a
sibling or any goal); leaves worked through the gate; parents satisfied by hand or
started (always refused); goals abandoned (cascade or not), moved, given dependencies,
revalued. Whether a step is refused, and why, is worked out from the table before it."""

from __future__ import annotations

import graphlib
import itertools
import json
import shutil
import tempfile
from collections.abc import Callable
from typing import Any, NamedTuple

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import stateful as sm
from hypothesis import strategies as st

from service import commands
from service.commands import ChildrenOpen, GateClosed
from service.commands.starting import Started
from service.domain.errors import IllegalTransition, InvalidGoal
from service.domain.inputs import GoalCreate, GoalUpdate, Subgoals
from service.domain.tasks import TaskState
from service.domain.vetting import GoalBlocked
from service.store.db import Database
from service.testing import default_vetting, goal_spec, make_context, migrated_database
from tests.conftest import PostgresRun

DEPTH = 8  # the README's limit: levels, a root being level 1
MAX_GOALS = 36  # keeps each step's checks cheap
VALUES = st.sampled_from([0.0, 0.0, 0.25, 0.5, 1.0])
POLICIES = st.sampled_from(["all", "all", "any", "manual"])
Parents = dict[str, str | None]
Deps = dict[str, tuple[str, ...]]


class Row(NamedTuple):
    id: str
    parent: str | None
    state: str
    value: float
    progress: float
    policy: str
    block: dict[str, Any] | None
    depends: tuple[str, ...]
    live_tasks: int  # not superseded
    verified_tasks: int

    @property
    def open(self) -> bool:
        return self.state not in ("satisfied", "abandoned")


class Forest:
    """The goals table as read now, and what the rules say about it."""

    def __init__(self, db: Database) -> None:
        conn = db.connection()
        tasks = {t["goal_id"]: (int(t["live"]), int(t["verified"])) for t in conn.execute(
            "SELECT goal_id, count(*) AS live, sum(CASE state WHEN 'verified' THEN 1 ELSE 0 END)"
            " AS verified FROM tasks WHERE superseded = 0 GROUP BY goal_id")}  # fmt: skip
        self.rows = {
            r["id"]: Row(r["id"], r["parent_id"], r["state"], float(r["value"]),
                         float(r["progress"]), r["completion_policy"], json.loads(r["tree_block"]),
                         tuple(json.loads(r["depends_on"])), *tasks.get(r["id"], (0, 0)))
            for r in conn.execute(
                "SELECT id, parent_id, state, value, progress, completion_policy, tree_block,"
                " depends_on FROM goals WHERE deleted_at IS NULL")
        }  # fmt: skip
        self.kids: dict[str, list[Row]] = {g: [] for g in self.rows}
        for row in self.rows.values():
            if row.parent is not None:
                self.kids[row.parent].append(row)
        self.parents: Parents = {g: r.parent for g, r in self.rows.items()}
        self.deps: Deps = {g: r.depends for g, r in self.rows.items()}

    def ancestors(self, goal_id: str) -> list[str]:
        found, at = [], self.rows[goal_id].parent
        while at is not None and len(found) <= DEPTH:
            found, at = [*found, at], self.rows[at].parent
        return found

    def descendants(self, goal_id: str) -> list[str]:
        return [d for k in self.kids[goal_id] for d in (k.id, *self.descendants(k.id))]

    def height(self, goal_id: str) -> int:
        return 1 + max((self.height(k.id) for k in self.kids[goal_id]), default=0)

    def open_kids(self, goal_id: str) -> list[str]:
        return [k.id for k in self.kids[goal_id] if k.open]

    def counted(self, goal_id: str) -> list[Row]:
        return [k for k in self.kids[goal_id] if k.state != "abandoned"]

    def expected_progress(self, goal_id: str) -> float:
        """1 once satisfied; else the value-weighted mean of the children that count
        (equal weights when every value is 0); else verified live tasks / live tasks."""
        row, counted = self.rows[goal_id], self.counted(goal_id)
        if row.state == "satisfied":
            return 1.0
        if not counted:
            return row.verified_tasks / row.live_tasks if row.live_tasks else 0.0
        weights = [k.value for k in counted]
        weights = weights if sum(weights) else [1.0] * len(counted)
        mean = sum(w * self.expected_progress(k.id) for w, k in zip(weights, counted, strict=True))
        return round(mean / sum(weights), 9)

    def policy_holds(self, goal_id: str) -> bool:
        done = [k.state == "satisfied" for k in self.counted(goal_id)]
        policy = self.rows[goal_id].policy
        return bool(done) and (all(done) if policy == "all" else policy == "any" and any(done))

    def start_blocks(self, goal_id: str) -> set[str]:
        """Why a leaf may not start: its own unmet dependencies, or an ancestor's."""

        def unmet(g: str) -> bool:
            return any(self.rows[d].state != "satisfied" for d in self.rows[g].depends)

        found = {"dependency_unsatisfied"} if unmet(goal_id) else set()
        return found | ({"ancestor_blocked"} if any(map(unmet, self.ancestors(goal_id))) else set())

    def waits_cycle(self, parents: Parents | None = None, deps: Deps | None = None,
                    new: tuple[str, ...] = ()) -> bool:  # fmt: skip
        """Whether some open goal would wait on itself: a goal waits on its dependencies,
        its open children and its ancestors' dependencies (the edges from `parents` and
        `deps`, the table's unless given; `new`: open goals not stored yet)."""
        parents, deps = parents or self.parents, deps or self.deps
        opened = {g for g, r in self.rows.items() if r.open} | set(new)
        edges: dict[str, set[str]] = {g: set() for g in opened}
        for g in opened:
            chain = [g]  # g and its ancestors (a parent cycle stops at DEPTH + 2)
            while len(chain) < DEPTH + 2 and (up := parents.get(chain[-1])) is not None:
                chain.append(up)
            edges[g].update(d for a in chain for d in deps.get(a, ()) if d in opened)
            if (parent := parents.get(g)) is not None and parent in opened:
                edges[parent].add(g)
        try:
            graphlib.TopologicalSorter(edges).prepare()
        except graphlib.CycleError:
            return True
        return False

    def depends_on(self, start: str, goal_id: str) -> bool:
        """Whether `start` depends on `goal_id` through depends_on alone, whatever the states."""
        return start == goal_id or any(self.depends_on(d, goal_id) for d in self.deps[start])


Location = Callable[[], tuple[str, Callable[[], None]]]  # a new store: where, and its cleanup


def _pick(data: st.DataObject, ids: list[str]) -> str:
    return data.draw(st.sampled_from(sorted(ids)))


class Trees(sm.RuleBasedStateMachine):
    def __init__(self, location: Location) -> None:
        super().__init__()
        where, self.cleanup = location()
        self.db = migrated_database(where)
        self.ctx = make_context("hypothesis", admin=True)
        self.vetting = default_vetting()
        self.ids = (f"g{n}" for n in itertools.count())
        self.before = Forest(self.db)  # the table before the step being checked
        self.by_hand: set[str] = set()  # satisfied through the gate by a step
        self.abandoning: set[str] = set()  # what the step's abandon must abandon
        self.frozen: dict[str, float] = {}  # an abandoned goal's progress: as it was

    def teardown(self) -> None:
        self.db.close()
        self.cleanup()

    def _open(self, where: Callable[[Row], object] = lambda r: True) -> list[str]:
        return [g for g, r in self.before.rows.items() if r.open and where(r)]

    def _leaves(self) -> list[str]:
        return self._open(lambda r: not self.before.kids[r.id])

    def _parents(self) -> list[str]:
        return self._open(lambda r: self.before.kids[r.id])

    def _refused_unchanged(self, error: type[Exception], call: Callable[[], object]) -> None:
        with pytest.raises(error):
            call()
        assert self.before.rows == Forest(self.db).rows

    def _update(self, goal_id: str, **fields: Any) -> Callable[[], object]:
        patch = GoalUpdate(**fields)
        return lambda: commands.update_goal(self.db, self.ctx, goal_id, patch, None,
                                            any_version=True)  # fmt: skip

    def _create(self, **fields: Any) -> None:
        commands.create_goal(self.db, self.ctx, GoalCreate.model_validate(goal_spec(**fields)))

    @sm.initialize(policy=POLICIES)
    def a_first_tree(self, policy: str) -> None:
        self._create(id=(root := next(self.ids)), completion_policy=policy)
        kids = [goal_spec(id=next(self.ids), value=v) for v in (0.5, 0.25, 0.0)]
        spec = Subgoals.model_validate({"children": kids})
        commands.decompose_goal(self.db, self.ctx, root, spec)

    @sm.precondition(lambda self: len(self.before.rows) < MAX_GOALS or not self._open())
    @sm.rule(value=VALUES, policy=POLICIES)
    def create_root(self, value: float, policy: str) -> None:
        self._create(id=next(self.ids), value=value, completion_policy=policy)

    @sm.precondition(lambda self: len(self.before.rows) < MAX_GOALS)
    @sm.rule(data=st.data(), size=st.integers(1, 4))
    def decompose(self, data: st.DataObject, size: int) -> None:
        f, kids = self.before, []
        closed_too = data.draw(st.booleans()) or not self._open()  # mostly open parents
        parent = _pick(data, list(f.rows) if closed_too else self._open())
        parents, deps = dict(f.parents), dict(f.deps)
        for n in range(size):
            how = data.draw(st.sampled_from(["none", "none", "sibling", "goal"]))
            on = [kids[-1]["id"]] if how == "sibling" and n else []
            on = [_pick(data, list(f.rows))] if how == "goal" else on
            kids.append(goal_spec(id=next(self.ids), value=data.draw(VALUES), depends_on=on,
                                  completion_policy=data.draw(POLICIES)))  # fmt: skip
            parents[kids[-1]["id"]], deps[kids[-1]["id"]] = parent, tuple(on)
        new = tuple(c["id"] for c in kids)
        spec = Subgoals.model_validate({"children": kids})
        call = lambda: commands.decompose_goal(self.db, self.ctx, parent, spec)  # noqa: E731
        if not f.rows[parent].open:
            self._refused_unchanged(IllegalTransition, call)
        elif len(f.ancestors(parent)) + 2 > DEPTH or f.waits_cycle(parents, deps, new):
            self._refused_unchanged(InvalidGoal, call)
        else:
            made = commands.decompose_goal(self.db, self.ctx, parent, spec)
            assert list(new) == [c.id for c in made.children]
            assert made.parent.tree_block is None  # a child added lifts an abandoned one's block

    @sm.precondition(lambda self: bool(self._leaves()))
    @sm.rule(data=st.data(), finish=st.booleans())
    def work_leaf(self, data: st.DataObject, finish: bool) -> None:
        """Adopt, start, report and verify a leaf's task, then (`finish`) satisfy it."""
        leaf = _pick(data, self._leaves())
        task = self.db.connection().execute(
            "SELECT task_id, state FROM tasks WHERE goal_id = ? AND superseded = 0"
            " ORDER BY attempt DESC LIMIT 1", (leaf,)).fetchone()  # fmt: skip
        if self.before.rows[leaf].state != "executing":
            commands.adopt_goal(self.db, self.ctx, leaf, vetting=self.vetting)
            version = commands.get_goal(self.db, leaf).version
            [started] = commands.start_goals(self.db, self.ctx, [(leaf, version)], self.vetting)
            if expected := self.before.start_blocks(leaf):
                assert isinstance(started, GoalBlocked), started
                assert expected == {b.reason for b in started.verdict.blocks}
                return
            assert isinstance(started, Started), started
            task = {"task_id": started.task.task_id, "state": "queued"}
        if task["state"] != "verified":
            commands.report_task(self.db, self.ctx, task["task_id"], TaskState.SUCCEEDED,
                                 evidence={"summary": "ok"}, max_attempts=3)  # fmt: skip
            commands.review_task(self.db, self.ctx, leaf, task["task_id"], "verify",
                                 max_attempts=3)  # fmt: skip
        if finish:
            commands.satisfy_goal(self.db, self.ctx, leaf, {"summary": "done"})
            self.by_hand.add(leaf)

    @sm.precondition(lambda self: bool(self._leaves()))
    @sm.rule(data=st.data())
    def finish_leaf(self, data: st.DataObject) -> None:
        """work_leaf to the end (leaves are most of a forest's work)."""
        self.work_leaf(data, True)

    def _counted_parents(self) -> list[str]:
        return [p for p in self._parents() if self.before.counted(p)]

    @sm.precondition(lambda self: bool(self._counted_parents()))
    @sm.rule(data=st.data())
    def satisfy_parent(self, data: st.DataObject) -> None:
        """Through the gate: refused while a child is open, or while an abandoned child
        holds it (policy all or manual), else satisfied ("complete")."""
        parent = _pick(data, self._counted_parents())
        row = self.before.rows[parent]
        call = lambda: commands.satisfy_goal(self.db, self.ctx, parent, {"summary": "x"})  # noqa: E731
        if self.before.open_kids(parent):
            return self._refused_unchanged(ChildrenOpen, call)
        if row.block is not None and row.policy != "any":
            return self._refused_unchanged(GateClosed, call)
        assert "satisfied" == call().state.value  # type: ignore[attr-defined]
        self.by_hand.add(parent)

    @sm.precondition(lambda self: bool(self._open(lambda r: self.before.open_kids(r.id))))
    @sm.rule(data=st.data())
    def start_a_parent(self, data: st.DataObject) -> None:
        """A goal with open children is never started: its work is its children's."""
        parent = _pick(data, self._open(lambda r: self.before.open_kids(r.id)))
        if self.before.rows[parent].state == "executing":  # started before it had children
            return
        commands.adopt_goal(self.db, self.ctx, parent, vetting=self.vetting)
        version = commands.get_goal(self.db, parent).version
        [refused] = commands.start_goals(self.db, self.ctx, [(parent, version)], self.vetting)
        assert isinstance(refused, GoalBlocked), refused
        assert "open_children" in {b.reason for b in refused.verdict.blocks}

    @sm.precondition(lambda self: bool(self._open()))
    @sm.rule(data=st.data(), cascade=st.booleans())
    def abandon(self, data: st.DataObject, cascade: bool) -> None:
        f, goal = self.before, _pick(data, self._open())
        call = lambda: commands.abandon_goal(self.db, self.ctx, goal, cascade=cascade)  # noqa: E731
        if not cascade and f.open_kids(goal):
            return self._refused_unchanged(ChildrenOpen, call)
        call()
        self.abandoning = {goal, *(d for d in f.descendants(goal) if f.rows[d].open)}
        if (parent := f.rows[goal].parent) is not None:
            block = commands.get_goal(self.db, parent).tree_block or {}
            assert ("child_abandoned", goal) == (block.get("reason"), block.get("ref"))

    @sm.precondition(lambda self: bool(self._open()))
    @sm.rule(data=st.data(), to_root=st.booleans())
    def move(self, data: st.DataObject, to_root: bool) -> None:
        f, goal = self.before, _pick(data, self._open())
        targets = [g for g in f.rows if g != f.rows[goal].parent]
        if not (to_root and f.rows[goal].parent is not None) and not targets:
            return
        target = None if to_root and f.rows[goal].parent is not None else _pick(data, targets)
        parents, call = {**f.parents, goal: target}, self._update(goal, parent_id=target)
        if target is not None and not f.rows[target].open:
            self._refused_unchanged(IllegalTransition, call)
        elif target is not None and (len(f.ancestors(target)) + 1 + f.height(goal) > DEPTH
                                     or f.waits_cycle(parents)):  # fmt: skip
            self._refused_unchanged(InvalidGoal, call)
        else:
            call()
            moved = commands.get_goal(self.db, goal)
            assert (target, None) == (moved.parent_id, moved.tree_block)
            assert target is None or commands.get_goal(self.db, target).tree_block is None

    @sm.precondition(lambda self: bool(self._open()))
    @sm.rule(data=st.data())
    def add_dependency(self, data: st.DataObject) -> None:
        f, goal = self.before, _pick(data, self._open())
        targets = [g for g in f.rows if g != goal and g not in f.rows[goal].depends]
        if not targets:
            return
        target = _pick(data, targets)
        deps = {**f.deps, goal: (*f.deps[goal], target)}
        call = self._update(goal, depends_on=list(deps[goal]))
        # refused: a cycle of waiting, or the flat rule's dependency cycle (whatever the states)
        if f.waits_cycle(deps=deps) or f.depends_on(target, goal):
            self._refused_unchanged(InvalidGoal, call)
        else:
            call()
            assert target in commands.get_goal(self.db, goal).depends_on

    @sm.precondition(lambda self: bool(self._open(lambda r: r.parent or self.before.kids[r.id])))
    @sm.rule(data=st.data(), value=VALUES)
    def change_value(self, data: st.DataObject, value: float) -> None:
        """A PATCH: the parent's mean moves with the value; a held goal is held no more."""
        goal = _pick(data, self._open(lambda r: r.parent or self.before.kids[r.id]))
        self._update(goal, value=value)()
        if value != self.before.rows[goal].value:
            assert commands.get_goal(self.db, goal).tree_block is None

    @sm.invariant()
    def the_rules_hold(self) -> None:
        before, now = self.before, Forest(self.db)
        for g, row in now.rows.items():
            assert 0.0 <= row.progress <= 1.0, row
            if row.state == "abandoned":
                self.frozen.setdefault(g, before.rows[g].progress if g in before.rows else 0.0)
                assert self.frozen[g] == row.progress, (g, "progress moved once abandoned")
            else:
                assert now.expected_progress(g) == pytest.approx(row.progress, abs=1e-9), row
            if row.open and row.parent is not None:
                assert now.rows[row.parent].open, (g, "open under a closed parent")
            completes = now.kids[g] and row.policy != "manual" and row.block is None
            assert not (row.open and completes and now.policy_holds(g)), (g, "not completed")
        self._check_closed(before, now)
        assert not now.waits_cycle()
        self.before, self.abandoning = now, set()

    def _check_closed(self, before: Forest, now: Forest) -> None:
        """Goals satisfied in this step not by hand were completed by their children,
        their policy holding; goals abandoned in it were the step's abandon, or the open
        descendants (new ones too) of a goal an `any` completion just closed."""
        newly = {g: r.state for g, r in now.rows.items()
                 if not r.open and (g not in before.rows or before.rows[g].open)}  # fmt: skip
        completed = [g for g, s in newly.items() if s == "satisfied" and g not in self.by_hand]
        for g in completed:
            assert now.rows[g].policy != "manual" and now.policy_holds(g), g
            [event] = [e.payload for e in commands.goal_history(self.db, g)
                       if e.event_type == "goal_satisfied"]  # fmt: skip
            by = {k.id for k in now.kids[g] if k.state == "satisfied"}
            assert ("complete", by) == (event["action"], set(event["by_children"]))
        by_any = {d for g in completed if now.rows[g].policy == "any" for d in now.descendants(g)
                  if d not in before.rows or before.rows[d].open}  # fmt: skip
        abandoned = {g for g, s in newly.items() if s == "abandoned"}
        assert self.abandoning <= abandoned <= self.abandoning | by_any

    @sm.invariant()
    def ledger_verifies_and_replays_to_the_table(self) -> None:
        assert commands.verify_ledger(self.db).ok
        assert [] == commands.replay_check(self.db).differences


# Examples and steps per engine: the file in ~30 s on 2 cores when it passes (PostgreSQL
# pays a round trip per statement and a schema per example).
BUDGET = {"sqlite": (100, 50), "postgresql": (30, 40)}


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request: pytest.FixtureRequest) -> tuple[str, Location]:
    """A new store for each example: a SQLite file, or a PostgreSQL schema."""
    run: PostgresRun | None = None
    if request.param == "postgresql":
        run = request.getfixturevalue("postgres_run")

    def where() -> tuple[str, Callable[[], None]]:
        if run is None:
            directory = tempfile.mkdtemp(prefix="goalstore-trees-")
            return f"{directory}/goalstore.db", lambda: shutil.rmtree(directory, True)
        name, url = run.schema()
        return url, lambda: run.drop_schema(name)

    return request.param, where


def test_random_forests_keep_progress_completion_and_waiting_right(
    location: tuple[str, Location],
) -> None:
    """Any sequence of tree steps keeps progress equal to its recomputation, every parent
    whose policy holds completed, no cycle of waiting, no parent started, the chain whole
    and replay equal to the table."""
    engine, where = location
    examples, steps = BUDGET[engine]
    options = {"deadline": None, "suppress_health_check": list(HealthCheck), "database": None}
    sm.run_state_machine_as_test(
        lambda: Trees(where),
        settings=settings(max_examples=examples, stateful_step_count=steps, **options),
    )
