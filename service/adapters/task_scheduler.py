"""The TaskScheduler adapter (DESIGN §7, §9, seed 000's scheduler coexistence).

An agent platform's scheduler asks `get_next_task()`. With `GOAL_SYSTEM` on (and this
call in the canary), GoalStore selects a goal and hands its task over; the task
payload is returned (the job is also on the scheduler queue for RQ workers).
Otherwise, in shadow mode, or when no goal is selectable, the task source the
platform already had answers. Rollback is `GOAL_SYSTEM=off`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from service.commands.base import Context
from service.commands.kinds import SelectionMode
from service.commands.selection import Selector
from service.commands.starting import task_payload
from service.tracing import TraceContext, new_trace


class TaskScheduler:
    def __init__(
        self, selector: Selector, fallback: Callable[[], Any | None], actor: str = "scheduler"
    ) -> None:
        self.selector, self.fallback, self.actor = selector, fallback, actor

    def get_next_task(self, trace: TraceContext | None = None) -> Any | None:
        """A GoalStore task payload (a dict with `task_id`, `goal_id`, `traceparent`...)
        when a goal was selected and emitted, else whatever the fallback source gives."""
        # The platform's scheduler acts for the system: it starts anyone's goals.
        system = Context(actor=self.actor, trace=trace or new_trace(), admin=True)
        selection = self.selector.select(system)
        if selection.mode == SelectionMode.EMITTED and selection.goal and selection.task:
            return task_payload(selection.goal, selection.task)
        return self.fallback()
