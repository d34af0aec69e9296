"""Every setting GoalStore reads, its environment variable and its default.

The README's configuration table mirrors this class; `Settings()` validates the
environment once, at start, and fails with a message naming the bad variable.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
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
        default=None, description="Redis to use; unset runs an embedded one in-process."
    )
    redis_prefix: str = Field(default="goalstore:", description="Prefix of every Redis key.")
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
    log_level: str = Field(default="INFO", description="Python logging level name.")
