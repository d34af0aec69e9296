"""GoalStore: durable goals, a hash-chained ledger, and a hot ranking for agents."""

__version__ = "0.1.0"
