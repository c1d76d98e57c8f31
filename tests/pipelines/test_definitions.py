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
from pipelines.materialize import derive_days
from pipelines.reading import plant_windows
from tests.pipelines.scenario import DAY, Raw, load_test_plant, local


def test_the_definitions_load_with_partitions_checks_and_schedules() -> None:
    defs = build_definitions(Settings(database_url=None))
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
    assert isinstance(partitions, dg.DailyPartitionsDefinition)
    assert partitions.timezone == "Europe/Berlin"
    checks = {check.name for check in plant_day.check_specs}
    assert {"covers_calendar_time", "ratios_in_range", "counts_non_negative",
            "performance_at_most_one", "ideal_cycle_time_known",
            "counts_agree_with_reports"} == checks
    assert defs.resolve_job_def("derive_day").executor_def is dg.in_process_executor


def test_the_refresh_schedule_asks_for_today_and_yesterday() -> None:
    defs = build_definitions(Settings(database_url=None))
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
