"""The services the RQ jobs of this process use.

A job function (an events batch, a scheduler task and its callbacks) runs in
whatever process RQ runs it in. A GoalStore process that runs jobs itself (the
events worker, `goalstore scheduler`, the embedded mode) hands its services over
with `use()`, so jobs share its connections; anywhere else (the stock `rq worker`,
a forked work horse) they are built once from the environment, on first use.
"""

from __future__ import annotations

from service.runtime import Services, build_services

_services: Services | None = None


def use(services: Services | None) -> None:
    """Let jobs run in this process share these services (None: build from env)."""
    global _services
    _services = services


def services() -> Services:
    global _services
    if _services is None:
        _services = build_services()
    return _services
