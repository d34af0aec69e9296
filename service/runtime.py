"""The composition root: builds the parts once, from Settings, for every entry point."""

from __future__ import annotations

from dataclasses import dataclass

from service.auth import ApiKey, parse_api_keys
from service.config import Settings
from service.store.db import Database


@dataclass
class Services:
    settings: Settings
    db: Database
    api_keys: list[ApiKey]

    def close(self) -> None:
        self.db.close()


def build_services(settings: Settings | None = None) -> Services:
    settings = settings or Settings()
    return Services(
        settings=settings,
        db=Database(settings.database, settings.busy_timeout_ms),
        api_keys=parse_api_keys(settings.api_keys),
    )
