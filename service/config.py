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

    database: str = Field(
        default="data/goalstore.db",
        min_length=1,
        description="The durable store: a SQLite file, or a `postgresql://` URL "
        "(docs/postgresql.md).",
    )
    busy_timeout_ms: int = Field(
        default=5_000, ge=0, description="How long a writer waits for the store's write lock."
    )
    db_pool_size: int = Field(
        default=10, ge=1, le=1_000, description="PostgreSQL connections per process, at most."
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
    goal_system: bool = Field(
        default=False,
        validation_alias=AliasChoices("GOAL_SYSTEM", "GOALSTORE_GOAL_SYSTEM"),
        description="Flag `GOAL_SYSTEM`: selection hands goals to the scheduler (off: the "
        "TaskScheduler adapter uses its fallback task source). Rollback is `off`.",
    )
    goal_shadow: bool = Field(
        default=True,
        validation_alias=AliasChoices("GOAL_SHADOW", "GOALSTORE_GOAL_SHADOW"),
        description="Flag `GOAL_SHADOW`: selection ranks, logs and counts the would-be goal "
        "and emits nothing.",
    )
    canary_percent: int = Field(
        default=100,
        ge=0,
        le=100,
        description="Share of selections (by trace id) that go to GoalStore while "
        "`GOAL_SYSTEM` is on; the rest use the fallback task source.",
    )
    scheduler_queue: str = Field(
        default="scheduler",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$",
        description="RQ queue of tasks handed to the scheduler (one job per task).",
    )
    scheduler_depth: int = Field(
        default=0,
        ge=0,
        le=10_000,
        description="`goalstore selector` keeps the scheduler queue this deep (0: off).",
    )
    executor: str = Field(
        default="workers.tasks.reference_executor",
        pattern=r"^[A-Za-z_][A-Za-z0-9_.]*$",
        description="Import path of the function a scheduler job runs.",
    )
    job_timeout_s: int = Field(
        default=300, ge=1, description="RQ timeout of a scheduler job (the task then fails)."
    )
    max_attempts: int = Field(
        default=3, ge=1, le=100, description="Attempts of a goal before it is abandoned."
    )
    claim_ttl_s: int = Field(
        default=30, ge=1, description="How long a selector's Redis claim on a goal lasts."
    )
    task_stale_s: int = Field(
        default=60,
        ge=1,
        description="A queued/running task untouched this long is checked against its RQ job.",
    )
    vet_threshold: float = Field(
        default=0.6, ge=0.0, le=1.0, description="Consistency severity that blocks adoption."
    )
    checker_url: str | None = Field(
        default=None,
        description="External BeliefConsistencyChecker (HTTP POST); unset: the built-in one.",
    )
    checker_timeout_s: float = Field(
        default=2.0, gt=0, le=60, description="Timeout of the external checker."
    )
    api_keys: str | None = Field(
        default=None,
        description="`actor:scope+scope:key`, comma-separated; unset serves without auth.",
    )
    allow_anonymous: bool = Field(
        default=False,
        description="Serve without API keys on an address other than loopback (otherwise "
        "`goalstore serve` refuses to start there without GOALSTORE_API_KEYS).",
    )
    rate_limit_per_s: float = Field(
        default=0.0,
        ge=0,
        le=100_000,
        description="Writes a second each actor may make, sustained (a token bucket in Redis, "
        "shared by every web process); 0: no limit. Reads are never limited.",
    )
    rate_limit_burst: int = Field(
        default=0,
        ge=0,
        le=1_000_000,
        description="Writes an actor may make at once before the rate applies; 0: twice the "
        "rate (at least 1).",
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

    @field_validator("database", mode="before")
    @classmethod
    def _location(cls, value: object) -> object:
        return str(value) if isinstance(value, Path) else value

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
