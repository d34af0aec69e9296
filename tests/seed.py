"""The example goal of seed 000 (../shared/seeds/000_*.txt), copied by hand: tests compare the
code against it, so it must not come from the code."""

SEED_EXAMPLE_JSON = """
{
  "id": "goal_001",
  "text": "Conduct weekly self-reflection on identity coherence",
  "category": "introspection",
  "value": 0.8,
  "effort": 0.3,
  "risk": 0.1,
  "horizon_min_min": 0,
  "horizon_max_min": 10080,
  "aligns_with": ["core.ontological.consciousness"],
  "contradicts": [],
  "success_metrics": {"coherence_delta": 0.05},
  "state": "proposed",
  "created_at": "2025-11-08T12:00:00Z",
  "updated_at": "2025-11-08T12:00:00Z",
  "metadata": {}
}
"""
