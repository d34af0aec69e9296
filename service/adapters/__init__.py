"""Adapters to the world outside GoalStore: the external checker, the scheduler queue."""
