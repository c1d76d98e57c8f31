"""Reads one day partition's inputs from the database and writes what was derived.

`read_inputs` turns the plant model and the hypertables into the frames `derivation`
works on (each machine's window is the local day of its calendar); `write_partition`
replaces the partition's rows of every derived table in one transaction.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import polars as pl

from pipelines import queries
from pipelines.calendar import (
    BreakPattern,
    ShiftPattern,
    break_spans,
    hours,
    local_day,
    shift_instances,
)
from pipelines.derivation import FAR, UTC_US, Derived, Inputs
from pipelines.tables import metadata
from pipelines.types import conform

# Classifications of stops that began up to this long before a window still apply to the
# stop carried into it.
CLASSIFICATION_LOOKBACK = dt.timedelta(days=62)


@dataclass(frozen=True)
class DerivationSettings:
    micro_stop_seconds: float = 120.0
    # A machine count within max(parts, ratio x reported) of the operators' figure agrees.
    count_tolerance_parts: float = 1.0
    count_tolerance_ratio: float = 0.01


def plant_windows(conn: queries.Connection, day: dt.date,
                  machines: list[str] | None = None, site: str | None = None
                  ) -> pl.DataFrame:
    """Every machine (or those named, or those of `site`) with its local day as
    [window_start, window_end)."""
    plant = queries.frame(conn, queries.MACHINES)
    if machines is not None:
        plant = plant.filter(pl.col("machine").is_in(machines))
    if site is not None:
        plant = plant.filter(pl.col("site") == site)
    spans = {tz: local_day(day, tz) for tz in plant["timezone"].unique().to_list()}
    return plant.with_columns(
        pl.col("timezone").replace_strict({tz: s for tz, (s, _) in spans.items()},
                                          return_dtype=UTC_US).alias("window_start"),
        pl.col("timezone").replace_strict({tz: e for tz, (_, e) in spans.items()},
                                          return_dtype=UTC_US).alias("window_end"))


def count_grid_minutes(shifts: list[ShiftPattern], breaks: list[BreakPattern],
                       windows: pl.DataFrame) -> int:
    """The coarsest bucket (in minutes, dividing an hour) that every hour, shift and break
    boundary lies on, in every calendar's time zone."""
    minutes = [60]
    minutes += [int(s.start.total_seconds() // 60) for s in shifts]
    minutes += [int(s.duration.total_seconds() // 60) for s in shifts]
    minutes += [int(b.offset.total_seconds() // 60) for b in breaks]
    minutes += [int(b.duration.total_seconds() // 60) for b in breaks]
    for column in ("window_start", "window_end"):
        for row in windows.select("timezone", column).unique().to_dicts():
            offset = row[column].astimezone(ZoneInfo(row["timezone"])).utcoffset()
            minutes.append(int(offset.total_seconds() // 60) if offset else 0)
    return math.gcd(*minutes) or 60


def shift_patterns(conn: queries.Connection) -> list[ShiftPattern]:
    """Every calendar's shifts as patterns (`calendar.shift_instances` places them)."""
    return [ShiftPattern(r["shift_id"], r["calendar_id"], r["code"],
                         dt.timedelta(seconds=r["start_seconds"]),
                         dt.timedelta(seconds=r["duration_seconds"]),
                         frozenset(int(d) for d in r["weekdays"].split(",")))
            for r in queries.frame(conn, queries.SHIFTS).to_dicts()]


def break_patterns(conn: queries.Connection) -> list[BreakPattern]:
    return [BreakPattern(r["shift_id"], dt.timedelta(seconds=r["offset_seconds"]),
                         dt.timedelta(seconds=r["duration_seconds"]), r["downtime_reason_id"])
            for r in queries.frame(conn, queries.BREAKS).to_dicts()]


def _calendar_frames(shifts: list[ShiftPattern], breaks: list[BreakPattern],
                     windows: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    hour_rows: list[dict[str, object]] = []
    shift_rows: list[dict[str, object]] = []
    break_rows: list[dict[str, object]] = []
    calendars = windows.select("calendar_id", "timezone", "window_start", "window_end").unique()
    per_calendar: dict[int, tuple[list[dt.datetime], list[dict[str, object]],
                                  list[dict[str, object]]]] = {}
    for cal in calendars.to_dicts():
        patterns = [s for s in shifts if s.calendar_id == cal["calendar_id"]]
        instances = shift_instances(patterns, cal["timezone"], cal["window_start"],
                                    cal["window_end"])
        per_calendar[cal["calendar_id"]] = (
            hours(cal["window_start"], cal["window_end"]),
            [{"shift_id": i.shift_id, "start": i.start, "end": i.end} for i in instances],
            [{"start": span.start, "end": span.end, "planned_kind": "break"}
             for i in instances for span in break_spans(i, breaks, cal["timezone"])])
    for machine in windows.select("equipment_id", "calendar_id").to_dicts():
        grid, calendar_shifts, spans = per_calendar[machine["calendar_id"]]
        hour_rows += [{"equipment_id": machine["equipment_id"], "start": h} for h in grid]
        shift_rows += [{"equipment_id": machine["equipment_id"], **i} for i in calendar_shifts]
        break_rows += [{"equipment_id": machine["equipment_id"], **b} for b in spans]
    return (
        pl.DataFrame(hour_rows, schema={"equipment_id": pl.Int32, "start": UTC_US}),
        pl.DataFrame(shift_rows, schema={"equipment_id": pl.Int32, "shift_id": pl.Int32,
                                         "start": UTC_US, "end": UTC_US}),
        pl.DataFrame(break_rows, schema={"equipment_id": pl.Int32, "start": UTC_US,
                                         "end": UTC_US, "planned_kind": pl.String}),
    )


CountsReader = Callable[[queries.Connection, dt.datetime, dt.datetime, str, pl.DataFrame],
                        pl.DataFrame]


def _counts_statement(low: dt.datetime, high: dt.datetime, bucket: str,
                      run_edges: pl.DataFrame) -> tuple[str, list[object]]:
    """The statement summing counts in [low, high) per machine and `bucket`, split at run
    edges (the plain form when there are none), with its parameters."""
    if run_edges.is_empty():
        return queries.COUNTS, [low, high, bucket]
    return queries.COUNTS_SPLIT_AT, [low, high, bucket, queries.boundaries_json(run_edges)]


def read_counts(conn: queries.Connection, low: dt.datetime, high: dt.datetime, bucket: str,
                run_edges: pl.DataFrame) -> pl.DataFrame:
    """Counts in [low, high) summed per machine and `bucket`, split at run edges."""
    return queries.frame(conn, *_counts_statement(low, high, bucket, run_edges))


def read_recent_counts(conn: queries.Connection, machines: list[int], low: dt.datetime,
                       high: dt.datetime, bucket: str, run_edges: pl.DataFrame) -> pl.DataFrame:
    """`read_counts` for a short span of the machines named, through their index."""
    named = queries.ids_json(machines)
    if run_edges.is_empty():
        return queries.frame(conn, queries.COUNTS_OF_MACHINES, [low, high, bucket, named])
    return queries.frame(conn, queries.COUNTS_OF_MACHINES_SPLIT_AT,
                         [low, high, bucket, queries.boundaries_json(run_edges), named])


def read_inputs(conn: queries.Connection, windows: pl.DataFrame,
                now: dt.datetime | None = None,
                counts_reader: CountsReader | None = None, *,
                counts_url: str | None = None) -> Inputs:
    """The frames `derivation.derive` works on, for `windows`; `counts_reader` (by default
    `read_counts`) sums the counts. With `counts_url`, the counts are summed on a second
    connection to that database while the rest is read and derived (the sum is the longest
    read, and only the KPIs need it): `Inputs.counts` is then a future."""
    now = now or dt.datetime.now(dt.UTC)
    low = windows["window_start"].min()
    high = windows["window_end"].max()
    assert isinstance(low, dt.datetime) and isinstance(high, dt.datetime)
    shifts, breaks = shift_patterns(conn), break_patterns(conn)
    bucket = f"{count_grid_minutes(shifts, breaks, windows)} minutes"
    runs = queries.frame(conn, queries.RUNS, [low, high]).join(
        windows.select("equipment_id"), on="equipment_id")
    run_edges = pl.concat([runs.select("equipment_id", pl.col(c).alias("at"))
                           for c in ("started_at", "ended_at")]).filter(pl.col("at") < FAR)
    counts: pl.DataFrame | Future[pl.DataFrame]
    if counts_url is not None and counts_reader is None:
        counts = _sum_apart(counts_url, low, high, bucket, run_edges, windows)
    else:
        counts = _in_windows((counts_reader or read_counts)(conn, low, high, bucket,
                                                            run_edges), windows)
    hour_frame, shift_frame, break_frame = _calendar_frames(shifts, breaks, windows)
    machine_calendar = windows.select("equipment_id", "calendar_id")
    stops = queries.frame(conn, queries.PLANNED_STOPS, [low, high])
    calendar_stops = stops.filter(pl.col("calendar_id").is_not_null()).drop("equipment_id").join(
        machine_calendar, on="calendar_id").select("equipment_id", "starts_at", "ends_at")
    machine_stops = stops.filter(pl.col("equipment_id").is_not_null()).select(
        "equipment_id", "starts_at", "ends_at")
    maintenance = queries.frame(conn, queries.MAINTENANCE_WINDOWS, [low, high])
    planned = pl.concat([
        break_frame,
        *(f.select(pl.col("equipment_id").cast(pl.Int32), pl.col("starts_at").alias("start"),
                   pl.col("ends_at").alias("end"), pl.lit(kind).alias("planned_kind"))
          for f, kind in ((calendar_stops, "planned_stop"), (machine_stops, "planned_stop"),
                          (maintenance, "maintenance")))])
    states = queries.frame(conn, queries.STATES, [queries.windows_json(windows), low, high])
    since = min([low, *states["ts"].to_list()]) - CLASSIFICATION_LOOKBACK
    return Inputs(
        windows=windows,
        hours=hour_frame,
        shifts=shift_frame,
        planned=planned,
        states=states.with_columns(pl.col("equipment_id").cast(pl.Int32)),
        state_categories=queries.frame(conn, queries.STATE_CATEGORIES),
        gaps=queries.frame(conn, queries.COLLECTION_GAPS, [low]).with_columns(
            pl.col("equipment_id").cast(pl.Int32)),
        runs=runs,
        ideal_cycle_times=queries.frame(conn, queries.IDEAL_CYCLE_TIMES),
        fault_reasons=queries.frame(conn, queries.FAULT_CODE_REASONS),
        classifications=queries.frame(conn, queries.CLASSIFICATIONS, [since, high]),
        reasons=queries.frame(conn, queries.DOWNTIME_REASONS).select(
            "downtime_reason_id", "planned"),
        counts=counts,
        now=now,
    )


def _in_windows(counts: pl.DataFrame, windows: pl.DataFrame) -> pl.DataFrame:
    """The count buckets inside their machine's own window."""
    return (counts.with_columns(pl.col("equipment_id").cast(pl.Int32))
            .join(windows.select("equipment_id", "window_start", "window_end"),
                  on="equipment_id")
            .filter((pl.col("bucket") >= pl.col("window_start"))
                    & (pl.col("bucket") < pl.col("window_end")))
            .drop("window_start", "window_end"))


COUNT_SCHEMA = {"equipment_id": pl.Int32, "bucket": UTC_US, "good": pl.Int64,
                "reject": pl.Int64}


def _sum_apart(url: str, low: dt.datetime, high: dt.datetime, bucket: str,
               run_edges: pl.DataFrame, windows: pl.DataFrame) -> Future[pl.DataFrame]:
    """The counts summed on a connection of their own, in a thread (the statement of
    `read_counts`)."""
    def whole() -> pl.DataFrame:
        query, parameters = _counts_statement(low, high, bucket, run_edges)
        return _in_windows(queries.small_frame(url, query, parameters, COUNT_SCHEMA),
                           windows)

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="counts")
    summed = pool.submit(whole)
    pool.shutdown(wait=False)
    return summed


def reconciliation(conn: queries.Connection, windows: pl.DataFrame,
                   settings: DerivationSettings) -> tuple[list[int], pl.DataFrame]:
    """Runs that began in the windows: machine counts over the whole run against the
    operators' reports."""
    run_ids = queries.frame(conn, queries.RUNS_STARTED, [queries.windows_json(windows)])
    ids = run_ids["id"].to_list()
    counts = queries.frame(conn, queries.RUN_COUNTS, [queries.ids_json(ids)])

    def within(machine: pl.Expr, reported: pl.Expr) -> pl.Expr:
        allowed = pl.max_horizontal(pl.lit(settings.count_tolerance_parts),
                                    reported * settings.count_tolerance_ratio)
        return (machine - reported).abs() <= allowed

    rows = counts.with_columns(
        (pl.col("machine_good") - pl.col("reported_good")).alias("good_difference"),
        (pl.col("machine_reject") - pl.col("reported_scrap")).alias("scrap_difference"),
        (within(pl.col("machine_good"), pl.col("reported_good"))
         & within(pl.col("machine_reject"), pl.col("reported_scrap"))).alias("within_tolerance"))
    return ids, rows


def write_partition(conn: queries.Connection, windows: pl.DataFrame, derived: Derived,
                    reconciled: tuple[list[int], pl.DataFrame] | None = None) -> None:
    """Replace the windows' rows of every derived table and commit, all in one transaction."""
    tables = metadata.tables
    queries.replace_window(conn, "machine_time", windows,
                           conform(derived.machine_time, tables["derived.machine_time"]))
    queries.replace_events(conn, windows,
                           conform(derived.downtime_events, tables["derived.downtime_event"],
                                   skip=("id",)))
    scope_windows = pl.concat([
        windows.select("equipment_id", "window_start", "window_end"),
        *(windows.select(pl.col(c).alias("equipment_id"), "window_start", "window_end")
          for c in ("line_id", "site_id"))]).unique()
    queries.replace_window(conn, "kpi", scope_windows,
                           conform(derived.kpis, tables["derived.kpi"]))
    if reconciled is not None:
        ids, rows = reconciled
        queries.execute(conn, queries.DELETE_RECONCILIATION, [queries.ids_json(ids)])
        queries.ingest(conn, "count_reconciliation",
                       conform(rows, tables["derived.count_reconciliation"]))
    conn.commit()
