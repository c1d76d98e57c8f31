"""The one settings object, read from `MES_` environment variables (and a `.env` file).

Settings are read when `get_settings()` is first called, never at import time.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MES_", env_file=".env", extra="ignore")

    database_url: str | None = Field(
        default=None,
        description=(
            "PostgreSQL URL of a TimescaleDB database, used as the owner for migrations. "
            "When unset, the project's local cluster in `home` is used."
        ),
    )
    home: Path = Field(
        default=Path(".mes"),
        description="Folder the project owns for its local PostgreSQL cluster and state.",
    )
    local_port: int = Field(default=55432, ge=1024, le=65535)
    local_database: str = "mes"
    pool_min_size: int = Field(default=1, ge=0)
    pool_max_size: int = Field(default=8, ge=1)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
