"""The running shift, live: KPIs, current states and stops derived straight from the
hypertables, for the supervisor's board.

It reads and derives exactly as a day partition does (`reading`, `derivation`, and
`kpi.compute_kpis` for the ratios), in memory, up to now; it writes nothing. The shift's
numbers are therefore those the next derivation of the day stores.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import polars as pl

from pipelines import queries
from pipelines.calendar import shift_instances
from pipelines.derivation import UTC_US, derive
from pipelines.reading import DerivationSettings, plant_windows, read_inputs, shift_patterns


@dataclass(frozen=True)
class LiveShift:
    """The shift running at `now` on each machine, as far as it has gone.

    - `kpis`: one row per machine and per line (`scope`) with the base quantities and
      ratios of `compute_kpis`, for the running shift from its start (or midnight) to now;
    - `machines`: each machine's category and state now and since when;
    - `stops`: the shift's stops (unplanned first by length) with their reasons.
    """

    now: dt.datetime
    kpis: pl.DataFrame
    machines: pl.DataFrame
    stops: pl.DataFrame


def live_shift(url: str, now: dt.datetime | None = None, *,
               settings: DerivationSettings | None = None) -> LiveShift:
    """Derive today up to `now` (default: the database clock's now) and keep the running
    shift."""
    settings = settings or DerivationSettings()
    now = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    with queries.connect(url) as conn:
        plant = queries.frame(conn, queries.MACHINES)
        if plant.is_empty():
            return LiveShift(now, pl.DataFrame(), pl.DataFrame(), pl.DataFrame())
        # The plant's day: the local date of now in its (first) calendar's time zone.
        day = now.astimezone(ZoneInfo(plant["timezone"][0])).date()
        windows = _running_shift_windows(conn, plant_windows(conn, day), now)
        if windows.is_empty():
            return LiveShift(now, pl.DataFrame(), pl.DataFrame(), pl.DataFrame())
        derived = derive(read_inputs(conn, windows, now),
                         micro_stop_seconds=settings.micro_stop_seconds)
        reasons = queries.frame(conn, queries.DOWNTIME_REASONS).select(
            "downtime_reason_id", pl.col("code").alias("reason"))
    at = pl.lit(now, dtype=UTC_US)
    names = pl.concat([
        plant.select("equipment_id", pl.col("machine").alias("equipment"),
                     pl.lit("machine").alias("scope"), "line"),
        plant.select(pl.col("line_id").alias("equipment_id"), pl.col("line").alias("equipment"),
                     pl.lit("line").alias("scope"), "line").unique(maintain_order=True),
    ])
    kpis = (derived.kpis
            .filter((pl.col("period") == "shift") & pl.col("scope").is_in(["machine", "line"])
                    & (pl.col("period_start") <= at) & (at <= pl.col("period_end")))
            .join(names, on=["scope", "equipment_id"])
            .sort("line", pl.col("scope") != "line", "equipment"))
    segments = derived.machine_time.filter(pl.col("starts_at") <= at)
    machines = (plant.select("equipment_id", "machine", "line")
                .join(segments.sort("starts_at").group_by("equipment_id").agg(
                    pl.col("category").last(), pl.col("state").last(),
                    pl.col("event_started_at").last(), pl.col("starts_at").last(),
                    pl.col("downtime_reason_id").last()),
                      on="equipment_id", how="left")
                .join(reasons, on="downtime_reason_id", how="left")
                .with_columns(pl.coalesce("event_started_at", "starts_at").alias("since"))
                .with_columns(((at - pl.col("since")).dt.total_seconds()).alias("for_seconds"))
                .select("equipment_id", "machine", "line", "category", "state", "reason",
                        "since", "for_seconds"))
    shift_start = kpis.filter(pl.col("scope") == "machine").select(
        "equipment_id", pl.col("period_start").alias("shift_start"))
    events = derived.downtime_events
    stops = (events.join(shift_start, on="equipment_id")
             .filter(pl.col("started_at") >= pl.col("shift_start"))
             .join(reasons, on="downtime_reason_id", how="left")
             .join(plant.select("equipment_id", "machine"), on="equipment_id")
             .with_columns(pl.col("reason").fill_null("unclassified"))
             .select("machine", "started_at", "ended_at", "duration_seconds", "category",
                     "reason", "reason_source", "planned", "micro_stop")
             .sort("planned", pl.col("duration_seconds"), descending=[False, True])
             if not events.is_empty() else pl.DataFrame())
    return LiveShift(now, kpis, machines, stops)


def _running_shift_windows(conn: queries.Connection, days: pl.DataFrame,
                           now: dt.datetime) -> pl.DataFrame:
    """Each machine's window narrowed to its running shift so far: from the shift's start
    (or local midnight, where day partitions split a shift) to now, not its planned rest
    as unknown time. Machines without a running shift are left out."""
    patterns = shift_patterns(conn)
    starts: dict[int, dt.datetime] = {}
    for calendar in days.select("calendar_id", "timezone", "window_start").unique().to_dicts():
        running = [i for i in shift_instances(
            [p for p in patterns if p.calendar_id == calendar["calendar_id"]],
            calendar["timezone"], now, now + dt.timedelta(microseconds=1))
            if i.start <= now < i.end]
        if running:
            starts[calendar["calendar_id"]] = max(running[0].start, calendar["window_start"])
    return (days.filter(pl.col("calendar_id").is_in(list(starts)))
            .with_columns(pl.col("calendar_id").replace_strict(starts, return_dtype=UTC_US)
                          .alias("window_start"),
                          pl.min_horizontal("window_end", pl.lit(now, dtype=UTC_US))
                          .alias("window_end")))


def top_reasons(stops: pl.DataFrame, limit: int = 5) -> pl.DataFrame:
    """The unplanned stops of `LiveShift.stops` added up per reason, longest first."""
    if stops.is_empty():
        return pl.DataFrame({"reason": [], "stops": [], "minutes": []},
                            schema={"reason": pl.String, "stops": pl.UInt32,
                                    "minutes": pl.Float64})
    return (stops.filter(~pl.col("planned"))
            .group_by("reason").agg(pl.len().alias("stops"),
                                    (pl.col("duration_seconds").sum() / 60).alias("minutes"))
            .sort("minutes", descending=True).head(limit))
