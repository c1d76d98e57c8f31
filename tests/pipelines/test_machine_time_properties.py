"""Property: for any sequence of states, gaps and planned stops, machine time covers each
machine's calendar day exactly once (no hole, no overlap, every second one category)."""

from __future__ import annotations

import datetime as dt

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.calendar import ShiftPattern, hours, local_day, shift_instances
from pipelines.derivation import FAR, UTC_US, Inputs, derive

DAY = dt.date(2026, 10, 25)   # a 25-hour day in Europe/Berlin
ZONE = "Europe/Berlin"
START, END = local_day(DAY, ZONE)
CATEGORIES = {"planned", "running", "setup", "idle", "planned_stop", "unplanned_stop",
              "offline", "unknown"}
SHIFTS = [ShiftPattern(1, 1, "DAY", dt.timedelta(hours=6), dt.timedelta(hours=8),
                       frozenset(range(1, 8))),
          ShiftPattern(2, 1, "NIGHT", dt.timedelta(hours=22), dt.timedelta(hours=8),
                       frozenset(range(1, 8)))]

offsets = st.integers(min_value=-6 * 3600, max_value=31 * 3600)
spans = st.tuples(offsets, st.integers(min_value=1, max_value=6 * 3600))


def _at(seconds: int) -> dt.datetime:
    return START + dt.timedelta(seconds=seconds)


def _inputs(states: list[tuple[int, int, int | None]], gaps: list[tuple[int, int | None]],
            stops: list[tuple[int, int]], now: int) -> Inputs:
    machine = 1
    instances = shift_instances(SHIFTS, ZONE, START, END)
    return Inputs(
        windows=pl.DataFrame({"equipment_id": [machine], "machine": ["M"],
                              "state_model_id": [1], "line_id": [10], "site_id": [20],
                              "window_start": [START], "window_end": [END]},
                             schema_overrides={"equipment_id": pl.Int32,
                                               "state_model_id": pl.Int32,
                                               "line_id": pl.Int32, "site_id": pl.Int32}),
        hours=pl.DataFrame({"equipment_id": machine, "start": hours(START, END)},
                           schema={"equipment_id": pl.Int32, "start": UTC_US}),
        shifts=pl.DataFrame([{"equipment_id": machine, "shift_id": i.shift_id,
                              "start": i.start, "end": i.end} for i in instances],
                            schema={"equipment_id": pl.Int32, "shift_id": pl.Int32,
                                    "start": UTC_US, "end": UTC_US}),
        planned=pl.DataFrame([{"equipment_id": machine, "start": _at(s), "end": _at(s + d),
                               "planned_kind": "planned_stop"} for s, d in stops],
                             schema={"equipment_id": pl.Int32, "start": UTC_US,
                                     "end": UTC_US, "planned_kind": pl.String}),
        states=pl.DataFrame([{"equipment_id": machine, "ts": _at(s), "state": state,
                              "reason_code": reason} for s, state, reason in states],
                            schema={"equipment_id": pl.Int32, "ts": UTC_US,
                                    "state": pl.Int32, "reason_code": pl.Int32}),
        state_categories=pl.DataFrame(
            {"state_model_id": [1] * 5, "state": [0, 1, 2, 3, 5],
             "category": ["offline", "running", "idle", "setup", "unplanned_stop"]},
            schema_overrides={"state_model_id": pl.Int32, "state": pl.Int32}),
        gaps=pl.DataFrame([{"equipment_id": machine, "gap_start": _at(s),
                            "gap_end": FAR if d is None else _at(s + d)} for s, d in gaps],
                          schema={"equipment_id": pl.Int32, "gap_start": UTC_US,
                                  "gap_end": UTC_US}),
        runs=pl.DataFrame(schema={"operation_run_id": pl.Int32, "equipment_id": pl.Int32,
                                  "started_at": UTC_US, "ended_at": UTC_US,
                                  "work_order_id": pl.Int32, "material_id": pl.Int32,
                                  "lot_codes": pl.String}),
        ideal_cycle_times=pl.DataFrame(schema={"equipment_id": pl.Int32,
                                               "material_id": pl.Int32,
                                               "seconds": pl.Float64}),
        fault_reasons=pl.DataFrame({"state_model_id": [1], "reason_code": [7],
                                    "downtime_reason_id": [3]},
                                   schema_overrides={"state_model_id": pl.Int32,
                                                     "reason_code": pl.Int32,
                                                     "downtime_reason_id": pl.Int32}),
        classifications=pl.DataFrame(schema={"equipment_id": pl.Int32,
                                             "started_at": UTC_US,
                                             "downtime_reason_id": pl.Int32}),
        reasons=pl.DataFrame({"downtime_reason_id": [3], "planned": [False]},
                             schema_overrides={"downtime_reason_id": pl.Int32}),
        counts=pl.DataFrame(schema={"equipment_id": pl.Int32, "bucket": UTC_US,
                                    "good": pl.Int64, "reject": pl.Int64}),
        now=_at(now),
    )


@settings(max_examples=60, deadline=None)
@given(
    states=st.lists(st.tuples(offsets, st.sampled_from([0, 1, 2, 3, 5, 9]),
                              st.sampled_from([None, 7, 8])),
                    max_size=40, unique_by=lambda s: s[0]),
    gaps=st.lists(st.tuples(offsets, st.none() | st.integers(min_value=0, max_value=9000)),
                  max_size=4),
    stops=st.lists(spans, max_size=3),
    now=st.integers(min_value=0, max_value=40 * 3600),
)
def test_machine_time_covers_the_day_exactly_once(
        states: list[tuple[int, int, int | None]], gaps: list[tuple[int, int | None]],
        stops: list[tuple[int, int]], now: int) -> None:
    derived = derive(_inputs(states, gaps, stops, now))
    intervals = derived.machine_time.sort("starts_at")

    assert intervals["starts_at"][0] == START
    assert intervals["ends_at"][-1] == END
    assert (intervals["starts_at"][1:] == intervals["ends_at"][:-1]).all()
    assert (intervals["ends_at"] > intervals["starts_at"]).all()
    assert intervals["seconds"].sum() == 25 * 3600
    assert set(intervals["category"].unique()) <= CATEGORIES
    # every interval is inside one local hour and at most one shift
    assert (intervals["starts_at"] >= intervals["hour_start"]).all()
    day = derived.kpis.filter((pl.col("scope") == "machine") & (pl.col("period") == "day"))
    hour_rows = derived.kpis.filter((pl.col("scope") == "machine")
                                    & (pl.col("period") == "hour"))
    assert hour_rows.height == 25
    busy = intervals.filter(~pl.col("category").is_in(["planned", "planned_stop"]))
    assert day["planned_busy_seconds"][0] == busy["seconds"].sum()
    assert abs(float(hour_rows["planned_busy_seconds"].sum())
               - float(busy["seconds"].sum())) < 1e-6
    for ratio in ("availability", "oee"):
        values = derived.kpis[ratio].drop_nulls()
        assert not values.is_nan().any()
