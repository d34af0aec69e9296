"""Counters of what the commands do, under the seed's names (DESIGN §10).

The `/metrics` endpoint and how the workers' counts reach it are issue 5's; these
are counted where the rule runs, so every entry point (API, CLI, workers) counts.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

GOALS_ADOPTED = Counter("goals_adopted", "Goals adopted.")
GOAL_BLOCKED_BY_BELIEF = Counter(
    "goal_blocked_by_belief",
    "Adoptions or selections refused by vetting, per belief involved ('-' for none).",
    ["belief_id"],
)
GOAL_SELECTED = Counter(
    "goal_selected",
    "Selections: emitted (a task reached the scheduler queue), shadow (counted, not emitted).",
    ["mode"],
)
SELECT_LATENCY = Histogram(
    "goal_select_latency_seconds", "Time to select and emit one goal.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)  # fmt: skip


def count_block(belief_ids: list[str]) -> None:
    for belief_id in belief_ids or ["-"]:
        GOAL_BLOCKED_BY_BELIEF.labels(belief_id=belief_id).inc()
