"""The Dagster definitions: assembled here, defined in `assets/`, `schedules.py` and
`resources.py`. Loaded by `dagster dev -m pipelines.definitions` and by `mes derive`."""

from __future__ import annotations

import logging

import adbc_driver_manager.dbapi as adbc
import dagster as dg

from mes.db import database_url
from mes.settings import Settings, get_settings
from pipelines.assets.maintenance import raw_retention
from pipelines.assets.plant_day import build_plant_day
from pipelines.assets.work_requests import cmms_work_requests
from pipelines.derive import plant_sites
from pipelines.partitions import plant_partitions
from pipelines.resources import MesDatabase
from pipelines.schedules import refresh_schedule, retention_schedule, work_request_schedule
from transactional.errors import MesError

log = logging.getLogger(__name__)


def build_definitions(settings: Settings, sites: list[str] | None = None) -> dg.Definitions:
    """The definitions for the plant's `sites` (read from the database when not given):
    partitioned by day, and by site too when there are several."""
    if sites is None:
        sites = _sites(settings)
    partitions = plant_partitions(settings.pipeline_timezone, settings.pipeline_start_date,
                                  sites)
    plant_day = build_plant_day(partitions)
    derive_job = dg.define_asset_job("derive_day", selection=[plant_day])
    work_request_job = dg.define_asset_job("cmms_work_requests_job",
                                           selection=[cmms_work_requests])
    return dg.Definitions(
        assets=[plant_day, cmms_work_requests],
        jobs=[derive_job, work_request_job, raw_retention],
        schedules=[refresh_schedule(derive_job, settings.pipeline_timezone, sites),
                   retention_schedule(raw_retention, settings.pipeline_timezone),
                   work_request_schedule(work_request_job, settings.pipeline_timezone)],
        resources={"database": MesDatabase()},
        executor=dg.in_process_executor,
    )


def _sites(settings: Settings) -> list[str]:
    try:
        return plant_sites(database_url(settings))
    except (adbc.Error, MesError) as error:
        # Dagster may load the definitions before the database is up or migrated: day
        # partitions then, and site x day once it answers and the definitions are reloaded.
        log.warning("the plant's sites could not be read (%s): partitioning by day only",
                    error)
        return []


@dg.definitions
def defs() -> dg.Definitions:
    # Settings and sites are read when Dagster loads the definitions, not at import.
    return build_definitions(get_settings())
