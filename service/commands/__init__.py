"""The use cases. One function per command; each write is one transaction.

The API, the CLI, scenarios and workers call these and nothing below them, so
every rule (versions, lifecycle, ledger, outbox) lives in exactly one place.
"""

from service.commands.base import MAX_PAGE, Change, Context, utcnow
from service.commands.goals import (
    GoalPage,
    abandon_goal,
    adopt_goal,
    create_goal,
    delete_goal,
    get_goal,
    list_goals,
    update_goal,
)
from service.commands.ledger import (
    ReplayReport,
    goal_history,
    ledger_checkpoint,
    replay_check,
    verify_ledger,
)

__all__ = [
    "MAX_PAGE",
    "Change",
    "Context",
    "GoalPage",
    "ReplayReport",
    "abandon_goal",
    "adopt_goal",
    "create_goal",
    "delete_goal",
    "get_goal",
    "goal_history",
    "ledger_checkpoint",
    "list_goals",
    "replay_check",
    "update_goal",
    "utcnow",
    "verify_ledger",
]
