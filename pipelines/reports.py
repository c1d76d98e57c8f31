"""What the analysts' pages read from the derived tables and the hypertables: downtime
Pareto, state timelines, KPI trends and MTBF/MTTR over a range, process signal trends.

Ratios over a range come from summed base quantities through `kpi.compute_kpis`, never from
averaged ratios; SQL sits in `queries`. Nothing here writes.
"""

from __future__ import annotations

import datetime as dt
import json

import polars as pl

from pipelines import queries
from pipelines.kpi import compute_kpis, sum_base

SCOPES = ("machine", "line", "site")


def downtime_pareto(url: str, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
    """Stops (micro-stops left out) per reason in [start, end), longest first, with the
    cumulative share of the unplanned ones."""
    with queries.connect(url) as conn:
        rows = queries.frame(conn, queries.DOWNTIME_PARETO, [start, end])
    unplanned = ~pl.col("planned")
    total = rows.filter(unplanned)["seconds"].sum() or 0.0
    return rows.sort("seconds", descending=True).with_columns(
        (pl.col("seconds") / 60).alias("minutes"),
        pl.when(unplanned & (total > 0))
        .then((pl.col("seconds") * unplanned.cast(pl.Float64)).cum_sum() / total)
        .alias("cumulative_share"))


def state_timeline(url: str, machine: str, start: dt.datetime,
                   end: dt.datetime) -> pl.DataFrame:
    """The machine's derived time in [start, end) as spans of one category and reason."""
    with queries.connect(url) as conn:
        rows = queries.frame(conn, queries.STATE_TIMELINE, [machine, start, end])
    return rows.with_columns(pl.lit(machine).alias("machine"),
                             pl.col("starts_at").clip(lower_bound=start),
                             pl.col("ends_at").clip(upper_bound=end))


def kpi_trend(url: str, start: dt.datetime, end: dt.datetime, *, scope: str = "site",
              period: str = "day") -> pl.DataFrame:
    """The stored KPI rows of every `scope` equipment per `period` in [start, end)."""
    with queries.connect(url) as conn:
        return queries.frame(conn, queries.KPI_BASE, [scope, period, start, end])


def kpis_over(url: str, start: dt.datetime, end: dt.datetime, *,
              scope: str = "machine") -> pl.DataFrame:
    """Each `scope` equipment's KPIs over the whole range: its day rows' base quantities
    added up, then the ratios (MTBF, MTTR, OEE, ...) of `compute_kpis`."""
    days = kpi_trend(url, start, end, scope=scope, period="day")
    if days.is_empty():
        return days
    return compute_kpis(sum_base(days, ["equipment"])).sort("equipment")


def _with_day(rows: pl.DataFrame) -> pl.DataFrame:
    """A `day` column: the local date of each day row. Sites keep their own time zones, so
    their days start at different instants; the middle of a local day falls on its own
    date in UTC for every zone within 11 hours of it."""
    middle = pl.col("period_start") + (pl.col("period_end") - pl.col("period_start")) / 2
    return rows.with_columns(middle.dt.convert_time_zone("UTC").dt.date().alias("day"))


def plant_days(url: str, start: dt.datetime, end: dt.datetime, *,
               scope: str = "site") -> pl.DataFrame:
    """This database's day rows of every `scope` equipment in [start, end), with `day`."""
    return _with_day(kpi_trend(url, start, end, scope=scope, period="day"))


def central_sites(url: str) -> list[str]:
    """The sites whose facts reach this database (a central store or its replica)."""
    with queries.connect(url) as conn:
        return list(queries.frame(conn, queries.CENTRAL_SITES)["site"])


def central_days(url: str, start: dt.datetime, end: dt.datetime, *, scope: str = "site",
                 site: str | None = None) -> pl.DataFrame:
    """The day rows the sites forwarded of every `scope` equipment in [start, end), of
    every site or of `site`, with `site` and `day`: the days of [start, end)'s local dates,
    whatever the site's time zone."""
    # A site's local day may start up to 14 hours either side of the range's.
    pad = dt.timedelta(hours=14)
    with queries.connect(url) as conn:
        rows = queries.frame(conn, queries.CENTRAL_KPI_DAYS,
                             [scope, start - pad, end + pad, site])
    return _with_day(rows).filter(
        pl.col("day").is_between(start.date(), end.date(), closed="left"))


def company_days(site_days: pl.DataFrame) -> pl.DataFrame:
    """The whole company per day: the sites' base quantities of each day added up, then
    the ratios of `compute_kpis` (a big site weighs more than a small one)."""
    if site_days.is_empty():
        return site_days
    return compute_kpis(sum_base(site_days, ["day"])).sort("day")


def signals(url: str) -> pl.DataFrame:
    with queries.connect(url) as conn:
        return queries.frame(conn, queries.SIGNALS)


def bucket_for(start: dt.datetime, end: dt.datetime, points: int = 500) -> str:
    """A `time_bucket` width that draws [start, end) in about `points` points."""
    seconds = max(1, int((end - start).total_seconds() / points))
    return f"{seconds} seconds"


def signal_trend(url: str, codes: list[str], start: dt.datetime, end: dt.datetime,
                 points: int = 500) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The signals' values in [start, end) downsampled in the database to about `points`
    buckets each, and the runs (with their lots) on their machines then."""
    named = json.dumps(codes)
    with queries.connect(url) as conn:
        trend = queries.frame(conn, queries.SIGNAL_TREND,
                              [named, start, end, bucket_for(start, end, points)])
        runs = queries.frame(conn, queries.SIGNAL_RUNS, [named, start, end])
    return trend, runs


def downtime_events(url: str, start: dt.datetime, end: dt.datetime,
                    machine: str | None = None) -> pl.DataFrame:
    """The derived stops overlapping [start, end) (`mes downtime list`)."""
    with queries.connect(url) as conn:
        return queries.frame(conn, queries.DOWNTIME_EVENTS, [machine, start, end])


def downtime_reasons(url: str) -> pl.DataFrame:
    with queries.connect(url) as conn:
        return queries.frame(conn, queries.DOWNTIME_REASONS).sort("code")


def machines(url: str) -> list[str]:
    with queries.connect(url) as conn:
        return list(queries.frame(conn, queries.MACHINES)["machine"])
