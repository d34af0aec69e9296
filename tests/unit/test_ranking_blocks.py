"""One Block type for ranking and vetting, each served in the shape it always had; and
the ranking's Lua scripts spell no Redis key name (keys.py names every key)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from service.domain.beliefs import Belief
from service.domain.blocks import Block
from service.domain.goal import Goal, GoalCategory, GoalState
from service.domain.ranking import RankingInputs, explain
from service.domain.vetting import Consistency, VettingInputs, vet

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CACHE = Path(__file__).parents[2] / "service" / "cache"


def blocked_goal() -> Goal:
    """Contradicts an active belief, depends on a goal not satisfied, deadline passed."""
    return Goal(
        id="g-1", text="a goal", category=GoalCategory.EXPLORATION, value=0.5, effort=0.5,
        risk=0.5, owner="tester", created_at=NOW - timedelta(hours=2),
        updated_at=NOW, state=GoalState.ADOPTED, horizon_max_min=60,
        contradicts=("b.safety",), depends_on=("g-0",),
    )  # fmt: skip


def test_ranking_blocks_serve_reason_and_ref() -> None:
    """A score's blocks are {"reason", "ref"}, byte for byte as served before."""
    explained = explain(
        blocked_goal(), RankingInputs(now=NOW, active_beliefs=frozenset({"b.safety"}))
    )

    assert (
        b'[{"reason":"contradicts_belief","ref":"b.safety"},'
        b'{"reason":"dependency_unsatisfied","ref":"g-0"},'
        b'{"reason":"deadline_passed","ref":"2026-03-01T11:00:00+00:00"}]'
    ) == orjson.dumps([b.as_dict() for b in explained.blocked_by])


def test_vetting_blocks_serve_reason_detail_and_beliefs() -> None:
    """Vetting's blocks are {"reason", "detail", "belief_ids"}, byte for byte as before."""
    belief = Belief("b.safety", "never do that", True, 1, NOW, NOW)
    verdict = vet(
        blocked_goal(),
        VettingInputs({"b.safety": belief}, Consistency(0.7, ("b.safety",)), NOW, 0.6),
    )

    assert (
        b'[{"reason":"severity","detail":"consistency severity 0.70 >= 0.6",'
        b'"belief_ids":["b.safety"]},'
        b'{"reason":"contradicts_belief","detail":"contradicts an active belief",'
        b'"belief_ids":["b.safety"]},'
        b'{"reason":"deadline_passed","detail":"the deadline 2026-03-01T11:00:00+00:00 has passed",'
        b'"belief_ids":[]}]'
    ) == orjson.dumps([b.as_dict() for b in verdict.blocks])


def test_a_block_made_with_a_detail_serves_vettings_shape() -> None:
    """Block(reason, detail), as selection adds one to a verdict, is vetting's shape."""
    block = Block("dependency_unsatisfied", "depends on unsatisfied goals: g-0")

    assert {"reason": "dependency_unsatisfied", "detail": "depends on unsatisfied goals: g-0",
            "belief_ids": []} == block.as_dict()  # fmt: skip


def test_the_lua_scripts_spell_no_key_name() -> None:
    """No script builds a key from a literal ('goal:', 'ranked:'...): they get them."""
    spelled = {
        script.name: found
        for script in CACHE.glob("*.lua")
        if (found := re.findall(r"""['"][a-z_]+:['"]""", script.read_text()))
    }

    assert {} == spelled
