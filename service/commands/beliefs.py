"""Belief commands: mirror the agent's beliefs, read them back."""

from __future__ import annotations

from service.commands.base import Context, record_event
from service.domain.beliefs import Belief, BeliefPut
from service.domain.errors import BeliefNotFound
from service.domain.timefmt import format_ts
from service.store import beliefs as belief_table
from service.store.db import Database


def put_belief(db: Database, ctx: Context, belief_id: str, spec: BeliefPut) -> tuple[Belief, bool]:
    """Create the belief or bring it up to date; (belief, whether anything changed)."""
    with db.write() as conn:
        now = ctx.clock()
        current = belief_table.fetch(conn, belief_id)
        belief = spec.new(belief_id, now) if current is None else spec.apply(current, now)
        if belief is current:
            return belief, False
        belief_table.upsert(conn, belief)
        record_event(
            conn, ctx, now,
            "belief_created" if current is None else "belief_updated",
            None,
            {"belief_id": belief_id,
             "set": {"statement": belief.statement, "active": belief.active,
                     "version": belief.version, "updated_at": format_ts(now)}},
        )  # fmt: skip
    return belief, True


def get_belief(db: Database, belief_id: str) -> Belief:
    belief = belief_table.fetch(db.connection(), belief_id)
    if belief is None:
        raise BeliefNotFound(belief_id)
    return belief


def list_beliefs(db: Database, active: bool | None = None) -> list[Belief]:
    return belief_table.listing(db.connection(), active)
