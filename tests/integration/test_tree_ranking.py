"""Goal trees in the ranking, against a real store (SQLite and PostgreSQL) and a real Redis:
what the events worker makes of a tree is what a rebuild makes of it, a child's score
names the blocked ancestor, a parent with open children is never selected, and a goal's
hash shows its parent and progress."""

from __future__ import annotations

from redis import Redis

from service import commands
from service.commands import Context
from service.commands.base import utcnow
from service.commands.starting import GoalMovedOn, start_goals
from service.domain.goal import GoalState
from service.domain.inputs import GoalUpdate, Subgoals
from service.domain.tasks import TaskState
from service.domain.vetting import GoalBlocked
from service.runtime import Services
from service.testing import adopted_goal, goal_spec
from tests.integration.test_manual_block_ranking import (
    PREFIX,
    apply_outbox,
    goal_hash,
    ranked_ids,
)


def cached(redis: Redis, goal_ids: list[str]) -> dict[str, dict[str, str]]:
    """The hash of each goal, without what says when it was written."""
    out = {}
    for goal_id in goal_ids:
        held = goal_hash(redis, goal_id)
        del held["seq"], held["computed_at"]
        out[goal_id] = held
    return out


def assert_as_rebuilt(services: Services, redis: Redis, goal_ids: list[str]) -> None:
    """The hashes and sorted sets the events worker left equal what a rebuild writes."""
    apply_outbox(services)
    incremental = cached(redis, goal_ids), ranked_ids(redis), ranked_ids(redis, "blocked")
    commands.rebuild_cache(services.db, services.goalstore.require_cache("test"))
    rebuilt = cached(redis, goal_ids), ranked_ids(redis), ranked_ids(redis, "blocked")
    assert rebuilt == incremental


def decompose(services: Services, ctx: Context, parent: str, *values: float) -> list[str]:
    """The parent's new children, of these values, adopted; their ids."""
    gs = services.goalstore
    spec = Subgoals.model_validate({"children": [goal_spec(value=v) for v in values]})
    children = [c.id for c in gs.decompose_goal(ctx, parent, spec).children]
    for child in children:
        gs.adopt_goal(ctx, child)
    return children


def test_what_the_events_make_of_a_tree_is_what_a_rebuild_makes(
    services: Services, people: Context, redis_client: Redis
) -> None:
    """After each change to a tree applied by the events worker, every goal's hash and the
    sorted sets equal what a fresh rebuild writes: a decomposition (the parent blocked by
    its open children, the children due when it is), a manual block on the root (every
    goal below it ancestor-blocked), a grandchild added, the block lifted, a child moved to
    another parent (the one it left waits on it no more), that child deleted (its new
    parent ranked again), a child abandoned (its parent held by it)."""
    gs = services.goalstore
    # Due in 3 days: outside the urgency window, so the score does not move between the
    # worker's write and the rebuild's.
    root = adopted_goal(services, people, value=0.9, horizon_max_min=3 * 24 * 60)
    other = adopted_goal(services, people, value=0.5)
    commands.rebuild_cache(services.db, gs.require_cache("test"))
    a, b = decompose(services, people, root, 0.8, 0.3)
    goals = [root, other, a, b]

    assert_as_rebuilt(services, redis_client, goals)
    held = goal_hash(redis_client, root)
    assert ("blocked", f"open_children:{a}") == (held["placement"], held["blocked_by"])
    assert held["deadline"] == goal_hash(redis_client, a)["deadline"]
    assert [a, other, b] == ranked_ids(redis_client)

    gs.block_goal(people, root, "on hold")
    assert_as_rebuilt(services, redis_client, goals)
    assert f"ancestor_blocked:{root}" == goal_hash(redis_client, a)["blocked_by"]
    assert [other] == ranked_ids(redis_client)

    [grandchild] = decompose(services, people, b, 0.4)
    goals.append(grandchild)
    assert_as_rebuilt(services, redis_client, goals)
    assert f"ancestor_blocked:{b}" == goal_hash(redis_client, grandchild)["blocked_by"]

    gs.unblock_goal(people, root)
    assert_as_rebuilt(services, redis_client, goals)
    assert "blocked_by" not in goal_hash(redis_client, grandchild)

    gs.update_goal(people, a, GoalUpdate(parent_id=other), gs.get_goal(a).version)
    assert_as_rebuilt(services, redis_client, goals)
    assert f"open_children:{b}" == goal_hash(redis_client, root)["blocked_by"]
    assert f"open_children:{a}" == goal_hash(redis_client, other)["blocked_by"]
    assert other == goal_hash(redis_client, a)["parent_id"]

    gs.delete_goal(people, a)
    assert_as_rebuilt(services, redis_client, goals)
    assert "ranked" == goal_hash(redis_client, other)["placement"]

    gs.abandon_goal(people, b)  # and its child with it
    assert_as_rebuilt(services, redis_client, goals)
    assert f"child_abandoned:{b}" == goal_hash(redis_client, root)["blocked_by"]
    assert [other] == ranked_ids(redis_client)


def test_a_childs_score_names_its_blocked_ancestor_and_its_inherited_deadline(
    services: Services, people: Context
) -> None:
    """A root held by hand: its grandchild's score is blocked, naming its parent (the
    nearest blocked ancestor), whose score names the root (and its own open child), whose
    score gives the reason.
    The grandchild, without a deadline of its own, is scored with the root's."""
    gs = services.goalstore
    root = adopted_goal(services, people, horizon_max_min=60)
    [child] = decompose(services, people, root, 0.5)
    [grandchild] = decompose(services, people, child, 0.5)
    gs.block_goal(people, root, "budget")
    now = utcnow()

    scores = {g: commands.goal_score(services.db, g, now)[1] for g in (root, child, grandchild)}

    assert [{"reason": "ancestor_blocked", "ref": child}] == [
        b.as_dict() for b in scores[grandchild].blocked_by
    ]
    assert [("ancestor_blocked", root), ("open_children", grandchild)] == [
        (b.reason, b.ref) for b in scores[child].blocked_by
    ]
    assert [("manual_block", "budget"), ("open_children", child)] == [
        (b.reason, b.ref) for b in scores[root].blocked_by
    ]
    assert scores[root].urgency == scores[grandchild].urgency > 0.0


def test_a_parent_with_open_children_is_never_selected(
    services: Services, people: Context, redis_client: Redis
) -> None:
    """The parent, worth more than any goal, ranks blocked: the ranking (Redis and the
    store's fallback) offers its children, selection starts the best child, and starting
    the parent itself is refused for its open children."""
    gs = services.goalstore
    parent = adopted_goal(services, people, value=1.0, effort=0.0, risk=0.0)
    best, _ = decompose(services, people, parent, 0.7, 0.2)
    commands.rebuild_cache(services.db, gs.require_cache("test"))

    hot = [r.goal.id for r in gs.ranked_view().items]
    cold = commands.ranked_view(services.db, None, max_lag=gs.policy.max_lag)
    selection = gs.select(people)
    [refused] = start_goals(services.db, people, [(parent, gs.get_goal(parent).version)],
                            services.vetting)  # fmt: skip

    assert parent not in hot and hot == [r.goal.id for r in cold.items]
    assert selection.goal is not None and best == selection.goal.id
    assert isinstance(refused, GoalBlocked)
    assert ["open_children"] == [b.reason for b in refused.verdict.blocks]
    assert GoalState.ADOPTED == gs.get_goal(parent).state


def test_a_batch_that_starts_a_child_refuses_its_parent_read_with_the_batch(
    services: Services, people: Context
) -> None:
    """One batch of starts reads its goals once, under the write lock: the child starts,
    and the parent (read before the child's start, which rolls progress up to it) is
    refused for its open children, unchanged."""
    gs = services.goalstore
    parent = adopted_goal(services, people, value=1.0)
    child, _ = decompose(services, people, parent, 0.7, 0.2)
    commands.adopt_goal(services.db, people, child, vetting=services.vetting)
    before = gs.get_goal(parent)
    versions = [(child, gs.get_goal(child).version), (parent, before.version)]

    started, refused = start_goals(services.db, people, versions, services.vetting)

    assert not isinstance(started, Exception) and started.goal.id == child
    assert GoalState.EXECUTING == gs.get_goal(child).state
    assert isinstance(refused, GoalBlocked)
    assert ["open_children"] == [b.reason for b in refused.verdict.blocks]
    assert before.version == gs.get_goal(parent).version
    assert GoalState.ADOPTED == gs.get_goal(parent).state


def test_a_goal_asked_for_twice_in_one_batch_starts_once(
    services: Services, people: Context
) -> None:
    """The batch reads each goal's row once: the second start of a goal it has just
    started is refused as moved on, not run on the row as it was."""
    goal_id = adopted_goal(services, people)
    version = services.goalstore.get_goal(goal_id).version

    first, second = start_goals(services.db, people, [(goal_id, version), (goal_id, version)],
                                services.vetting)  # fmt: skip

    assert not isinstance(first, Exception) and first.goal.state == GoalState.EXECUTING
    assert isinstance(second, GoalMovedOn)
    assert [t.task_id for t in commands.list_tasks(services.db, goal_id)] == [first.task.task_id]


def test_a_goals_hash_shows_its_parent_and_its_progress(
    services: Services, people: Context, redis_client: Redis
) -> None:
    """HGETALL of a child shows parent_id; once a task of it is verified, its progress,
    and its parent's rolled-up progress; a root with no progress shows neither field. The
    hashes stay listpacks."""
    gs = services.goalstore
    parent = adopted_goal(services, people)
    done, _ = decompose(services, people, parent, 0.5, 0.5)
    commands.rebuild_cache(services.db, gs.require_cache("test"))
    assert set() == {"parent_id", "progress"} & set(goal_hash(redis_client, parent))
    assert parent == goal_hash(redis_client, done)["parent_id"]

    task = commands.create_task(services.db, people, done, evidence={"url": "x"})
    commands.report_task(services.db, people, task.task_id, TaskState.SUCCEEDED,
                         evidence={"url": "x"}, max_attempts=3)  # fmt: skip
    commands.review_task(services.db, people, done, task.task_id, "verify", max_attempts=3)
    apply_outbox(services)

    child_hash, parent_hash = goal_hash(redis_client, done), goal_hash(redis_client, parent)
    assert (parent, "1.0") == (child_hash["parent_id"], child_hash["progress"])
    assert "0.5" == parent_hash["progress"] and "parent_id" not in parent_hash
    for goal_id in (parent, done):
        assert b"listpack" == redis_client.object("encoding", f"{PREFIX}goal:{goal_id}")
