"""`mes derive`: the partitions materialized in this process with the same Dagster
definitions the UI shows (an ephemeral instance: no DAGSTER_HOME needed)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import dagster as dg

from mes.settings import get_settings
from pipelines.assets.plant_day import build_plant_day
from pipelines.derive import plant_sites
from pipelines.partitions import plant_partitions, scopes
from pipelines.resources import MesDatabase
from transactional.errors import RuleViolation

# Dagster's console log of each run (about 30 lines at DEBUG) only when something is wrong;
# the command prints what was derived and which checks failed.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@dataclass(frozen=True)
class DayResult:
    day: dt.date
    site: str | None
    rows: dict[str, int]
    failed_checks: list[str]


def derive_days(url: str, first: dt.date, last: dt.date) -> list[DayResult]:
    """Materialize every partition from `first` to `last` (each site's, when there are
    several), in order."""
    if last < first:
        raise RuleViolation(f"--to {last} is before --from {first}")
    settings = get_settings()
    sites = plant_sites(url)
    # The asset as the definitions build it, without their bound resources: this run
    # names its own database.
    plant_day = build_plant_day(plant_partitions(settings.pipeline_timezone,
                                                 settings.pipeline_start_date, sites))
    results = []
    with dg.DagsterInstance.ephemeral() as instance:
        for scope in scopes(first, last, sites):
            outcome = dg.materialize([plant_day], partition_key=scope.key(),
                                     resources={"database": MesDatabase(url=url)},
                                     instance=instance, run_config=QUIET)
            rows = {}
            for event in outcome.get_asset_materialization_events():
                materialization = event.materialization
                count = materialization.metadata["rows"].value
                assert isinstance(count, int)
                rows[materialization.asset_key.to_user_string()] = count
            failed = [f"{check.asset_key.to_user_string()}:{check.check_name}"
                      for check in outcome.get_asset_check_evaluations() if not check.passed]
            results.append(DayResult(scope.day, scope.site, rows, failed))
    return results
