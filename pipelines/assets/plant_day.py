"""One partition (a day, of one site when there are several) of every derived table, in
one step: the raw rows are read once and each table's partition is replaced in one
transaction; the checks then read the written rows back from the database, independently
of the Polars frames."""


from collections.abc import Iterator
from typing import Any

import dagster as dg
import polars as pl

from pipelines import queries
from pipelines.derive import derive_day
from pipelines.partitions import PARTITION_EXPR, partition_scope
from pipelines.resources import MesDatabase

MACHINE_TIME = dg.AssetKey("machine_time")
DOWNTIME_EVENTS = dg.AssetKey("downtime_events")
KPIS = dg.AssetKey("kpis")
COUNT_RECONCILIATION = dg.AssetKey("count_reconciliation")

CHECKS = [
    dg.AssetCheckSpec("covers_calendar_time", asset=MACHINE_TIME,
                      description="Each machine's intervals add up to its calendar day, "
                                  "without overlaps."),
    dg.AssetCheckSpec("ratios_in_range", asset=KPIS,
                      description="Availability and quality within 0..1, nothing negative, "
                                  "no ratio without planned busy time."),
    dg.AssetCheckSpec("counts_non_negative", asset=KPIS,
                      description="Produced, good and scrap quantities are not negative."),
    dg.AssetCheckSpec("performance_at_most_one", asset=KPIS,
                      description="Performance above 1 means a wrong ideal cycle time."),
    dg.AssetCheckSpec("ideal_cycle_time_known", asset=KPIS,
                      description="Parts were made with no ideal cycle time to judge them by."),
    dg.AssetCheckSpec("counts_agree_with_reports", asset=COUNT_RECONCILIATION,
                      description="Machine counts per run agree with the operators' reports."),
]


def build_plant_day(partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    def spec(key: dg.AssetKey, group: str, description: str,
             deps: tuple[dg.AssetKey, ...] = ()) -> dg.AssetSpec:
        return dg.AssetSpec(key, group_name=group, description=description, deps=deps,
                            metadata={"partition_expr": PARTITION_EXPR[key.path[-1]]},
                            partitions_def=partitions)

    @dg.multi_asset(
        specs=[
            spec(MACHINE_TIME, "machine_time",
                 "Every second of each machine's day in exactly one category."),
            spec(DOWNTIME_EVENTS, "downtime",
                 "Stops with their reason, planned or not, and the run at the time.",
                 (MACHINE_TIME,)),
            spec(KPIS, "kpi", "ISO 22400-2 KPIs per machine, line, site x hour, shift, day.",
                 (MACHINE_TIME, DOWNTIME_EVENTS)),
            spec(COUNT_RECONCILIATION, "quality",
                 "Machine counts per run against the operators' reported quantities."),
        ],
        check_specs=CHECKS,
        retry_policy=dg.RetryPolicy(max_retries=2, delay=5, jitter=dg.Jitter.PLUS_MINUS),
    )
    def plant_day(context: dg.AssetExecutionContext, database: MesDatabase
                  ) -> Iterator[dg.MaterializeResult[Any] | dg.AssetCheckResult]:
        scope = partition_scope(context.partition_key)
        url = database.database_url()
        written = derive_day(url, scope.day, site=scope.site,
                             settings=database.derivation_settings())
        if written.windows.is_empty():
            context.log.info("the plant has no machines here yet: nothing to derive")
        derived = written.derived
        rows = {MACHINE_TIME: derived.machine_time.height,
                DOWNTIME_EVENTS: derived.downtime_events.height,
                KPIS: derived.kpis.height, COUNT_RECONCILIATION: written.reconciled.height}
        for key, count in rows.items():
            yield dg.MaterializeResult(asset_key=key, metadata={"rows": count})
        with queries.connect(url) as conn:
            yield from check_results(conn, written.windows)

    return plant_day


def check_results(conn: queries.Connection,
                  windows: pl.DataFrame) -> Iterator[dg.AssetCheckResult]:
    """The data rules, read back from the written partition."""
    if windows.is_empty():
        for check in CHECKS:
            yield dg.AssetCheckResult(check_name=check.name, asset_key=check.asset_key,
                                      passed=True)
        return
    wjson = queries.windows_json(windows)
    coverage = queries.frame(conn, queries.MACHINE_TIME_COVERAGE, [wjson])
    uncovered = coverage.filter((pl.col("calendar_seconds") != pl.col("machine_seconds"))
                                | (pl.col("overlaps") > 0))
    yield dg.AssetCheckResult(
        check_name="covers_calendar_time", asset_key=MACHINE_TIME,
        passed=uncovered.is_empty(),
        metadata={"machines": coverage.height, "not_covered": uncovered.height})
    kpi = queries.frame(conn, queries.KPI_RANGES, [wjson]).row(0, named=True)
    yield dg.AssetCheckResult(
        check_name="ratios_in_range", asset_key=KPIS,
        passed=kpi["out_of_range"] == 0 and kpi["ratio_without_planned_time"] == 0,
        metadata={"out_of_range": kpi["out_of_range"],
                  "ratio_without_planned_time": kpi["ratio_without_planned_time"]})
    yield dg.AssetCheckResult(check_name="counts_non_negative", asset_key=KPIS,
                              passed=kpi["negative_counts"] == 0,
                              metadata={"rows": kpi["negative_counts"]})
    yield dg.AssetCheckResult(check_name="performance_at_most_one", asset_key=KPIS,
                              passed=kpi["performance_above_one"] == 0,
                              severity=dg.AssetCheckSeverity.WARN,
                              metadata={"rows": kpi["performance_above_one"]})
    yield dg.AssetCheckResult(check_name="ideal_cycle_time_known", asset_key=KPIS,
                              passed=kpi["missing_ideal_cycle_time"] == 0,
                              severity=dg.AssetCheckSeverity.WARN,
                              metadata={"rows": kpi["missing_ideal_cycle_time"]})
    runs = queries.frame(conn, queries.RUNS_STARTED, [wjson])["id"].to_list()
    flags = queries.frame(conn, queries.RECONCILIATION_FLAGS,
                          [queries.ids_json(runs)]).row(0, named=True)
    yield dg.AssetCheckResult(check_name="counts_agree_with_reports",
                              asset_key=COUNT_RECONCILIATION,
                              passed=flags["outside_tolerance"] == 0,
                              severity=dg.AssetCheckSeverity.WARN,
                              metadata={"runs": flags["runs"],
                                        "outside_tolerance": flags["outside_tolerance"]})
