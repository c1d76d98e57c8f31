"""The Dagster definitions: assembled here, defined in `assets/`, `schedules.py` and
`resources.py`. Loaded by `dagster dev -m pipelines.definitions` and by `mes derive`."""

from __future__ import annotations

import dagster as dg

from mes.settings import Settings, get_settings
from pipelines.assets.maintenance import raw_retention
from pipelines.assets.plant_day import build_plant_day
from pipelines.assets.work_requests import cmms_work_requests
from pipelines.partitions import daily_partitions
from pipelines.resources import MesDatabase
from pipelines.schedules import refresh_schedule, retention_schedule, work_request_schedule


def build_definitions(settings: Settings) -> dg.Definitions:
    partitions = daily_partitions(settings.pipeline_timezone, settings.pipeline_start_date)
    plant_day = build_plant_day(partitions)
    derive_job = dg.define_asset_job("derive_day", selection=[plant_day])
    work_request_job = dg.define_asset_job("cmms_work_requests_job",
                                           selection=[cmms_work_requests])
    return dg.Definitions(
        assets=[plant_day, cmms_work_requests],
        jobs=[derive_job, work_request_job, raw_retention],
        schedules=[refresh_schedule(derive_job, settings.pipeline_timezone),
                   retention_schedule(raw_retention, settings.pipeline_timezone),
                   work_request_schedule(work_request_job, settings.pipeline_timezone)],
        resources={"database": MesDatabase()},
        executor=dg.in_process_executor,
    )


@dg.definitions
def defs() -> dg.Definitions:
    # Settings are read when Dagster loads the definitions, not at import.
    return build_definitions(get_settings())
