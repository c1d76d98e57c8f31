"""The running shift, live: KPIs, current states and stops derived straight from the
hypertables, for the supervisor's board.

It reads and derives exactly as a day partition does (`reading`, `derivation`, and
`kpi.compute_kpis` for the ratios), in memory, up to now; it writes nothing. The shift's
numbers are therefore those the next derivation of the day stores.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import polars as pl

from pipelines import queries
from pipelines.calendar import shift_instances
from pipelines.derivation import UTC_US, derive
from pipelines.reading import (
    CountsReader,
    DerivationSettings,
    plant_windows,
    read_counts,
    read_inputs,
    read_recent_counts,
    shift_patterns,
)


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
    """Derive the running shift up to `now` (default: this clock's now), on a connection of
    its own, reading everything afresh."""
    with queries.connect(url) as conn:
        return _live(conn, now, settings or DerivationSettings(), read_counts)


class LiveBoard:
    """The running shift for a process that asks every few seconds (the board): one
    connection kept open, and the counts of minutes gone by kept, so that a refresh sums
    only the last few minutes of 1 Hz counts. Counts arriving more than LOOKBACK late are
    picked up by the full read every FULL_READ_EVERY. Safe to share between threads."""

    def __init__(self, url: str, settings: DerivationSettings | None = None) -> None:
        self._url = url
        self._settings = settings or DerivationSettings()
        self._lock = threading.Lock()
        self._stack: ExitStack | None = None
        self._conn: queries.Connection | None = None
        self._counts = _KeptCounts()

    def shift(self, now: dt.datetime | None = None) -> LiveShift:
        with self._lock:
            if self._conn is None:
                self._stack = ExitStack()
                self._conn = self._stack.enter_context(queries.connect(self._url))
            try:
                return _live(self._conn, now, self._settings, self._counts.read)
            except Exception:
                self._close()
                raise
            finally:
                if self._conn is not None:
                    self._conn.rollback()  # hold no snapshot between refreshes

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._stack is not None:
            self._stack.close()
        self._stack, self._conn = None, None
        self._counts = _KeptCounts()


# Counts may reach the database this late (the collectors flush every 50 ms; a spool
# replayed after an outage is later, and waits for the next full read).
LOOKBACK = dt.timedelta(minutes=2)
FULL_READ_EVERY = 300.0  # seconds
MINUTE = dt.timedelta(minutes=1)


def _floor(moment: dt.datetime, step: dt.timedelta) -> dt.datetime:
    """`moment` down to a multiple of `step` since the epoch (as time_bucket places buckets
    of whole minutes dividing an hour)."""
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return epoch + (moment - epoch) // step * step


@dataclass
class _KeptCounts:
    """Counts summed before `cut`, kept between refreshes of the same windows and runs."""

    machines: list[int] = field(default_factory=list)
    key: tuple[object, ...] | None = None
    rows: pl.DataFrame | None = None
    cut: dt.datetime | None = None
    read_at: float = 0.0

    def read(self, conn: queries.Connection, low: dt.datetime, high: dt.datetime,
             bucket: str, run_edges: pl.DataFrame) -> pl.DataFrame:
        key = (low, bucket, tuple(sorted(run_edges.rows())))
        if (key != self.key or self.rows is None or self.cut is None
                or time.monotonic() - self.read_at > FULL_READ_EVERY):
            grid = dt.timedelta(minutes=int(bucket.split()[0]))
            self.cut = max(low, _floor(high, grid))
            # Whole buckets of the grid up to the last one begun; minutes from there on.
            self.rows = read_counts(conn, low, self.cut, bucket, run_edges)
            self.machines = queries.frame(conn, queries.MACHINES)["equipment_id"].to_list()
            self.key, self.read_at = key, time.monotonic()
        recent = read_recent_counts(conn, self.machines, self.cut, high, "1 minute",
                                    run_edges)
        counts = pl.concat([self.rows, recent], how="vertical_relaxed")
        cut = max(self.cut, _floor(high - LOOKBACK, MINUTE))
        self.rows = pl.concat([self.rows, recent.filter(pl.col("bucket") < cut)],
                              how="vertical_relaxed")
        self.cut = cut
        return counts


def _live(conn: queries.Connection, now: dt.datetime | None, settings: DerivationSettings,
          counts_reader: CountsReader) -> LiveShift:
    now = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    plant = queries.frame(conn, queries.MACHINES)
    if plant.is_empty():
        return LiveShift(now, pl.DataFrame(), pl.DataFrame(), pl.DataFrame())
    # The plant's day: the local date of now in its (first) calendar's time zone.
    day = now.astimezone(ZoneInfo(plant["timezone"][0])).date()
    windows = _running_shift_windows(conn, plant_windows(conn, day), now)
    if windows.is_empty():
        return LiveShift(now, pl.DataFrame(), pl.DataFrame(), pl.DataFrame())
    derived = derive(read_inputs(conn, windows, now, counts_reader),
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
