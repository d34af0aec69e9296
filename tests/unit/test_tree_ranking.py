"""Goal trees in the pure ranking (domain/ranking/trees.py): a goal's deadline is the
earliest of its own and its ancestors', an ancestor blocked for a reason the tree passes
down blocks it (naming the nearest), open children and an abandoned child hold the goal
itself, and goals in no tree rank exactly as before. One goal scored alone and the
columns agree, trees and all."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from service.domain.blocks import (
    ANCESTOR_BLOCKED,
    CHILD_ABANDONED,
    CONTRADICTS_BELIEF,
    DEADLINE_PASSED,
    DEPENDENCY_UNSATISFIED,
    MANUAL_BLOCK,
    OPEN_CHILDREN,
    Block,
)
from service.domain.ranking import (
    Facts,
    Features,
    FeatureTable,
    Lineage,
    RankingInputs,
    TreeFacts,
    explain,
    features,
    held_by,
    rank,
    score_table,
    snapshots,
    tree_facts,
)
from service.testing import make_goal

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
T = NOW.timestamp()
HOUR = 3600.0
INPUTS = RankingInputs(now=NOW, active_beliefs=frozenset({"b.on"}),
                       satisfied_goals=frozenset({"g-done"}))  # fmt: skip


def node(
    goal_id: str, parent_id: str | None = None, deadline: float | None = None, *,
    manual_block: str | None = None, contradicts: tuple[str, ...] = (),
    depends_on: tuple[str, ...] = (),
) -> Lineage:  # fmt: skip
    return Lineage(goal_id, parent_id, deadline, manual_block, contradicts, depends_on)


def chain(*nodes: Lineage) -> dict[str, Lineage]:
    return {n.goal_id: n for n in nodes}


def goal(goal_id: str, deadline: float | None = None, value: float = 0.5) -> Features:
    return Features(goal_id, value, 0.3, 0.2, deadline, T - HOUR, (), (), ())


def test_a_goal_is_due_when_the_earliest_of_its_ancestors_is() -> None:
    """The child of a parent due in 2 h under a root due in 5 h inherits 2 h (not 5);
    a child due sooner itself keeps its own; a child of deadline-less ancestors inherits
    none. Urgency follows the inherited deadline."""
    lineage = chain(
        node("root", None, T + 5 * HOUR), node("mid", "root", T + 2 * HOUR),
        node("leaf", "mid"), node("soon", "mid", T + HOUR),
        node("free-root"), node("free-leaf", "free-root"),
    )  # fmt: skip

    trees = tree_facts(lineage, {}, INPUTS)
    leaf = explain(goal("leaf"), INPUTS, trees["leaf"])
    soon = explain(goal("soon", T + HOUR), INPUTS, trees["soon"])

    assert T + 2 * HOUR == trees["leaf"].deadline
    assert T + 5 * HOUR == trees["mid"].deadline
    assert "root" not in trees and "free-leaf" not in trees and "free-root" not in trees
    assert explain(goal("x", T + 2 * HOUR), INPUTS).urgency == leaf.urgency > 0.0
    assert explain(goal("x", T + HOUR), INPUTS).urgency == soon.urgency


def test_an_ancestors_passed_deadline_is_the_childs_not_a_block_it_inherits() -> None:
    """A parent whose deadline has passed: its child is blocked for the deadline passed
    (the parent's, in its ref), not as ancestor-blocked."""
    lineage = chain(node("late", None, T - 60), node("child", "late"))

    score = explain(goal("child"), INPUTS, tree_facts(lineage, {}, INPUTS)["child"])

    assert [Block(DEADLINE_PASSED, ref="2026-03-01T11:59:00+00:00")] == list(score.blocked_by)


def test_a_blocked_ancestor_blocks_every_goal_below_naming_the_nearest() -> None:
    """A root held by hand: its child is ancestor-blocked naming the root, the grandchild
    naming the child (the nearest blocked ancestor), and so on down."""
    lineage = chain(node("root", manual_block="legal"), node("child", "root"),
                    node("grandchild", "child"), node("leaf", "grandchild"))  # fmt: skip

    trees = tree_facts(lineage, {}, INPUTS)

    assert (Block(ANCESTOR_BLOCKED, ref="root"),) == trees["child"].holds
    assert (Block(ANCESTOR_BLOCKED, ref="child"),) == trees["grandchild"].holds
    assert (Block(ANCESTOR_BLOCKED, ref="grandchild"),) == trees["leaf"].holds
    assert "root" not in trees  # its own block is its record's (held_by())


def test_each_reason_a_tree_passes_down_blocks_the_child_and_only_while_it_holds() -> None:
    """A parent held by hand, contradicting an active belief, or depending on a goal not
    satisfied blocks its child; contradicting an inactive belief or depending on a
    satisfied goal does not."""
    parents = {
        "held": node("held", manual_block="(no reason given)"),
        "contradicts": node("contradicts", contradicts=("b.off", "b.on")),
        "waits": node("waits", depends_on=("g-done", "g-open")),
        "inactive": node("inactive", contradicts=("b.off",)),
        "satisfied": node("satisfied", depends_on=("g-done",)),
    }
    lineage = {**parents, **{f"c-{p}": node(f"c-{p}", p) for p in parents}}

    trees = tree_facts(lineage, {}, INPUTS)

    blocked = {p for p in parents if f"c-{p}" in trees}
    assert {"held", "contradicts", "waits"} == blocked
    assert (Block(ANCESTOR_BLOCKED, ref="waits"),) == trees["c-waits"].holds


def test_open_children_hold_the_parent_only() -> None:
    """A parent with open children is blocked naming the first; the children are not held
    by their parent's open children, nor by an abandoned sibling's block on it."""
    lineage = chain(node("parent"), node("a", "parent"), node("b", "parent"))

    trees = tree_facts(lineage, {"parent": "a"}, INPUTS)
    parent = make_goal(id="parent", tree_block={"reason": CHILD_ABANDONED, "ref": "c"})
    score = explain(parent, INPUTS, trees["parent"])

    assert [Block(CHILD_ABANDONED, ref="c"), Block(OPEN_CHILDREN, ref="a")] == list(
        score.blocked_by
    )
    assert (0.0, -1.0) == (score.score, score.terms["penalty"])
    assert "a" not in trees and "b" not in trees


def test_an_abandoned_child_holds_the_goal_its_record_names() -> None:
    """held_by(): the tree_block a goal's record holds is a child_abandoned block naming the
    child, after a manual block; features() carries both."""
    block = {"reason": CHILD_ABANDONED, "ref": "g-kid", "at": "2026-03-01T12:00:00.000000Z"}
    manual = {"reason": "wait", "actor": "alice", "at": "2026-03-01T12:00:00.000000Z"}

    held = features(make_goal(manual_block=manual, tree_block=block)).holds

    assert (Block(MANUAL_BLOCK, ref="wait"), Block(CHILD_ABANDONED, ref="g-kid")) == held
    assert () == held_by(None, None)


# A forest over these ids: each goal's parent is an earlier one (or none), so no cycle.
IDS = [f"g-{i}" for i in range(8)]
unit = st.floats(0.0, 1.0)
deadline = st.none() | st.floats(-2 * HOUR, 30 * HOUR).map(lambda s: T + s)


@st.composite
def forests(draw: st.DrawFn) -> tuple[list[Features], dict[str, Lineage], dict[str, str]]:
    n = draw(st.integers(1, len(IDS)))
    goals, lineage = [], {}
    for i, goal_id in enumerate(IDS[:n]):
        parent = draw(st.none() | st.sampled_from(IDS[:i])) if i else None
        manual = draw(st.none() | st.just("by hand"))
        against = tuple(draw(st.lists(st.sampled_from(["b.on", "b.off"]), max_size=1)))
        needs = tuple(draw(st.lists(st.sampled_from(["g-done", "g-open"]), max_size=1)))
        own = draw(deadline)
        held = () if manual is None else (Block(MANUAL_BLOCK, ref=manual),)
        goals.append(Features(goal_id, draw(unit), draw(unit), draw(unit), own, T - HOUR, (),
                              against, needs, held))  # fmt: skip
        lineage[goal_id] = Lineage(goal_id, parent, own, manual, against, needs)
    open_child = {}
    for n_ in lineage.values():
        if n_.parent_id is not None and draw(st.booleans()):
            open_child.setdefault(n_.parent_id, n_.goal_id)
    return goals, lineage, open_child


def ancestors(goal_id: str, lineage: dict[str, Lineage]) -> list[Lineage]:
    out, at = [], lineage[goal_id].parent_id
    while at is not None:
        out.append(lineage[at])
        at = lineage[at].parent_id
    return out


def own_block(n: Lineage) -> bool:
    return (n.manual_block is not None or "b.on" in n.contradicts
            or "g-open" in n.depends_on)  # fmt: skip


@given(forests())
def test_tree_facts_follow_the_rules_written_out_again(
    forest: tuple[list[Features], dict[str, Lineage], dict[str, str]],
) -> None:
    """Against the rules spelled out by walking each goal's ancestors: the inherited
    deadline is the earliest ancestor's, a goal is ancestor-blocked (naming its parent)
    exactly when some ancestor holds its own inheritable block, and open_children names
    the open child given."""
    _, lineage, open_child = forest

    trees = tree_facts(lineage, open_child, INPUTS)

    for goal_id in lineage:
        above = ancestors(goal_id, lineage)
        dates = [a.deadline for a in above if a.deadline is not None]
        expected: list[Block] = []
        if any(own_block(a) for a in above):
            expected.append(Block(ANCESTOR_BLOCKED, ref=str(lineage[goal_id].parent_id)))
        if goal_id in open_child:
            expected.append(Block(OPEN_CHILDREN, ref=open_child[goal_id]))
        found = trees.get(goal_id, TreeFacts(None, ()))
        assert (min(dates, default=None), expected) == (found.deadline, list(found.holds))


@given(forests())
def test_one_goal_and_the_columns_agree_in_a_tree(
    forest: tuple[list[Features], dict[str, Lineage], dict[str, str]],
) -> None:
    """Each goal explained alone with its tree facts scores and is blocked exactly as its
    row of the columns under the same facts, and its snapshot gives the same reasons and
    the inherited deadline."""
    goals, lineage, open_child = forest
    trees = tree_facts(lineage, open_child, INPUTS)
    table = FeatureTable.of(goals).under(
        {i: trees[g.goal_id] for i, g in enumerate(goals) if g.goal_id in trees}
    )

    columns = score_table(table, INPUTS)
    batch = snapshots(
        [(table.features(i), Facts(1, "adopted", "exploration", False)) for i in range(len(goals))],
        INPUTS, seq=1,
    )  # fmt: skip

    for i, g in enumerate(goals):
        one = explain(g, INPUTS, trees.get(g.goal_id))
        assert (one.raw, one.blocked) == (float(columns.raw[i]), bool(columns.blocked[i]))
        snap = batch[i]
        assert snap.score is not None and one.blocked_by == snap.score.blocked_by
        assert one.urgency == snap.score.urgency


@given(forests())
def test_goals_in_no_tree_rank_as_the_formula_always_ranked_them(
    forest: tuple[list[Features], dict[str, Lineage], dict[str, str]],
) -> None:
    """Flat goals (no parent, no child) get no tree facts, the columns are left as they
    are, and the ranking, scores and reasons are those of the formula alone."""
    goals, _, _ = forest
    flat = {g.goal_id: Lineage(g.goal_id, None, g.deadline, None, g.contradicts, g.depends_on)
            for g in goals}  # fmt: skip
    table = FeatureTable.of(goals)

    trees = tree_facts(flat, {}, INPUTS)

    assert {} == trees
    assert table is table.under({})
    assert [explain(g, INPUTS) for g in goals] == [explain(g, INPUTS, None) for g in goals]
    assert list(rank(goals, INPUTS)) == list(rank(table.under({}), INPUTS))


def test_a_tree_ranks_its_open_work_and_not_the_whole() -> None:
    """The ranking of a parent with two open children and one flat goal: the children and
    the flat goal ranked by score, the parent blocked, after them."""
    goals = [goal("parent", value=1.0), goal("a", value=0.2), goal("b", value=0.6),
             goal("flat", value=0.4)]  # fmt: skip
    lineage = chain(node("parent"), node("a", "parent"), node("b", "parent"))
    trees = tree_facts(lineage, {"parent": "a"}, INPUTS)

    table = FeatureTable.of(goals).under({0: trees["parent"]})
    ranking = rank(table, INPUTS)

    assert ["b", "flat", "a"] == [r.goal_id for r in ranking.top(10)]
    assert ["b", "flat", "a", "parent"] == [r.goal_id for r in ranking.top(10, True)]


def test_blocks_a_tree_puts_on_a_goal_come_after_its_own() -> None:
    """A goal held by hand whose parent contradicts an active belief: the manual block
    first, then the tree's, then the goal's own rule-based reasons."""
    lineage = chain(node("p", contradicts=("b.on",)), node("c", "p"))
    c = Features("c", 0.5, 0.5, 0.5, None, T, (), ("b.on",), ("g-open",),
                 (Block(MANUAL_BLOCK, ref="wait"),))  # fmt: skip

    score = explain(c, INPUTS, tree_facts(lineage, {}, INPUTS)["c"])

    assert [MANUAL_BLOCK, ANCESTOR_BLOCKED, CONTRADICTS_BELIEF, DEPENDENCY_UNSATISFIED] == [
        b.reason for b in score.blocked_by
    ]
