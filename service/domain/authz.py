"""Who may change a goal (issue 17): its owner, or an actor acting with admin rights.

The one place of the rule. Commands apply it inside their write transaction, right
after loading the goal and before anything else (the version check included), so a
refusal writes nothing: no ledger event, no conflict event, no state change.
Which callers act with admin rights is decided where their Context is built: an
`admin` API key, the keyless embedded mode, the operator's CLI, the workers.
"""

from __future__ import annotations

from service.domain.errors import NotPermitted
from service.domain.goal import Goal


def may_change(goal: Goal, actor: str, *, admin: bool) -> bool:
    """Whether `actor` may change `goal`: it owns it (it created it), or acts as admin."""
    return admin or actor == goal.owner


def ensure_may_change(goal: Goal, actor: str, *, admin: bool, action: str) -> None:
    """NotPermitted unless `actor` may change `goal` (`action` names the refused change)."""
    if not may_change(goal, actor, admin=admin):
        raise NotPermitted(goal.id, action)
