"""Machine time, downtime events and KPI base quantities from one window of raw data.

Pure Polars over the frames in `Inputs` (read by `pipelines.reading`); no database here,
so tests can feed hand-made frames. Every second of each machine's window lands in exactly
one machine-time interval, split at every boundary that matters: state changes, collection
gaps, shifts, breaks, planned stops, maintenance windows, runs and local hours.
"""

from __future__ import annotations

import datetime as dt
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from pipelines.kpi import compute_kpis, sum_base

UTC_US = pl.Datetime("us", "UTC")
# Stands for "no end yet" (open gaps, the last state, running runs): far beyond any window.
FAR = dt.datetime(9999, 12, 31, tzinfo=dt.UTC)
NOT_BUSY = ("planned", "planned_stop")
DOWNTIME = ("setup", "idle", "planned_stop", "unplanned_stop", "offline")
# Which calendar reason names planned time when several overlap.
PLANNED_PRECEDENCE = {"maintenance": 0, "planned_stop": 1, "break": 2}


def _empty(schema: dict[str, Any]) -> pl.DataFrame:
    return pl.DataFrame(schema=schema)


@dataclass(frozen=True)
class Inputs:
    """What one derivation reads. Times are UTC; each frame's columns are listed."""

    # equipment_id, machine, state_model_id, line_id, site_id, window_start, window_end
    windows: pl.DataFrame
    # equipment_id, start (hour starts in the window)
    hours: pl.DataFrame
    # equipment_id, shift_id, start, end (whole shift instances overlapping the window)
    shifts: pl.DataFrame
    # equipment_id, start, end, planned_kind (break, planned_stop, maintenance); may overlap
    planned: pl.DataFrame
    # equipment_id, ts, state, reason_code (with the change before and after the window)
    states: pl.DataFrame
    # state_model_id, state, category
    state_categories: pl.DataFrame
    # equipment_id, gap_start, gap_end (FAR while open)
    gaps: pl.DataFrame
    # operation_run_id, equipment_id, started_at, ended_at (FAR), work_order_id,
    # material_id, lot_codes
    runs: pl.DataFrame
    # equipment_id, material_id, seconds
    ideal_cycle_times: pl.DataFrame
    # state_model_id, reason_code, downtime_reason_id
    fault_reasons: pl.DataFrame
    # equipment_id, started_at, downtime_reason_id
    classifications: pl.DataFrame
    # downtime_reason_id, planned
    reasons: pl.DataFrame
    # equipment_id, bucket, good, reject (count sums; a bucket never spans a boundary),
    # or the future of them while they are still being summed
    counts: pl.DataFrame | Future[pl.DataFrame]
    # data after this instant has not arrived yet: unknown
    now: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))


@dataclass(frozen=True)
class Derived:
    machine_time: pl.DataFrame
    downtime_events: pl.DataFrame
    kpis: pl.DataFrame


def merged_gaps(gaps: pl.DataFrame) -> pl.DataFrame:
    """Overlapping gaps (several sources of one machine) merged; numbered per machine."""
    if gaps.is_empty():
        return _empty({"equipment_id": pl.Int32, "gap_start": UTC_US, "gap_end": UTC_US,
                       "gap_no": pl.UInt32})
    ordered = gaps.sort("equipment_id", "gap_start")
    reach = pl.col("gap_end").cum_max().shift(1).over("equipment_id")
    return (ordered
            .with_columns((reach.is_null() | (pl.col("gap_start") > reach)).alias("new"))
            .with_columns(pl.col("new").cum_sum().over("equipment_id").alias("gap_no"))
            .group_by("equipment_id", "gap_no")
            .agg(pl.col("gap_start").min(), pl.col("gap_end").max())
            .with_columns(pl.col("gap_no").cast(pl.UInt32))
            .sort("gap_start")
            .select("equipment_id", "gap_start", "gap_end", "gap_no"))


def state_islands(inputs: Inputs, gaps: pl.DataFrame,
                  micro_stop_seconds: float) -> pl.DataFrame:
    """Each state row as an interval [ts, next change), with its island (the stop or run it
    belongs to: equal state and fault code, not interrupted by a collection gap), the
    island's effective category and downtime reason."""
    models = inputs.windows.select("equipment_id", "state_model_id")
    rows = (inputs.states.unique(["equipment_id", "ts"]).sort("ts")
            .join_asof(gaps.select("equipment_id", "gap_start", "gap_no"), left_on="ts",
                       right_on="gap_start", by="equipment_id", strategy="backward",
                       check_sortedness=False)
            .with_columns(pl.col("gap_no").fill_null(0))
            .sort("equipment_id", "ts")
            .with_columns(
                pl.struct("state", "reason_code", "gap_no").rle_id().over("equipment_id")
                .alias("island"),
                pl.col("ts").shift(-1).over("equipment_id").fill_null(FAR).alias("end"))
            .with_columns(pl.col("ts").first().over("equipment_id", "island")
                          .alias("event_started_at")))
    islands = (rows.group_by("equipment_id", "island", maintain_order=True)
               .agg(pl.col("ts").first().alias("started_at"), pl.col("state").first(),
                    pl.col("reason_code").first())
               .with_columns(pl.col("started_at").shift(-1).over("equipment_id")
                             .alias("next_start"))
               .sort("started_at")
               .join_asof(gaps.select("equipment_id", pl.col("gap_start").alias("next_gap")),
                          left_on="started_at", right_on="next_gap", by="equipment_id",
                          strategy="forward", allow_exact_matches=False,
                          check_sortedness=False)
               .with_columns(pl.min_horizontal("next_start", "next_gap").alias("ended_at"))
               .join(models, on="equipment_id", how="left")
               .join(inputs.state_categories, on=["state_model_id", "state"], how="left")
               .with_columns(pl.col("category").fill_null("unknown").alias("state_category")))
    classified = inputs.classifications.rename({"downtime_reason_id": "operator_reason"})
    faults = inputs.fault_reasons.rename({"downtime_reason_id": "fault_reason"})
    islands = (islands
               .join(classified, on=["equipment_id", "started_at"], how="left")
               .join(faults, on=["state_model_id", "reason_code"], how="left")
               .with_columns(
                   pl.when(pl.col("state_category").is_in(DOWNTIME))
                   .then(pl.coalesce("operator_reason", "fault_reason"))
                   .alias("downtime_reason_id"),
                   pl.when(~pl.col("state_category").is_in(DOWNTIME)).then(None)
                   .when(pl.col("operator_reason").is_not_null()).then(pl.lit("operator"))
                   .when(pl.col("fault_reason").is_not_null()).then(pl.lit("fault_code"))
                   .otherwise(pl.lit("unclassified")).alias("reason_source"))
               .join(inputs.reasons.select("downtime_reason_id",
                                           pl.col("planned").alias("reason_planned")),
                     on="downtime_reason_id", how="left")
               .with_columns(
                   pl.when(~pl.col("state_category").is_in(DOWNTIME))
                   .then(pl.col("state_category"))
                   .when(pl.col("reason_planned")).then(pl.lit("planned_stop"))
                   .when(pl.col("reason_planned").not_() & (pl.col("state_category")
                                                            == "planned_stop"))
                   .then(pl.lit("unplanned_stop"))
                   .otherwise(pl.col("state_category")).alias("effective_category")))
    as_of = pl.lit(inputs.now, dtype=UTC_US)
    until = pl.when(pl.col("ended_at").is_not_null()).then(pl.col("ended_at")).otherwise(as_of)
    islands = islands.with_columns(
        ((until - pl.col("started_at")).dt.total_microseconds().clip(lower_bound=0) / 1e6)
        .alias("duration_seconds"),
    ).with_columns(
        (pl.col("ended_at").is_not_null() & (pl.col("duration_seconds") < micro_stop_seconds)
         & (pl.col("effective_category") != "planned_stop")).alias("micro_stop"))
    return rows.join(
        islands.select("equipment_id", "island", "ended_at", "duration_seconds",
                       "effective_category", "downtime_reason_id", "reason_source",
                       "micro_stop"),
        on=["equipment_id", "island"], how="left")


def _asof(left: pl.DataFrame, right: pl.DataFrame, on: str, end: str | None,
          columns: list[str]) -> pl.DataFrame:
    """`columns` of the `right` interval [on, end) that contains each left `starts_at`."""
    picked = right.select("equipment_id", pl.col(on).alias("_at"),
                          *( [pl.col(end).alias("_end")] if end else []), *columns)
    joined = left.join_asof(picked.sort("_at"), left_on="starts_at", right_on="_at",
                            by="equipment_id", strategy="backward", check_sortedness=False)
    if end is not None:
        outside = pl.col("_end").is_null() | (pl.col("starts_at") >= pl.col("_end"))
        joined = joined.with_columns(
            pl.when(outside).then(None).otherwise(pl.col(c)).alias(c) for c in columns)
    return joined.drop("_at", *(["_end"] if end else []))


def machine_time(inputs: Inputs, rows: pl.DataFrame, gaps: pl.DataFrame) -> pl.DataFrame:
    windows = inputs.windows.select("equipment_id", "window_start", "window_end")
    now = pl.lit(inputs.now, dtype=UTC_US)

    def points(frame: pl.DataFrame, *columns: str) -> list[pl.DataFrame]:
        return [frame.select("equipment_id", pl.col(c).cast(UTC_US).alias("at"))
                for c in columns]

    boundaries = pl.concat([
        *points(windows, "window_start", "window_end"),
        *points(inputs.hours, "start"),
        *points(inputs.shifts, "start", "end"),
        *points(inputs.planned, "start", "end"),
        *points(rows, "ts"),
        *points(gaps, "gap_start", "gap_end"),
        *points(inputs.runs, "started_at", "ended_at"),
        windows.select("equipment_id", now.alias("at")),
    ])
    segments = (boundaries
                .join(windows, on="equipment_id")
                .filter(pl.col("at").is_between(pl.col("window_start"), pl.col("window_end")))
                .unique(["equipment_id", "at"])
                .sort("equipment_id", "at")
                .with_columns(pl.col("at").shift(-1).over("equipment_id").alias("ends_at"))
                .filter(pl.col("ends_at").is_not_null())
                .rename({"at": "starts_at"})
                .drop("window_start", "window_end")
                .sort("starts_at"))
    segments = segments.join_asof(
        inputs.hours.select("equipment_id", pl.col("start").alias("hour_start")).sort(
            "hour_start"), left_on="starts_at", right_on="hour_start", by="equipment_id",
            check_sortedness=False)
    segments = _asof(segments, inputs.shifts.with_columns(
        pl.col("start").alias("shift_started_at"), pl.col("end").alias("shift_ended_at")),
        "start", "end", ["shift_id", "shift_started_at", "shift_ended_at"])
    segments = _asof(segments, rows, "ts", "end",
                     ["state", "reason_code", "event_started_at", "effective_category",
                      "downtime_reason_id", "micro_stop"])
    segments = _asof(segments, gaps.with_columns(pl.lit(True).alias("in_gap")),
                     "gap_start", "gap_end", ["in_gap"])
    segments = _asof(segments, inputs.runs, "started_at", "ended_at",
                     ["operation_run_id", "material_id"])
    planned = (segments.select("equipment_id", "starts_at")
               .join(inputs.planned, on="equipment_id")
               .filter((pl.col("start") <= pl.col("starts_at"))
                       & (pl.col("starts_at") < pl.col("end")))
               .with_columns(pl.col("planned_kind").replace_strict(PLANNED_PRECEDENCE,
                                                                   return_dtype=pl.Int8)
                             .alias("rank"))
               .sort("rank")
               .group_by("equipment_id", "starts_at")
               .agg(pl.col("planned_kind").first()))
    segments = segments.join(planned, on=["equipment_id", "starts_at"], how="left")
    by_state = pl.col("effective_category")
    category = (pl.when(pl.col("shift_id").is_null() | pl.col("planned_kind").is_not_null())
                .then(pl.lit("planned"))
                .when(pl.col("in_gap").fill_null(False) | by_state.is_null()
                      | (pl.col("starts_at") >= now))
                .then(pl.lit("unknown"))
                .otherwise(by_state))
    from_state = ~pl.col("category").is_in(["planned", "unknown"])
    return (segments
            .with_columns(category.alias("category"),
                          pl.when(pl.col("shift_id").is_null()).then(pl.lit("no_shift"))
                          .otherwise(pl.col("planned_kind")).alias("planned_kind"))
            .with_columns(
                pl.when(pl.col("category") == "planned").then(pl.col("planned_kind"))
                .alias("planned_kind"),
                *(pl.when(from_state).then(pl.col(c)).alias(c)
                  for c in ("state", "reason_code", "downtime_reason_id", "event_started_at",
                            "micro_stop")),
                ((pl.col("ends_at") - pl.col("starts_at")).dt.total_microseconds() / 1e6)
                .alias("seconds"))
            .sort("equipment_id", "starts_at"))


def downtime_events(inputs: Inputs, rows: pl.DataFrame) -> pl.DataFrame:
    """Stops that begin in each machine's window, with their reason and the run at the time."""
    windows = inputs.windows.select("equipment_id", "window_start", "window_end")
    runs = inputs.runs.select("equipment_id", pl.col("started_at").alias("run_start"),
                              pl.col("ended_at").alias("run_end"), "operation_run_id",
                              "work_order_id", "lot_codes").sort("run_start")
    events = (rows.filter(pl.col("ts") == pl.col("event_started_at"))
              .filter(pl.col("effective_category").is_in(DOWNTIME))
              .join(windows, on="equipment_id")
              .filter((pl.col("ts") >= pl.col("window_start"))
                      & (pl.col("ts") < pl.col("window_end")))
              .sort("ts")
              .join_asof(runs, left_on="ts", right_on="run_start", by="equipment_id",
                         check_sortedness=False)
              .with_columns(
                  *(pl.when(pl.col("ts") < pl.col("run_end")).then(pl.col(c)).alias(c)
                    for c in ("operation_run_id", "work_order_id", "lot_codes"))))
    return events.select(
        "equipment_id", pl.col("ts").alias("started_at"),
        pl.when(pl.col("ended_at") < FAR).then(pl.col("ended_at")).alias("ended_at"),
        "duration_seconds", "state", pl.col("effective_category").alias("category"),
        "reason_code", "downtime_reason_id", "reason_source",
        (pl.col("effective_category") == "planned_stop").alias("planned"), "micro_stop",
        "operation_run_id", "work_order_id", "lot_codes").sort("equipment_id", "started_at")


def _count_buckets(inputs: Inputs, segments: pl.DataFrame) -> pl.DataFrame:
    """Counts placed in the machine-time interval of their bucket, with the ideal seconds
    of the material of the run active then (else the machine's only ideal cycle time)."""
    only = (inputs.ideal_cycle_times.group_by("equipment_id")
            .agg(pl.len().alias("n"), pl.col("seconds").first().alias("only_seconds"))
            .filter(pl.col("n") == 1).drop("n"))
    counts = inputs.counts.result() if isinstance(inputs.counts, Future) else inputs.counts
    placed = (counts.sort("bucket")
              .join_asof(segments.select("equipment_id", "starts_at", "hour_start",
                                         "shift_id", "shift_started_at", "shift_ended_at",
                                         "operation_run_id", "material_id").sort("starts_at"),
                         left_on="bucket", right_on="starts_at", by="equipment_id",
                         check_sortedness=False)
              .join(inputs.ideal_cycle_times, on=["equipment_id", "material_id"], how="left")
              .join(only, on="equipment_id", how="left")
              .with_columns((pl.col("good") + pl.col("reject")).alias("produced"))
              .with_columns(
                  pl.when(pl.col("operation_run_id").is_not_null()).then(pl.col("seconds"))
                  .otherwise(pl.col("only_seconds")).alias("ideal_cycle_seconds"))
              .with_columns((pl.col("ideal_cycle_seconds") * pl.col("produced"))
                            .alias("ideal_seconds"),
                            (pl.col("ideal_cycle_seconds").is_null() & (pl.col("produced") > 0))
                            .alias("missing_ideal")))
    return placed


def _base(segments: pl.DataFrame, counts: pl.DataFrame, failures: pl.DataFrame,
          keys: list[str]) -> pl.DataFrame:
    seconds = pl.col("seconds")
    category = pl.col("category")
    times = segments.group_by(keys).agg(
        seconds.filter(~category.is_in(NOT_BUSY)).sum().alias("planned_busy_seconds"),
        seconds.filter(category == "running").sum().alias("actual_production_seconds"),
        seconds.filter(category == "setup").sum().alias("setup_seconds"),
        seconds.filter(category == "unknown").sum().alias("unknown_seconds"),
        seconds.filter((category == "unplanned_stop") & ~pl.col("micro_stop").fill_null(False))
        .sum().alias("failure_seconds"),
    )
    made = counts.group_by(keys).agg(
        pl.col("produced").sum().alias("produced_quantity"),
        pl.col("good").sum().alias("good_quantity"),
        pl.col("reject").sum().alias("scrap_quantity"),
        pl.when(pl.col("missing_ideal").any()).then(None)
        .otherwise(pl.col("ideal_seconds").sum()).alias("ideal_production_seconds"),
        pl.col("missing_ideal").any().alias("missing_ideal_cycle_time"),
    )
    failed = failures.group_by(keys).agg(pl.len().alias("failure_count"))
    return (times.join(made, on=keys, how="left", nulls_equal=True)
            .join(failed, on=keys, how="left", nulls_equal=True)
            .with_columns(
                *(pl.col(c).fill_null(0).cast(pl.Int64) for c in
                  ("produced_quantity", "good_quantity", "scrap_quantity")),
                pl.col("failure_count").fill_null(0).cast(pl.Int32),
                pl.col("missing_ideal_cycle_time").fill_null(False),
                pl.when(pl.col("produced_quantity").fill_null(0) == 0)
                .then(pl.col("ideal_production_seconds").fill_null(0.0))
                .otherwise(pl.col("ideal_production_seconds"))
                .alias("ideal_production_seconds")))


def kpi_rows(inputs: Inputs, segments: pl.DataFrame, rows: pl.DataFrame) -> pl.DataFrame:
    """KPI rows per machine, line and site x hour, shift (part within the window) and day."""
    windows = inputs.windows
    counts = _count_buckets(inputs, segments)
    failures = (rows.filter((pl.col("ts") == pl.col("event_started_at"))
                            & (pl.col("effective_category") == "unplanned_stop")
                            & ~pl.col("micro_stop").fill_null(False))
                .select("equipment_id", pl.col("ts").alias("bucket")).sort("bucket")
                .join(windows.select("equipment_id", "window_start", "window_end"),
                      on="equipment_id")
                .filter((pl.col("bucket") >= pl.col("window_start"))
                        & (pl.col("bucket") < pl.col("window_end")))
                .drop("window_start", "window_end").sort("bucket")
                .join_asof(segments.select("equipment_id", "starts_at", "hour_start",
                                           "shift_id", "shift_started_at", "shift_ended_at")
                           .sort("starts_at"),
                           left_on="bucket", right_on="starts_at", by="equipment_id",
                         check_sortedness=False))
    bounds = windows.select("equipment_id", "window_start", "window_end")
    hour = (_base(segments, counts, failures, ["equipment_id", "hour_start"])
            .join(bounds, on="equipment_id")
            .with_columns(pl.lit("hour").alias("period"),
                          pl.col("hour_start").alias("period_start"),
                          pl.min_horizontal(pl.col("hour_start") + pl.duration(hours=1),
                                            pl.col("window_end")).alias("period_end"),
                          pl.lit(None, dtype=pl.Int32).alias("shift_id"),
                          pl.lit(None, dtype=UTC_US).alias("shift_started_at")))
    shift_keys = ["equipment_id", "shift_id", "shift_started_at", "shift_ended_at"]
    shift = (_base(segments.filter(pl.col("shift_id").is_not_null()), counts, failures,
                   shift_keys)
             .join(bounds, on="equipment_id")
             .with_columns(pl.lit("shift").alias("period"),
                           pl.max_horizontal("shift_started_at", "window_start")
                           .alias("period_start"),
                           pl.min_horizontal("shift_ended_at", "window_end").alias("period_end")))
    day = (_base(segments, counts, failures, ["equipment_id"])
           .join(bounds, on="equipment_id")
           .with_columns(pl.lit("day").alias("period"),
                         pl.col("window_start").alias("period_start"),
                         pl.col("window_end").alias("period_end"),
                         pl.lit(None, dtype=pl.Int32).alias("shift_id"),
                         pl.lit(None, dtype=UTC_US).alias("shift_started_at")))
    columns = ["equipment_id", "period", "period_start", "period_end", "shift_id",
               "shift_started_at", "planned_busy_seconds", "actual_production_seconds",
               "setup_seconds", "unknown_seconds", "produced_quantity", "good_quantity",
               "scrap_quantity", "ideal_production_seconds", "missing_ideal_cycle_time",
               "failure_count", "failure_seconds"]
    machines = pl.concat([
        frame.with_columns(pl.col("shift_id").cast(pl.Int32)).select(columns)
        for frame in (hour, shift, day)])
    scopes = [machines.with_columns(pl.lit("machine").alias("scope"))]
    keys = ["period", "period_start", "period_end", "shift_id", "shift_started_at"]
    for scope, column in (("line", "line_id"), ("site", "site_id")):
        rolled = (machines.join(windows.select("equipment_id", column), on="equipment_id")
                  .drop("equipment_id").rename({column: "equipment_id"}))
        scopes.append(sum_base(rolled, ["equipment_id", *keys])
                      .with_columns(pl.lit(scope).alias("scope")))
    return compute_kpis(pl.concat([s.select("scope", *columns) for s in scopes],
                                  how="vertical_relaxed"))


def derive(inputs: Inputs, *, micro_stop_seconds: float = 120.0) -> Derived:
    gaps = merged_gaps(inputs.gaps)
    rows = state_islands(inputs, gaps, micro_stop_seconds)
    segments = machine_time(inputs, rows, gaps)
    return Derived(machine_time=segments, downtime_events=downtime_events(inputs, rows),
                   kpis=kpi_rows(inputs, segments, rows))
