"""The prioritizer alone: `rank()` over synthetic goals, in process, no I/O, beside a
sort of as many floats (the least any ranking of n items costs)."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

from service.bench.plan import PRIORITIZER_TARGETS_P95_MS, label
from service.bench.stats import percentiles, progress, ratio, timed
from service.domain.ranking import Features, RankingInputs, rank


def synthetic_features(n: int, rnd: random.Random, now: float) -> list[Features]:
    """Goals shaped like real ones: some align with or contradict beliefs, some depend on
    others, a third have deadlines (some inside the urgency window, a few passed)."""
    beliefs = [f"b{i}" for i in range(20)]
    out = []
    for i in range(n):
        deadline = None
        if rnd.random() < 0.33:
            deadline = now + rnd.uniform(-3600, 3 * 86400)
        out.append(
            Features(
                f"g{i}",
                rnd.random(),
                rnd.random(),
                rnd.random(),
                deadline,
                now - rnd.uniform(0, 30 * 86400),
                tuple(rnd.sample(beliefs, rnd.randint(0, 3))) if rnd.random() < 0.3 else (),
                (rnd.choice(beliefs),) if rnd.random() < 0.05 else (),
                (f"g{rnd.randrange(n)}",) if rnd.random() < 0.02 else (),
            )
        )
    return out


def measure(sizes: tuple[int, ...]) -> dict[str, Any]:
    """One entry per size, keyed by its label ("1k", "100k")."""
    rnd = random.Random(42)
    now = datetime.now(UTC)
    inputs = RankingInputs(
        now=now,
        active_beliefs=frozenset(f"b{i}" for i in range(0, 20, 3)),
        satisfied_goals=frozenset(f"g{i}" for i in range(0, max(sizes), 7)),
    )
    out: dict[str, Any] = {}
    for n in sizes:
        runs = 200 if n <= 10_000 else 21
        progress(f"prioritizer over {n} goals, {runs} runs")
        goals = synthetic_features(n, rnd, now.timestamp())
        floats = [rnd.random() for _ in range(n)]
        out[label(n)] = _measure_size(goals, floats, inputs, runs)
    return out


def _measure_size(
    goals: list[Features], floats: list[float], inputs: RankingInputs, runs: int
) -> dict[str, Any]:
    n = len(goals)
    # Features in, the whole order out; rank() scores the goals as columns and makes
    # Ranked items on demand, so the first page is timed beside it.
    ranking = percentiles(timed(lambda: rank(goals, inputs), runs))
    page = percentiles(timed(lambda: rank(goals, inputs).top(20), runs))
    baseline = percentiles(timed(lambda: sorted(floats), runs))
    target = PRIORITIZER_TARGETS_P95_MS.get(n)
    return {
        "goals": n,
        **ranking,
        "target_p95_ms": target,
        "met": None if target is None else ranking["p95_ms"] <= target,
        "with_top_20_items_p50_ms": page["p50_ms"],
        "baseline_sorted_floats_p50_ms": baseline["p50_ms"],
        "ratio_to_baseline_p50": ratio(ranking["p50_ms"], baseline["p50_ms"]),
    }
