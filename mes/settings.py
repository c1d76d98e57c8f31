"""The one settings object, read from `MES_` environment variables.

Settings are read when `get_settings()` is first called, never at import time.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_home() -> Path:
    """`.mes` in the source tree when running from one (so `mes` finds the same cluster
    from any folder), else in the current folder."""
    source_root = Path(__file__).resolve().parent.parent
    if (source_root / "pyproject.toml").is_file():
        return source_root / ".mes"
    return Path(".mes")


class Settings(BaseSettings):
    # Environment only: no .env file, so nothing outside the environment can redirect
    # `./run test` to another server. An empty variable counts as unset.
    model_config = SettingsConfigDict(env_prefix="MES_", env_ignore_empty=True, extra="ignore")

    database_url: str | None = Field(
        default=None,
        description=(
            "PostgreSQL URL of a TimescaleDB database, used as the owner for migrations. "
            "When unset, the project's local cluster in `home` is used."
        ),
    )
    home: Path = Field(
        default_factory=_default_home,
        description="Folder the project owns for its local PostgreSQL cluster and state.",
    )
    local_port: int | None = Field(
        default=None, ge=1024, le=65535,
        description="Port of the local cluster; unset: the first free one from 55432, "
                    "chosen when the cluster is created and kept.",
    )
    local_database: str = "mes"
    pool_min_size: int = Field(default=1, ge=0)
    pool_max_size: int = Field(default=8, ge=1)
    collect_dir: Path | None = Field(
        default=None,
        description="Folder of `mes collect`: its spool, counter baselines and status file; "
                    "unset: `collect` in `home`.",
    )
    spool_max_bytes: int = Field(
        default=1 << 30, ge=1 << 20,
        description="How much the collector may spool on disk while the database is away.",
    )
    collect_role: str = Field(
        default="mes_ingest",
        description="The role `mes collect` writes as (SET ROLE); the database login must "
                    "be a member of it. Migrations make the schema owner one.",
    )
    flush_interval_ms: int = Field(default=50, ge=1, le=60_000,
                                   description="The writer flushes at least this often.")
    # Each transaction costs the server a few milliseconds: under load, large batches.
    flush_rows: int = Field(default=100_000, ge=1,
                            description="The writer flushes once this many rows wait.")

    pipeline_timezone: str = Field(
        default="Europe/Berlin",
        description="Time zone of the pipelines' day partitions and schedules (each "
                    "machine's day is still the local day of its own shift calendar).")
    pipeline_start_date: str = Field(default="2026-01-01",
                                     description="The first day partition of the pipelines.")
    micro_stop_seconds: float = Field(
        default=120.0, ge=0,
        description="Unplanned stops shorter than this are micro-stops: listed, but not "
                    "failures for MTBF and MTTR.")
    retention: str = Field(default="90d",
                           description="How long raw hypertable chunks are kept by the "
                                       "pipelines' retention schedule (90d, 12w, ...).")
    session_file: Path | None = Field(
        default=None,
        description="Where `mes login` keeps the session token (mode 0600); unset: "
                    "`session` in `home`.",
    )
    session_idle_minutes: int = Field(
        default=15, ge=1, le=24 * 60,
        description="A login session ends after this many minutes without a command.")
    session_max_hours: int = Field(default=12, ge=1, le=24,
                                   description="A login session ends this long after login.")
    lockout_failures: int = Field(default=5, ge=1, le=100,
                                  description="Failed attempts in a row that lock a person out.")
    lockout_minutes: int = Field(default=15, ge=1,
                                 description="How long a lock-out lasts.")

    nats_url: str = Field(
        default="nats://127.0.0.1:4222",
        description="The NATS server (JetStream) between the sites and the central store.")
    site_code: str | None = Field(
        default=None,
        description="This site's code for `mes site forward` (its stream is MES_SITE_<code>); "
                    "unset: the one site of the plant model.")
    forward_interval_ms: int = Field(
        default=200, ge=10, le=60_000,
        description="How often the site forwarder looks for new rows when it has caught up.")
    forward_message_rows: int = Field(
        default=10_000, ge=1, le=20_000,
        description="Time-series rows per NATS message (20,000 stay under NATS's default "
                    "1 MB message limit).")
    stream_max_age_days: float = Field(
        default=7, gt=0,
        description="How long a site's stream keeps messages after they were published "
                    "(so the central store can be fed again from it).")

    cmms_url: str | None = Field(
        default=None,
        description="Where work requests are POSTed as JSON (the CMMS's endpoint); unset: "
                    "the outbox folder only.")
    cmms_outbox: Path | None = Field(
        default=None,
        description="Folder of work request files (one JSON file per request); unset: "
                    "`cmms-outbox` in `home`.")
    cmms_post_attempts: int = Field(default=3, ge=1, le=20,
                                    description="POST attempts per request and delivery run.")
    cmms_backoff_seconds: float = Field(
        default=1.0, ge=0, le=300,
        description="Wait after the first failed POST; doubles after each further one.")

    @property
    def cmms_outbox_path(self) -> Path:
        return self.cmms_outbox if self.cmms_outbox is not None else self.home / "cmms-outbox"

    @property
    def session_path(self) -> Path:
        return self.session_file if self.session_file is not None else self.home / "session"

    @property
    def collect_path(self) -> Path:
        return self.collect_dir if self.collect_dir is not None else self.home / "collect"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
