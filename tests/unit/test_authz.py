"""The owner rule (issue 17), service/domain/authz.py: who may change a goal."""

from __future__ import annotations

import pytest

from service.domain.authz import ensure_may_change, may_change
from service.domain.errors import ErrorKind, NotPermitted
from service.testing import make_goal


@pytest.mark.parametrize(
    ("actor", "admin", "allowed"),
    [
        ("alice", False, True),  # the owner
        ("alice", True, True),
        ("bob", False, False),  # another actor
        ("bob", True, True),  # an admin, whoever it is
        ("Alice", False, False),  # actors are compared exactly
        ("", False, False),
    ],
)
def test_the_owner_or_an_admin_may_change_a_goal(actor: str, admin: bool, allowed: bool) -> None:
    """Only the goal's owner, or an actor acting as admin, may change it."""
    goal = make_goal(owner="alice")

    assert allowed == may_change(goal, actor, admin=admin)


def test_a_refusal_names_the_goal_and_the_action_not_the_owner() -> None:
    """NotPermitted is the `forbidden` kind, with the goal id and the refused action; its
    message and fields do not name the owner."""
    goal = make_goal(id="g-1", owner="alice")

    with pytest.raises(NotPermitted) as refused:
        ensure_may_change(goal, "bob", admin=False, action="abandon")

    error = refused.value
    assert (ErrorKind.FORBIDDEN, {"goal_id": "g-1", "action": "abandon"}) == (
        error.kind, error.fields()
    )  # fmt: skip
    assert "alice" not in str(error)


def test_the_owner_and_an_admin_pass_the_check() -> None:
    """ensure_may_change returns quietly for the owner and for an admin."""
    goal = make_goal(owner="alice")

    assert None is ensure_may_change(goal, "alice", admin=False, action="update")
    assert None is ensure_may_change(goal, "ops", admin=True, action="update")
