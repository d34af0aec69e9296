"""The use cases. One function per command; each write is one transaction.

The API, the CLI, scenarios and workers call these and nothing below them, so
every rule (versions, lifecycle, ledger, outbox) lives in exactly one place.
"""

from service.commands.annotations import (
    NotePage,
    add_note,
    block_goal,
    link_work,
    list_notes,
    review_criterion,
    unblock_goal,
)
from service.commands.base import MAX_PAGE, Change, Context, utcnow
from service.commands.beliefs import get_belief, list_beliefs, put_belief
from service.commands.decisions import (
    change_decision,
    get_decision,
    list_outcomes,
    record_outcome,
)
from service.commands.events import (
    apply_events,
    cache_backlog,
    redeliver_stale,
    refresh_cache,
    relay_outbox,
)
from service.commands.gate import GateClosed, ResultInvalid, satisfy_goal
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
    CheckedHistory,
    ReplayReport,
    goal_history,
    ledger_checkpoint,
    replay_check,
    verify_ledger,
)
from service.commands.observe import StoreFigures, store_figures
from service.commands.ranking import (
    RankedGoal,
    RankedView,
    RankingState,
    goal_score,
    prioritized,
    ranked_view,
    ranking_inputs,
    ranking_state,
    rebuild_cache,
)
from service.commands.selection import (
    Flags,
    SchedulerUnavailable,
    Selection,
    Selector,
    select_goal,
    select_goals,
)
from service.commands.starting import start_goals
from service.commands.tasks import (
    GoalManuallyBlocked,
    create_task,
    list_tasks,
    report_progress,
    report_task,
    review_task,
    sweep_tasks,
)
from service.commands.trees import ChildrenOpen, Decomposition, decompose_goal
from service.commands.vetting import Vetting

__all__ = [
    "MAX_PAGE",
    "Change",
    "CheckedHistory",
    "ChildrenOpen",
    "Context",
    "Decomposition",
    "Flags",
    "GateClosed",
    "GoalManuallyBlocked",
    "GoalPage",
    "NotePage",
    "RankedGoal",
    "RankedView",
    "RankingState",
    "ReplayReport",
    "ResultInvalid",
    "SchedulerUnavailable",
    "Selection",
    "Selector",
    "StoreFigures",
    "Vetting",
    "abandon_goal",
    "add_note",
    "adopt_goal",
    "apply_events",
    "block_goal",
    "cache_backlog",
    "change_decision",
    "create_goal",
    "create_task",
    "decompose_goal",
    "delete_goal",
    "get_belief",
    "get_decision",
    "get_goal",
    "goal_history",
    "goal_score",
    "ledger_checkpoint",
    "link_work",
    "list_beliefs",
    "list_goals",
    "list_notes",
    "list_outcomes",
    "list_tasks",
    "prioritized",
    "put_belief",
    "ranked_view",
    "ranking_inputs",
    "ranking_state",
    "rebuild_cache",
    "record_outcome",
    "redeliver_stale",
    "refresh_cache",
    "relay_outbox",
    "replay_check",
    "report_progress",
    "report_task",
    "review_criterion",
    "review_task",
    "satisfy_goal",
    "select_goal",
    "select_goals",
    "start_goals",
    "store_figures",
    "sweep_tasks",
    "unblock_goal",
    "update_goal",
    "utcnow",
    "verify_ledger",
]
