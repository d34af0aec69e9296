"""Every setting GoalStore reads, its environment variable and its default.

The README's configuration table mirrors this class; `Settings()` validates the
environment once, at start, and fails with a message naming the bad variable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GOALSTORE_", extra="ignore")

    database: Path = Field(
        default=Path("data/goalstore.db"), description="SQLite file: the durable store."
    )
    busy_timeout_ms: int = Field(
        default=5_000, ge=0, description="How long a writer waits for the SQLite lock."
    )
    redis_url: str | None = Field(
        default=None,
        description="Redis for the ranking cache and the queues, e.g. `redis://127.0.0.1:6379/0`.",
    )
    redis_prefix: str = Field(default="goalstore:", description="Prefix of every Redis key.")
    events_queue: str = Field(
        default="goalstore-events",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$",
        description="RQ queue of change events (the relay puts, the worker takes).",
    )
    events_batch: int = Field(
        default=500, ge=1, le=10_000, description="Most events the relay puts in one RQ job."
    )
    relay_interval_ms: int = Field(
        default=25, ge=1, le=60_000, description="How often the worker's relay polls the outbox."
    )
    redeliver_after_s: int = Field(
        default=30, ge=1, description="Send a relayed event again if not applied by then."
    )
    outbox_retention_hours: int = Field(
        default=24, ge=0, description="Keep applied outbox rows this long (the ledger keeps all)."
    )
    tick_seconds: int = Field(
        default=30,
        ge=1,
        le=60,
        description="RQ cron interval of the cache refresh (urgency drift, cold-cache rebuild).",
    )
    cache_max_lag_s: float = Field(
        default=10.0,
        ge=0,
        description="Rank from SQLite instead of Redis while the oldest unapplied event is older.",
    )
    api_keys: str | None = Field(
        default=None,
        description="`actor:scope+scope:key`, comma-separated; unset serves without auth.",
    )
    max_body_bytes: int = Field(
        default=1_048_576, ge=1_024, description="Largest request body accepted (bytes)."
    )
    host: str = Field(default="127.0.0.1", description="Address `goalstore serve` binds.")
    port: int = Field(
        default=8000,
        ge=0,
        le=65_535,
        validation_alias=AliasChoices("PORT", "GOALSTORE_PORT"),
        description="Port `goalstore serve` binds (the Procfile's $PORT).",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        default="INFO", description="Level of the JSON log lines on stderr."
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


def settings_problems(exc: ValidationError) -> str:
    """A ValidationError of Settings, told in environment variable names."""
    parts = []
    for err in exc.errors():
        field = str(err["loc"][0]) if err["loc"] else "?"
        name = "PORT" if field == "port" else f"GOALSTORE_{field.upper()}"
        parts.append(f"{name}: {err['msg']}")
    return "; ".join(parts)
