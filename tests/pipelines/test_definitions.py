"""The Dagster definitions load, say what the UI shows, and materialize a day in process."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import polars as pl
import psycopg
import pytest

from mes.settings import Settings
from pipelines import queries
from pipelines.assets.plant_day import check_results
from pipelines.definitions import build_definitions
from pipelines.derive import derive_day
from pipelines.materialize import derive_days
from pipelines.reading import plant_windows
from tests.pipelines.scenario import DAY, PLANT, SECOND_SITE, Raw, load_test_plant, local


def test_the_definitions_load_with_partitions_checks_and_schedules() -> None:
    defs = build_definitions(Settings(database_url=None), sites=["S"])
    dg.Definitions.validate_loadable(defs)

    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert keys == {"machine_time", "downtime_events", "kpis", "count_reconciliation",
                    "cmms_work_requests"}
    plant_day = defs.resolve_assets_def("kpis")
    specs = {spec.key.to_user_string(): spec for spec in plant_day.specs}
    assert specs["kpis"].metadata["partition_expr"] == "period_start"
    assert specs["machine_time"].group_name == "machine_time"
    partitions = plant_day.partitions_def
    # No plant could be read (or one site): day partitions only.
    assert isinstance(partitions, dg.DailyPartitionsDefinition)
    assert partitions.timezone == "Europe/Berlin"
    checks = {check.name for check in plant_day.check_specs}
    assert {"covers_calendar_time", "ratios_in_range", "counts_non_negative",
            "performance_at_most_one", "ideal_cycle_time_known",
            "counts_agree_with_reports"} == checks
    assert defs.resolve_job_def("derive_day").executor_def is dg.in_process_executor


def test_the_refresh_schedule_asks_for_today_and_yesterday() -> None:
    defs = build_definitions(Settings(database_url=None), sites=["S"])
    schedule = defs.resolve_schedule_def("refresh_today")
    at = dt.datetime(2026, 3, 3, 0, 10, tzinfo=dt.UTC)   # 01:10 in Berlin
    with dg.build_schedule_context(scheduled_execution_time=at,
                                   repository_def=defs.get_repository_def()) as context:
        requests = list(schedule.evaluate_tick(context).run_requests or [])
    assert [r.partition_key for r in requests] == ["2026-03-02", "2026-03-03"]


@pytest.fixture
def raw(db_url: str, tmp_path: Path) -> Raw:
    load_test_plant(db_url, tmp_path)
    return Raw(db_url)


def _snapshot(url: str) -> dict[str, list[tuple[object, ...]]]:
    with psycopg.connect(url) as conn:
        return {table: sorted(conn.execute(f"SELECT * FROM derived.{table}").fetchall(),
                              key=repr)
                for table in ("machine_time", "downtime_event", "kpi")}


def test_materializing_a_day_in_process_is_idempotent(raw: Raw) -> None:
    raw.states("M1", (local(DAY, "05:00"), 1, None), (local(DAY, "08:00"), 5, 7),
               (local(DAY, "08:30"), 1, None))
    raw.counts("M1", local(DAY, "06:00"), good=100, reject=2)

    [first] = derive_days(raw.url, DAY, DAY)
    before = _snapshot(raw.url)
    [again] = derive_days(raw.url, DAY, DAY)

    assert first.failed_checks == [] and again.failed_checks == []
    assert first.rows["machine_time"] > 0 and first.rows["downtime_events"] == 1
    assert _snapshot(raw.url) == before
    # machine time covers the calendar: checked against independent SQL
    with psycopg.connect(raw.url) as conn:
        sums = conn.execute("SELECT equipment_id, sum(seconds), min(starts_at), max(ends_at) "
                            "FROM derived.machine_time GROUP BY 1 ORDER BY 1").fetchall()
    assert [s[1:] for s in sums] == [(86400.0, local(DAY, "00:00"),
                                      local(DAY + dt.timedelta(days=1), "00:00"))] * 2


def test_the_coverage_check_fails_on_a_hole(raw: Raw) -> None:
    raw.states("M1", (local(DAY, "05:00"), 1, None))
    derive_days(raw.url, DAY, DAY)
    with psycopg.connect(raw.url) as conn:
        conn.execute("DELETE FROM derived.machine_time WHERE equipment_id = %s AND "
                     "starts_at = %s", (raw.ids["M1"], local(DAY, "07:00")))

    with queries.connect(raw.url) as conn:
        windows = plant_windows(conn, DAY)
        results = {r.check_name: r for r in check_results(conn, windows)}

    assert not results["covers_calendar_time"].passed
    assert results["ratios_in_range"].passed


def test_performance_above_one_and_a_missing_ideal_cycle_time_are_flagged(raw: Raw) -> None:
    raw.states("M2", (local(DAY, "05:00"), 1, None))
    # M2 has two ideal cycle times and no run: which one applies is unknown.
    raw.counts("M2", local(DAY, "06:00"), good=10)
    raw.states("M1", (local(DAY, "05:00"), 1, None))
    # 30,000 parts in 7.5 h at an ideal 2 s each: performance 2.2.
    raw.counts("M1", local(DAY, "06:00"), good=30_000, every=dt.timedelta(milliseconds=500))

    [result] = derive_days(raw.url, DAY, DAY)

    assert sorted(result.failed_checks) == ["kpis:ideal_cycle_time_known",
                                            "kpis:performance_at_most_one"]
    m2 = raw.kpi("M2", "day", local(DAY, "00:00"))
    assert m2["performance"] is None and m2["missing_ideal_cycle_time"] is True
    assert m2["oee"] is None and m2["availability"] is not None


def test_kpis_roll_up_to_line_and_site_from_sums(raw: Raw) -> None:
    raw.states("M1", (local(DAY, "05:00"), 1, None))
    raw.states("M2", (local(DAY, "05:00"), 1, None), (local(DAY, "06:00"), 5, None),
               (local(DAY, "07:30"), 1, None))
    derive_days(raw.url, DAY, DAY)

    line = raw.kpi("L", "shift", local(DAY, "06:00"))
    site = raw.kpi("S", "shift", local(DAY, "06:00"))
    # 7.5 h busy each; M1 ran 7.5 h, M2 6 h
    assert line["planned_busy_seconds"] == 15 * 3600.0
    assert abs(line["availability"] - 13.5 / 15) < 1e-12   # type: ignore[operator]
    assert site["availability"] == line["availability"]
    frame = pl.DataFrame([line])
    assert frame["scope"][0] == "line"


def test_with_two_sites_the_partitions_are_site_by_day(db_url: str, tmp_path: Path) -> None:
    load_test_plant(db_url, tmp_path, PLANT + SECOND_SITE)

    # The sites are read from the plant when the definitions load.
    defs = build_definitions(Settings(database_url=db_url))

    partitions = defs.resolve_assets_def("kpis").partitions_def
    assert isinstance(partitions, dg.MultiPartitionsDefinition)
    dimensions = {d.name: d.partitions_def for d in partitions.partitions_defs}
    assert set(dimensions) == {"date", "site"}
    assert dimensions["site"].get_partition_keys() == ["S", "T"]
    assert isinstance(dimensions["date"], dg.DailyPartitionsDefinition)
    schedule = defs.resolve_schedule_def("refresh_today")
    at = dt.datetime(2026, 3, 3, 0, 10, tzinfo=dt.UTC)
    with dg.build_schedule_context(scheduled_execution_time=at,
                                   repository_def=defs.get_repository_def()) as context:
        requests = list(schedule.evaluate_tick(context).run_requests or [])
    keys = [r.partition_key for r in requests]
    assert all(isinstance(k, dg.MultiPartitionKey) for k in keys)
    assert sorted((k.keys_by_dimension["site"], k.keys_by_dimension["date"])  # type: ignore[union-attr]
                  for k in keys) == [("S", "2026-03-02"), ("S", "2026-03-03"),
                                     ("T", "2026-03-02"), ("T", "2026-03-03")]


def _rows_of(url: str, machines: list[str]) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT t.* FROM derived.machine_time t JOIN mes.equipment e ON e.id = t.equipment_id "
            "WHERE e.code = ANY(%s) ORDER BY t.equipment_id, t.starts_at", (machines,)).fetchall()


def test_each_site_is_derived_as_a_partition_of_its_own(db_url: str, tmp_path: Path) -> None:
    load_test_plant(db_url, tmp_path, PLANT + SECOND_SITE)
    raw = Raw(db_url)
    raw.states("M1", (local(DAY, "05:00"), 1, None))
    raw.states("M3", (local(DAY, "05:00"), 1, None))

    results = derive_days(db_url, DAY, DAY)

    assert [(r.day, r.site) for r in results] == [(DAY, "S"), (DAY, "T")]
    assert all(r.failed_checks == [] for r in results)
    # site S has two machines, T one: each partition wrote its own machines' days
    assert results[0].rows["machine_time"] > results[1].rows["machine_time"] > 0
    first_site = _rows_of(db_url, ["M1", "M2"])
    second_site = _rows_of(db_url, ["M3"])
    assert first_site and second_site

    # New data of site T, derived again: only T's rows change, and its site KPI follows.
    raw.states("M3", (local(DAY, "07:00"), 5, 7))
    derive_day(db_url, DAY, site="T", now=dt.datetime(2030, 1, 1, tzinfo=dt.UTC))

    assert _rows_of(db_url, ["M1", "M2"]) == first_site
    assert _rows_of(db_url, ["M3"]) != second_site
    shift = raw.kpi("T", "shift", local(DAY, "06:00"))
    assert shift["actual_production_seconds"] == 3600.0    # 06:00-07:00, then the fault
    first = raw.kpi("S", "shift", local(DAY, "06:00"))
    assert first["actual_production_seconds"] == 7.5 * 3600    # M1 all shift but the break
