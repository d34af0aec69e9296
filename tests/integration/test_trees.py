"""Goal trees through the command functions, on each engine: decomposition all or none,
the limits, cycles refused with their path, progress rolled up, parents completed by
their policy, the block an abandoned child leaves, and cascades. Every expected value is
worked out by hand from the rules in service/domain/trees.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from service import commands
from service.commands import ChildrenOpen, Context, GateClosed
from service.commands.starting import Started
from service.domain.errors import IllegalTransition, InvalidGoal, NotPermitted, VersionConflict
from service.domain.inputs import GoalCreate, GoalUpdate, Subgoals
from service.domain.tasks import TaskState
from service.domain.trees import MAX_CHILDREN, MAX_TREE_DEPTH
from service.store.db import Database
from service.testing import default_vetting, goal_spec, row_counts

ALICE = Context(actor="alice", admin=True)


def _spec(**overrides: Any) -> GoalCreate:
    return GoalCreate.model_validate(goal_spec(**overrides))


def _root(db: Database, **overrides: Any) -> str:
    return commands.create_goal(db, ALICE, _spec(**overrides)).id


def _decompose(db: Database, parent: str, *children: dict[str, Any]) -> list[str]:
    spec = Subgoals(children=[_spec(**c) for c in children])
    return [c.id for c in commands.decompose_goal(db, ALICE, parent, spec).children]


def _satisfy_leaf(db: Database, goal_id: str) -> None:
    """Adopt, start, report, verify and satisfy a leaf through the gate."""
    vetting = default_vetting()
    commands.adopt_goal(db, ALICE, goal_id, vetting=vetting)
    version = commands.get_goal(db, goal_id).version
    [started] = commands.start_goals(db, ALICE, [(goal_id, version)], vetting)
    assert isinstance(started, Started), started
    task = started.task.task_id
    commands.report_task(db, ALICE, task, TaskState.SUCCEEDED, evidence={"summary": "ok"},
                         max_attempts=3)  # fmt: skip
    commands.review_task(db, ALICE, goal_id, task, "verify", max_attempts=3)
    commands.satisfy_goal(db, ALICE, goal_id, {"summary": "done"})


def _state(db: Database, goal_id: str) -> str:
    return commands.get_goal(db, goal_id, include_deleted=True).state.value


def _history(db: Database, goal_id: str) -> list[str]:
    rows = commands.goal_history(db, goal_id)
    return [r.event_type for r in rows]


def test_decompose_creates_every_child_with_an_event_and_names_them_on_the_parent(
    db: Database,
) -> None:
    root = _root(db, id="plan")
    kids = _decompose(db, root, {"id": "gather"}, {"id": "draft", "depends_on": ["gather"]})

    assert ["gather", "draft"] == kids
    assert "plan" == commands.get_goal(db, "draft").parent_id
    assert ("gather",) == commands.get_goal(db, "draft").depends_on
    assert ["goal_created", "goal_decomposed"] == _history(db, root)
    decomposed = commands.goal_history(db, root)[-1]
    assert ["gather", "draft"] == decomposed.payload["children"]
    # the parent's version does not move: its owner's If-Match stays good
    assert 1 == commands.get_goal(db, root).version


def test_a_failed_child_leaves_nothing_of_the_decomposition(db: Database) -> None:
    root = _root(db)
    before = row_counts(db.connection())
    spec = Subgoals(children=[_spec(id="ok-1"), _spec(id="bad", depends_on=["nowhere"])])
    with pytest.raises(InvalidGoal, match="unknown goal ids: nowhere"):
        commands.decompose_goal(db, ALICE, root, spec)
    assert before == row_counts(db.connection())


def test_limits_on_depth_and_children_are_422s_naming_the_field(db: Database) -> None:
    chain = [_root(db, id="level-1")]
    for level in range(2, MAX_TREE_DEPTH + 1):
        chain.extend(_decompose(db, chain[-1], {"id": f"level-{level}"}))
    with pytest.raises(InvalidGoal) as deep:
        _decompose(db, chain[-1], {"id": "level-9"})
    assert "children" == deep.value.errors[0].loc[0]
    assert f"9 levels deep; at most {MAX_TREE_DEPTH}" in deep.value.errors[0].msg

    wide = _root(db, id="wide")
    _decompose(db, wide, *({"id": f"w-{n}"} for n in range(MAX_CHILDREN)))
    with pytest.raises(InvalidGoal, match=f"would have more than {MAX_CHILDREN} children"):
        commands.create_goal(db, ALICE, _spec(id="w-extra", parent_id=wide))


def test_parent_cycles_across_levels_are_refused_with_their_path(db: Database) -> None:
    a = _root(db, id="a")
    [b] = _decompose(db, a, {"id": "b"})
    [c] = _decompose(db, b, {"id": "c"})
    with pytest.raises(InvalidGoal) as refused:
        commands.update_goal(db, ALICE, a, GoalUpdate(parent_id=c), None, any_version=True)
    assert ("parent_id",) == refused.value.errors[0].loc
    # a waits on its child b, b on c, and c would wait on its new child a
    assert "would make a cycle: a -> b -> c -> a" == refused.value.errors[0].msg
    assert commands.get_goal(db, a).parent_id is None


def test_a_parent_that_would_depend_on_its_own_descendant_is_refused(db: Database) -> None:
    a = _root(db, id="a")
    [b] = _decompose(db, a, {"id": "b"})
    [c] = _decompose(db, b, {"id": "c"})
    with pytest.raises(InvalidGoal) as refused:
        commands.update_goal(db, ALICE, a, GoalUpdate(depends_on=[c]), None, any_version=True)
    assert ("depends_on",) == refused.value.errors[0].loc
    # c is blocked while its ancestors are: it would wait on a's dependency, itself
    assert "would make a cycle: c -> b -> a -> c" == refused.value.errors[0].msg
    assert () == commands.get_goal(db, a).depends_on


def test_a_child_that_depends_on_its_parent_is_refused(db: Database) -> None:
    a = _root(db, id="a")
    with pytest.raises(InvalidGoal) as refused:
        commands.create_goal(db, ALICE, _spec(id="kid", parent_id=a, depends_on=[a]))
    assert "would make a cycle: kid -> a -> kid" == refused.value.errors[0].msg
    with pytest.raises(InvalidGoal):
        _decompose(db, a, {"id": "kid2", "depends_on": [a]})
    assert [] == commands.list_goals(db, parent_id=a).goals


def test_siblings_may_depend_on_each_other(db: Database) -> None:
    a = _root(db, id="a")
    _decompose(db, a, {"id": "s1"}, {"id": "s2", "depends_on": ["s1"]})
    commands.update_goal(db, ALICE, "s1", GoalUpdate(related=["s2"]), None, any_version=True)
    with pytest.raises(InvalidGoal, match="dependency cycle"):
        commands.update_goal(db, ALICE, "s1", GoalUpdate(depends_on=["s2"]), None,
                             any_version=True)  # fmt: skip


# --- progress and completion ------------------------------------------------------------------


def test_progress_rolls_up_value_weighted_and_all_completes_the_parent(db: Database) -> None:
    root = _root(db, id="root")
    [mid, other] = _decompose(db, root, {"id": "mid", "value": 0.6}, {"id": "other", "value": 0.2})
    [x, y] = _decompose(db, mid, {"id": "x", "value": 0.5}, {"id": "y", "value": 0.5})

    _satisfy_leaf(db, x)
    # mid = (0.5*1 + 0.5*0) / 1.0 = 0.5; root = (0.6*0.5 + 0.2*0) / 0.8 = 0.375
    assert 0.5 == commands.get_goal(db, mid).progress
    assert 0.375 == commands.get_goal(db, root).progress
    assert "proposed" == _state(db, mid)

    _satisfy_leaf(db, y)
    assert "satisfied" == _state(db, mid)
    assert 1.0 == commands.get_goal(db, mid).progress
    assert 0.75 == commands.get_goal(db, root).progress  # (0.6*1 + 0.2*0) / 0.8

    _satisfy_leaf(db, other)
    assert "satisfied" == _state(db, root)
    assert 1.0 == commands.get_goal(db, root).progress
    satisfied = [r for r in commands.goal_history(db, root) if r.event_type == "goal_satisfied"]
    assert ["mid", "other"] == satisfied[0].payload["by_children"]
    assert "complete" == satisfied[0].payload["action"]


def test_any_completes_on_the_first_child_and_abandons_the_rest(db: Database) -> None:
    root = _root(db, id="root", completion_policy="any")
    [fast, slow] = _decompose(db, root, {"id": "fast"}, {"id": "slow"})
    _satisfy_leaf(db, fast)
    assert "satisfied" == _state(db, root)
    assert "abandoned" == _state(db, slow)
    abandoned = commands.goal_history(db, slow)[-1]
    assert ("goal_abandoned", "root") == (abandoned.event_type, abandoned.payload["cascade_from"])
    assert commands.get_goal(db, root).tree_block is None  # not held by what it abandoned


def test_manual_never_completes_alone_and_passes_the_gate_once_children_close(
    db: Database,
) -> None:
    root = _root(db, id="root", completion_policy="manual")
    [only, later] = _decompose(db, root, {"id": "only"}, {"id": "later"})
    _satisfy_leaf(db, only)
    assert "proposed" == _state(db, root)
    with pytest.raises(ChildrenOpen) as refused:
        commands.satisfy_goal(db, ALICE, root, {"summary": "all done"})
    assert ["later"] == refused.value.open_children
    _satisfy_leaf(db, later)
    assert "proposed" == _state(db, root)
    commands.satisfy_goal(db, ALICE, root, {"summary": "all done"})
    assert "satisfied" == _state(db, root)


# --- abandonment, deletion, moves ----------------------------------------------------------------


def test_an_abandoned_child_holds_the_parent_until_replaced(db: Database) -> None:
    root = _root(db, id="root")
    [a, b] = _decompose(db, root, {"id": "a"}, {"id": "b"})
    commands.abandon_goal(db, ALICE, a)
    block = commands.get_goal(db, root).tree_block
    assert block is not None
    assert ("child_abandoned", "a") == (block["reason"], block["ref"])
    _satisfy_leaf(db, b)  # the policy holds over what counts, but the parent is held
    assert "proposed" == _state(db, root)
    assert 1.0 == commands.get_goal(db, root).progress  # the abandoned child does not count

    [c] = _decompose(db, root, {"id": "c"})  # the replacement
    assert commands.get_goal(db, root).tree_block is None
    assert 0.5 == commands.get_goal(db, root).progress
    _satisfy_leaf(db, c)
    assert "satisfied" == _state(db, root)


def test_changing_the_parent_lifts_the_block(db: Database) -> None:
    root = _root(db, id="root")
    [a] = _decompose(db, root, {"id": "a"})
    commands.abandon_goal(db, ALICE, a)
    changed = commands.update_goal(db, ALICE, root, GoalUpdate(value=0.1), None, any_version=True)
    assert changed.goal.tree_block is None
    assert commands.get_goal(db, root).tree_block is None
    assert "proposed" == _state(db, root)  # no child that counts: nothing completes it


def test_a_parent_freed_of_its_block_is_completed_when_its_children_are_done(
    db: Database,
) -> None:
    root = _root(db, id="root")
    [gone, done] = _decompose(db, root, {"id": "gone"}, {"id": "done"})
    commands.abandon_goal(db, ALICE, gone)
    _satisfy_leaf(db, done)
    assert "proposed" == _state(db, root)  # held: the abandoned child is not replaced
    commands.update_goal(db, ALICE, root, GoalUpdate(text="Done without it"), None,
                         any_version=True)  # fmt: skip
    assert "satisfied" == _state(db, root)


def test_abandoning_a_parent_cascades_or_is_refused_without_cascade(db: Database) -> None:
    root = _root(db, id="root")
    [a, b] = _decompose(db, root, {"id": "a"}, {"id": "b"})
    [deep] = _decompose(db, a, {"id": "deep"})
    _satisfy_leaf(db, b)
    with pytest.raises(ChildrenOpen) as refused:
        commands.abandon_goal(db, ALICE, root, cascade=False)
    assert ["a"] == refused.value.open_children
    assert "proposed" == _state(db, root)

    commands.abandon_goal(db, ALICE, root)
    assert {"root": "abandoned", "a": "abandoned", "deep": "abandoned", "b": "satisfied"} == {
        g: _state(db, g) for g in ("root", "a", "deep", "b")
    }
    assert "root" == commands.goal_history(db, deep)[-1].payload["cascade_from"]


def test_deleting_a_parent_deletes_its_subtree_or_is_refused(db: Database) -> None:
    root = _root(db, id="root")
    [a] = _decompose(db, root, {"id": "a"})
    [deep] = _decompose(db, a, {"id": "deep"})
    with pytest.raises(ChildrenOpen):
        commands.delete_goal(db, ALICE, root, cascade=False)
    commands.delete_goal(db, ALICE, a)
    assert commands.get_goal(db, deep, include_deleted=True).is_deleted
    assert [] == commands.list_goals(db, parent_id=root).goals
    assert 0.0 == commands.get_goal(db, root).progress


def test_moving_a_goal_settles_both_parents(db: Database) -> None:
    one, two = _root(db, id="one"), _root(db, id="two")
    [done, moving] = _decompose(db, one, {"id": "done"}, {"id": "moving"})
    _satisfy_leaf(db, done)
    assert 0.5 == commands.get_goal(db, one).progress
    commands.update_goal(db, ALICE, moving, GoalUpdate(parent_id=two), None, any_version=True)
    # one's only child left is satisfied: under `all` it is complete
    assert "satisfied" == _state(db, one)
    assert ["moving"] == [g.id for g in commands.list_goals(db, parent_id=two).goals]
    moved = commands.goal_history(db, two)[-1]
    assert ("goal_decomposed", "one") == (moved.event_type, moved.payload["moved_from"])


def test_decompose_refuses_a_closed_goal_and_a_stale_version(db: Database) -> None:
    root = _root(db, id="root")
    with pytest.raises(VersionConflict):
        commands.decompose_goal(db, ALICE, root, Subgoals(children=[_spec()]), 7)
    commands.abandon_goal(db, ALICE, root)
    with pytest.raises(IllegalTransition):
        _decompose(db, root, {"id": "late"})


def test_replay_of_a_worked_tree_equals_the_table_and_the_chain_verifies(db: Database) -> None:
    root = _root(db, id="root")
    [a, b, c] = _decompose(db, root, {"id": "a"}, {"id": "b"}, {"id": "c"})
    [a1, a2] = _decompose(db, a, {"id": "a1"}, {"id": "a2"})
    _satisfy_leaf(db, a1)
    _satisfy_leaf(db, a2)
    commands.abandon_goal(db, ALICE, b)
    _decompose(db, root, {"id": "b2"})
    commands.delete_goal(db, ALICE, c)

    report = commands.replay_check(db)
    assert report.differences == [], report
    assert commands.verify_ledger(db).ok


def test_a_childs_new_value_reweighs_its_parents_progress(db: Database) -> None:
    root = _root(db, id="root")
    [done, _] = _decompose(db, root, {"id": "done", "value": 0.5}, {"id": "open", "value": 0.5})
    _satisfy_leaf(db, done)
    assert 0.5 == commands.get_goal(db, root).progress
    commands.update_goal(db, ALICE, "open", GoalUpdate(value=0.0), None, any_version=True)
    assert 1.0 == commands.get_goal(db, root).progress  # 0.5*1 / 0.5
    assert "goal_progressed" == commands.goal_history(db, root)[-1].event_type


def test_under_any_one_satisfied_child_is_enough_even_beside_an_abandoned_one(
    db: Database,
) -> None:
    root = _root(db, id="root", completion_policy="any")
    [gone, done, _] = _decompose(db, root, {"id": "gone"}, {"id": "done"}, {"id": "idle"})
    commands.abandon_goal(db, ALICE, gone)
    assert commands.get_goal(db, root).tree_block is not None
    _satisfy_leaf(db, done)
    assert ("satisfied", None) == (_state(db, root), commands.get_goal(db, root).tree_block)
    assert "abandoned" == _state(db, "idle")


# --- review findings: who may attach, the gate on parents, messages --------------------------


def test_only_the_parents_owner_may_attach_or_move_a_child_to_it(db: Database) -> None:
    alice, mallory = Context(actor="alice"), Context(actor="mallory")
    commands.create_goal(db, alice, _spec(id="plan", completion_policy="any"))
    commands.create_goal(db, mallory, _spec(id="mine"))
    with pytest.raises(NotPermitted):
        commands.create_goal(db, mallory, _spec(id="sneak", parent_id="plan"))
    with pytest.raises(NotPermitted):
        commands.update_goal(db, mallory, "mine", GoalUpdate(parent_id="plan"), None,
                             any_version=True)  # fmt: skip
    assert [] == commands.list_goals(db, parent_id="plan").goals
    assert ["goal_created"] == _history(db, "plan")


def test_the_gate_refuses_a_parent_whose_only_children_were_abandoned(db: Database) -> None:
    root = _root(db, id="root")
    [c] = _decompose(db, root, {"id": "c"})
    commands.abandon_goal(db, ALICE, c)
    # no child counts: it is a leaf again, and a leaf is satisfied only once executed
    with pytest.raises(IllegalTransition):
        commands.satisfy_goal(db, ALICE, root, {"summary": "nothing done"})
    assert "proposed" == _state(db, root)


def test_the_gate_refuses_a_manual_parent_held_by_an_abandoned_child(db: Database) -> None:
    root = _root(db, id="root", completion_policy="manual")
    [done, gone] = _decompose(db, root, {"id": "done"}, {"id": "gone"})
    _satisfy_leaf(db, done)
    commands.abandon_goal(db, ALICE, gone)
    with pytest.raises(GateClosed) as closed:
        commands.satisfy_goal(db, ALICE, root, {"summary": "half done"})
    assert closed.value.tree_block is not None
    assert "gone" == closed.value.tree_block["ref"]
    assert "held: its child gone was abandoned" in str(closed.value)
    assert "proposed" == _state(db, root)
    _decompose(db, root, {"id": "again"})  # replaced: held no more
    _satisfy_leaf(db, "again")
    satisfied = commands.satisfy_goal(db, ALICE, root, {"summary": "done"})
    assert ("satisfied", None) == (satisfied.state.value, satisfied.tree_block)


def test_a_cycle_is_named_before_the_depth_it_would_make(db: Database) -> None:
    chain = [_root(db, id="a")]
    for name in "bcde":
        chain.extend(_decompose(db, chain[-1], {"id": name}))
    with pytest.raises(InvalidGoal) as refused:
        commands.update_goal(db, ALICE, "a", GoalUpdate(parent_id="e"), None, any_version=True)
    assert "would make a cycle: a -> b -> c -> d -> e -> a" == refused.value.errors[0].msg


def test_children_open_speaks_of_cascade_only_where_there_is_one(db: Database) -> None:
    root = _root(db, id="root", completion_policy="manual")
    _decompose(db, root, {"id": "kid"})
    with pytest.raises(ChildrenOpen) as satisfying:
        commands.satisfy_goal(db, ALICE, root, {"summary": "x"})
    with pytest.raises(ChildrenOpen) as abandoning:
        commands.abandon_goal(db, ALICE, root, cascade=False)
    assert "cascade" not in str(satisfying.value)
    assert "cascade=true" in str(abandoning.value)
