"""The goals a run measures over, loaded through the real commands (create, then adopt),
so that every goal has its ledger events and outbox rows like one written over REST."""

from __future__ import annotations

import random

from service import commands
from service.bench.stats import progress
from service.commands import Context
from service.commands.vetting import Vetting
from service.config import Settings
from service.domain.inputs import GoalCreate
from service.domain.vetting import BuiltinChecker
from service.store.db import Database

CHUNK = 5_000  # goals per transaction (one fsync each)
CATEGORIES = ["introspection", "exploration", "maintenance", "user_requested"]
# How the bench's own processes vet: the built-in checker at the default threshold (their
# environment holds no GOALSTORE_CHECKER_URL or GOALSTORE_VET_THRESHOLD).
VETTING = Vetting(BuiltinChecker(), Settings.model_fields["vet_threshold"].default)


def load_goals(db: Database, start: int, count: int, rnd: random.Random) -> None:
    """Create and adopt goals g{start}… through the commands, one transaction per chunk."""
    ctx = Context("bench")
    for chunk in range(start, start + count, CHUNK):
        with db.batch():
            for n in range(chunk, min(chunk + CHUNK, start + count)):
                spec = GoalCreate.model_validate(
                    {
                        "id": f"g{n}", "text": f"bench goal {n}",
                        "category": CATEGORIES[n % 4],
                        "value": rnd.random(), "effort": rnd.random(), "risk": rnd.random(),
                        "horizon_max_min": rnd.choice([None, None, 600, 3000, 60 * 24 * 7]),
                    }
                )  # fmt: skip
                commands.create_goal(db, ctx, spec)
                commands.adopt_goal(db, ctx, str(spec.id), vetting=VETTING)
        progress(f"  {min(chunk + CHUNK, start + count)} goals loaded")
