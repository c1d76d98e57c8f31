"""Raw data retention as a scheduled job: whole hypertable chunks older than the horizon
are dropped with the same code as `mes db retention` (derived tables are kept)."""


import dagster as dg

from ingest.retention import drop_old_chunks, parse_age
from mes.db import engine
from mes.settings import get_settings
from pipelines.resources import MesDatabase


class RetentionConfig(dg.Config):
    older_than: str | None = None


@dg.op
def drop_raw_chunks(context: dg.OpExecutionContext, config: RetentionConfig,
                    database: MesDatabase) -> None:
    """Drop raw hypertable chunks past the retention horizon."""
    age = parse_age(config.older_than or get_settings().retention)
    with engine(database.database_url()).begin() as conn:
        for result in drop_old_chunks(conn, age):
            context.log.info(f"{result.hypertable}: dropped {len(result.chunks)} chunks")


@dg.job(description="Drop raw hypertable chunks past the retention horizon.")
def raw_retention() -> None:
    drop_raw_chunks()
