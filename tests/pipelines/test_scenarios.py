"""Hand-computed days: exact availability, performance, quality and OEE (to 1e-9).

Plant (tests/pipelines/scenario.py): Europe/Berlin, shift DAY 06:00-14:00 with lunch
10:00-10:30, shift LATE 14:00-22:00, every day; M1 has one ideal cycle time (2 s).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from mes.db import session_factory
from pipelines.derive import derive_again, stop_of
from tests.pipelines.scenario import DAY, Raw, load_test_plant, local
from transactional.audit import acting
from transactional.downtime import classify_stop

RUNNING, FAULT, OFF = 1, 5, 0


@pytest.fixture
def raw(db_url: str, tmp_path: Path) -> Raw:
    load_test_plant(db_url, tmp_path)
    return Raw(db_url)


def close(value: object, expected: float) -> bool:
    return isinstance(value, float) and abs(value - expected) < 1e-9


def test_a_break_is_planned_time_and_a_fault_is_lost_time(raw: Raw) -> None:
    raw.states("M1", (local(DAY, "05:00"), RUNNING, None), (local(DAY, "08:00"), FAULT, 7),
               (local(DAY, "08:30"), RUNNING, None), (local(DAY, "22:00"), OFF, None))
    raw.counts("M1", local(DAY, "06:00"), good=9_000, reject=100, every=dt.timedelta(seconds=2))

    raw.derive()

    shift = raw.kpi("M1", "shift", local(DAY, "06:00"))
    # planned busy time 8 h - 30 min lunch; running 06:00-08:00 and 08:30-14:00 less lunch
    pbt, apt = 7.5 * 3600, 7.0 * 3600
    assert shift["planned_busy_seconds"] == pbt
    assert shift["actual_production_seconds"] == apt
    assert (shift["produced_quantity"], shift["good_quantity"]) == (9_100, 9_000)
    assert close(shift["availability"], apt / pbt)
    assert close(shift["performance"], 2.0 * 9_100 / apt)
    assert close(shift["quality"], 9_000 / 9_100)
    assert close(shift["oee"], (apt / pbt) * (2.0 * 9_100 / apt) * (9_000 / 9_100))
    assert shift["failure_count"] == 1
    assert close(shift["mttr_seconds"], 1800.0)
    assert close(shift["mtbf_seconds"], apt)
    day = raw.kpi("M1", "day", local(DAY, "00:00"))
    assert day["planned_busy_seconds"] == 15.5 * 3600
    assert day["actual_production_seconds"] == 15.0 * 3600


def test_a_stop_across_a_shift_boundary_is_split_and_counted_once(raw: Raw) -> None:
    raw.states("M1", (local(DAY, "05:00"), RUNNING, None), (local(DAY, "13:30"), FAULT, 7),
               (local(DAY, "14:30"), RUNNING, None), (local(DAY, "22:00"), OFF, None))

    raw.derive()

    day_shift = raw.kpi("M1", "shift", local(DAY, "06:00"))
    late = raw.kpi("M1", "shift", local(DAY, "14:00"))
    assert day_shift["planned_busy_seconds"] == 7.5 * 3600
    assert close(day_shift["availability"], 7.0 / 7.5)
    assert close(late["availability"], 7.5 / 8.0)
    # The failure began in the day shift: it counts there, its repair time in both.
    assert (day_shift["failure_count"], late["failure_count"]) == (1, 0)
    assert close(day_shift["mttr_seconds"], 1800.0)
    assert late["mttr_seconds"] is None and late["mtbf_seconds"] is None
    hour = raw.kpi("M1", "hour", local(DAY, "14:00"))
    assert close(hour["availability"], 0.5)
    # No counts: performance 0 where it ran, OEE 0 (planned time, nothing made), no quality.
    assert hour["quality"] is None and hour["oee"] == 0.0 and hour["performance"] == 0.0


def test_a_stop_carried_in_from_the_previous_day(raw: Raw) -> None:
    before = DAY - dt.timedelta(days=1)
    raw.states("M1", (local(before, "05:00"), RUNNING, None), (local(before, "21:00"), FAULT, 7),
               (local(DAY, "07:00"), RUNNING, None), (local(DAY, "22:00"), OFF, None))

    raw.derive(before)
    raw.derive(DAY)

    shift = raw.kpi("M1", "shift", local(DAY, "06:00"))
    assert shift["actual_production_seconds"] == 6.5 * 3600
    assert close(shift["availability"], 6.5 / 7.5)
    assert shift["failure_count"] == 0
    assert close(shift["failure_seconds"], 3600.0)
    with raw.connect() as conn:
        events = conn.execute(
            "SELECT started_at, ended_at, duration_seconds, reason_source FROM "
            "derived.downtime_event WHERE equipment_id = %s AND category = 'unplanned_stop' "
            "ORDER BY started_at",
            (raw.ids["M1"],)).fetchall()
    # One event, in the partition of the day it began, ending when the machine ran again.
    assert events == [(local(before, "21:00"), local(DAY, "07:00"), 10 * 3600.0,
                       "fault_code")]


def test_no_planned_time_gives_null_ratios_not_zero(raw: Raw) -> None:
    with raw.connect() as conn:
        conn.execute(
            "INSERT INTO mes.planned_stop (shift_calendar_id, starts_at, ends_at, "
            "downtime_reason_id) SELECT c.id, %s, %s, r.id FROM mes.shift_calendar c, "
            "mes.downtime_reason r WHERE r.code = 'PM'",
            (local(DAY, "00:00"), local(DAY + dt.timedelta(days=1), "00:00")))
    raw.states("M1", (local(DAY, "05:00"), RUNNING, None))
    raw.counts("M1", local(DAY, "07:00"), good=10)

    raw.derive()

    day = raw.kpi("M1", "day", local(DAY, "00:00"))
    assert day["planned_busy_seconds"] == 0.0 and day["produced_quantity"] == 10
    for ratio in ("availability", "performance", "quality", "oee", "scrap_ratio",
                  "first_pass_yield", "throughput_per_hour", "setup_ratio", "mtbf_seconds",
                  "mttr_seconds"):
        assert day[ratio] is None, ratio
    m2 = raw.kpi("M2", "day", local(DAY, "00:00"))   # no data at all: still its row
    assert m2["oee"] is None and m2["unknown_seconds"] == 0.0


def test_a_collection_gap_is_unknown_time_not_run_time(raw: Raw) -> None:
    raw.states("M1", (local(DAY, "05:00"), RUNNING, None))
    raw.gap("M1", local(DAY, "08:00"), local(DAY, "09:00"))
    raw.gap("M1", local(DAY, "20:00"), None)   # still open: unknown to the end of the day
    raw.counts("M1", local(DAY, "06:00"), good=5_000, every=dt.timedelta(seconds=4))

    raw.derive()

    shift = raw.kpi("M1", "shift", local(DAY, "06:00"))
    pbt, apt = 7.5 * 3600, 6.5 * 3600
    assert shift["unknown_seconds"] == 3600.0
    assert close(shift["availability"], apt / pbt)
    assert close(shift["performance"], 2.0 * 5_000 / apt)
    assert close(shift["quality"], 1.0)
    assert close(shift["oee"], (apt / pbt) * (2.0 * 5_000 / apt))
    late = raw.kpi("M1", "shift", local(DAY, "14:00"))
    assert late["unknown_seconds"] == 2 * 3600.0
    assert close(late["availability"], 6.0 / 8.0)


@pytest.mark.parametrize(("day", "hours"), [(dt.date(2026, 3, 29), 23),
                                            (dt.date(2026, 10, 25), 25)])
def test_a_dst_day_has_its_own_number_of_hours(raw: Raw, day: dt.date, hours: int) -> None:
    raw.states("M1", (local(day, "00:00"), RUNNING, None))

    raw.derive(day)

    with raw.connect() as conn:
        hour_rows = conn.execute(
            "SELECT count(*) FROM derived.kpi WHERE equipment_id = %s AND period = 'hour'",
            (raw.ids["M1"],)).fetchone()
        covered = conn.execute(
            "SELECT sum(seconds) FROM derived.machine_time WHERE equipment_id = %s",
            (raw.ids["M1"],)).fetchone()
    assert hour_rows == (hours,)
    assert covered == (hours * 3600.0,)
    day_row = raw.kpi("M1", "day", local(day, "00:00"))
    # Wall-clock shifts: 06:00-14:00 and 14:00-22:00 are 8 h each, whatever the day.
    assert day_row["planned_busy_seconds"] == 15.5 * 3600
    assert close(day_row["availability"], 1.0)


def test_a_late_reclassification_restates_the_kpis(raw: Raw) -> None:
    raw.states("M1", (local(DAY, "05:00"), RUNNING, None), (local(DAY, "08:00"), FAULT, 7),
               (local(DAY, "09:00"), RUNNING, None), (local(DAY, "22:00"), OFF, None))
    raw.derive()
    before = raw.kpi("M1", "shift", local(DAY, "06:00"))
    assert close(before["availability"], 6.5 / 7.5) and before["failure_count"] == 1
    with raw.connect() as conn:
        event = conn.execute("SELECT id FROM derived.downtime_event WHERE equipment_id = %s",
                             (raw.ids["M1"],)).fetchone()
    assert event is not None

    now = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    stop = stop_of(raw.url, event[0], now=now)
    with session_factory(raw.url)() as session, session.begin():
        acting(session, "100")
        classify_stop(session, stop.equipment_id, stop.started_at, "PM")
    derive_again(raw.url, stop, now=now)

    assert stop.days == [DAY]
    after = raw.kpi("M1", "shift", local(DAY, "06:00"))
    # Planned maintenance is not planned busy time: 6.5 h busy, all of it running.
    assert after["planned_busy_seconds"] == 6.5 * 3600
    assert close(after["availability"], 1.0) and after["failure_count"] == 0
    with raw.connect() as conn:
        reclassified = conn.execute(
            "SELECT d.id, r.code, d.reason_source, d.planned FROM derived.downtime_event d "
            "JOIN mes.downtime_reason r ON r.id = d.downtime_reason_id").fetchall()
        audited = conn.execute("SELECT actor, action FROM mes.audit_log "
                               "WHERE table_name = 'downtime_classification'").fetchall()
    assert reclassified == [(event[0], "PM", "operator", True)]   # the same event number
    assert audited == [("100", "insert")]


def _run(raw: Raw, machine: str, material: str, order: str, start: dt.datetime,
         end: dt.datetime, good: float) -> None:
    with raw.connect() as conn, conn.transaction():
        conn.execute("SELECT set_config('mes.actor', 'mes-admin', true)")
        conn.execute(
            "INSERT INTO mes.product_definition (code, name, material_id) SELECT %s, %s, id "
            "FROM mes.material_definition WHERE code = %s ON CONFLICT DO NOTHING",
            (material, material, material))
        conn.execute(
            "INSERT INTO mes.routing_operation (product_id, sequence, code, name, "
            "work_center_type, standard_seconds_per_unit) SELECT id, 10, 'OP', 'Op', 'T', 1 "
            "FROM mes.product_definition WHERE code = %s ON CONFLICT DO NOTHING", (material,))
        conn.execute(
            "INSERT INTO mes.work_order (code, product_id, quantity, status) SELECT %s, id, "
            "1000, 'in_progress' FROM mes.product_definition WHERE code = %s",
            (order, material))
        conn.execute(
            "INSERT INTO mes.operation_run (work_order_id, operation_id, equipment_id, "
            "operator_id, status, planned_quantity, good_quantity, started_at, ended_at) "
            "SELECT wo.id, op.id, %s, p.id, 'completed', 1000, %s, %s, %s "
            "FROM mes.work_order wo JOIN mes.routing_operation op ON op.product_id = "
            "wo.product_id, mes.person p WHERE wo.code = %s AND p.badge = '100'",
            (raw.ids[machine], good, start, end, order))


def test_performance_uses_the_ideal_cycle_time_of_the_run_at_that_moment(raw: Raw) -> None:
    # M2: PART 2 s, OTHER 4 s. A run of PART until 10:00:30, then OTHER: a count in the
    # same minute as the changeover belongs to the run active at its second.
    change = local(DAY, "10:00") + dt.timedelta(seconds=30)
    _run(raw, "M2", "PART", "WO-1", local(DAY, "06:00"), change, good=900)
    _run(raw, "M2", "OTHER", "WO-2", change, local(DAY, "14:00"), good=500)
    raw.states("M2", (local(DAY, "05:00"), RUNNING, None))
    raw.counts("M2", local(DAY, "09:00"), good=90, every=dt.timedelta(seconds=20))
    # 10:00:00 .. 10:00:29 is PART (10 parts), 10:00:30 on is OTHER (20 parts)
    raw.counts("M2", local(DAY, "10:00") + dt.timedelta(seconds=1), good=10,
               every=dt.timedelta(seconds=2))
    raw.counts("M2", change, good=20, every=dt.timedelta(seconds=1))

    raw.derive()

    shift = raw.kpi("M2", "shift", local(DAY, "06:00"))
    apt = 7.5 * 3600
    assert shift["produced_quantity"] == 120
    assert close(shift["performance"], (2.0 * 100 + 4.0 * 20) / apt)
    hour = raw.kpi("M2", "hour", local(DAY, "10:00"))
    assert close(hour["performance"], (2.0 * 10 + 4.0 * 20) / 1800)   # lunch 10:00-10:30
    with raw.connect() as conn:
        reconciled = conn.execute(
            "SELECT machine_good, reported_good, within_tolerance FROM "
            "derived.count_reconciliation ORDER BY started_at").fetchall()
    # Machine counts per run against the operators' reports: 100 vs 900 is flagged.
    assert reconciled == [(100, 900.0, False), (20, 500.0, False)]
