"""Scenarios: a JSON file of goal commands, replayed through the GoalStore's use cases.

steps.py is the file's schema (every step, validated before the first runs); run.py
runs them (`apply_scenario`) and reads a file from a safe path (`load_scenario`).
"""

from service.scenario.run import (
    MAX_SCENARIO_BYTES,
    UnsafePath,
    apply_scenario,
    load_scenario,
    resolve_scenario_path,
)
from service.scenario.steps import Scenario, Step, check_from_step

__all__ = [
    "MAX_SCENARIO_BYTES", "Scenario", "Step", "UnsafePath", "apply_scenario",
    "check_from_step", "load_scenario", "resolve_scenario_path",
]  # fmt: skip
