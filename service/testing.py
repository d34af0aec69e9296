"""Helpers for tests of GoalStore and of code that uses it (shipped beside the code)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from service.commands import Context
from service.store.db import Database
from service.store.migrate import migrate
from service.tracing import new_trace


def goal_spec(**overrides: Any) -> dict[str, Any]:
    """A valid create body; override any field."""
    spec: dict[str, Any] = {
        "text": "Summarise yesterday's failed tasks",
        "category": "maintenance",
        "value": 0.6,
        "effort": 0.4,
        "risk": 0.2,
    }
    spec.update(overrides)
    return spec


@dataclass
class FrozenClock:
    """A clock that moves only when told to: `clock.advance(minutes=5)`."""

    now: datetime = field(default_factory=lambda: datetime(2026, 1, 1, 12, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


def make_context(actor: str = "tester", clock: FrozenClock | None = None) -> Context:
    return Context(actor=actor, trace=new_trace(), clock=clock or FrozenClock())


def migrated_database(path: Path) -> Database:
    db = Database(path)
    migrate(db)
    return db


T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T | None], seconds: float = 30) -> T:
    """Poll `probe` until it returns something truthy; fail naming `what`."""
    deadline = time.monotonic() + seconds
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")
