"""`mes derive`: the day partitions materialized in this process with the same Dagster
definitions the UI shows (an ephemeral instance: no DAGSTER_HOME needed)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import dagster as dg

from mes.settings import get_settings
from pipelines.assets.plant_day import build_plant_day
from pipelines.partitions import daily_partitions
from pipelines.resources import MesDatabase
from transactional.errors import RuleViolation


@dataclass(frozen=True)
class DayResult:
    day: dt.date
    rows: dict[str, int]
    failed_checks: list[str]


def derive_days(url: str, first: dt.date, last: dt.date) -> list[DayResult]:
    """Materialize every day partition from `first` to `last`, in order."""
    if last < first:
        raise RuleViolation(f"--to {last} is before --from {first}")
    settings = get_settings()
    # The asset as the definitions build it, without their bound resources: this run
    # names its own database.
    plant_day = build_plant_day(daily_partitions(settings.pipeline_timezone,
                                                 settings.pipeline_start_date))
    results = []
    with dg.DagsterInstance.ephemeral() as instance:
        day = first
        while day <= last:
            outcome = dg.materialize([plant_day], partition_key=day.isoformat(),
                                     resources={"database": MesDatabase(url=url)},
                                     instance=instance)
            rows = {}
            for event in outcome.get_asset_materialization_events():
                materialization = event.materialization
                count = materialization.metadata["rows"].value
                assert isinstance(count, int)
                rows[materialization.asset_key.to_user_string()] = count
            failed = [f"{check.asset_key.to_user_string()}:{check.check_name}"
                      for check in outcome.get_asset_check_evaluations() if not check.passed]
            results.append(DayResult(day, rows, failed))
            day += dt.timedelta(days=1)
    return results
