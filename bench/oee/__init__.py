"""`mes bench oee`: derive machine time, downtime events and KPIs for 100 machines x 1 day
(one state change per machine-minute, 1 Hz counts: 8.6 M rows) in a scratch database, and
time it beside the same KPIs computed by plain SQL in the same run; both must agree.

With `--days N` the history holds N days and every day partition is derived in turn
(the backfill time per day). Everything is dropped at the end.
"""

from __future__ import annotations

import datetime as dt
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import psycopg

from bench.scratch import running_local_cluster, scratch_database
from mes.db import session_factory
from pipelines import queries
from pipelines.derivation import UTC_US, derive
from pipelines.derive import derive_day
from pipelines.reading import plant_windows, read_inputs, write_partition
from transactional.audit import acting
from transactional.errors import MesError
from transactional.permissions import ADMINISTRATION
from transactional.plant import load_plant
from transactional.plant_file import read_plant_file

FIRST_DAY = dt.date(2026, 11, 2)
IDEAL_CYCLE_SECONDS = 0.5


class OeeBenchError(MesError):
    """The benchmark cannot run (no local cluster) or the two computations disagree."""


def bench_plant(machines: int) -> str:
    lines = max(1, machines // 10)
    out = ['[enterprise]\ncode = "B"\nname = "Bench"\n',
           '[[shift_calendars]]\ncode = "C"\nname = "Around the clock"\ntimezone = "UTC"\n',
           '[[shift_calendars.shifts]]\ncode = "ALL"\nname = "All day"\nstart = "00:00"\n'
           'end = "00:00"\nweekdays = [1, 2, 3, 4, 5, 6, 7]\n',
           '[[downtime_reasons]]\ncode = "FAULT"\nname = "Fault"\nplanned = false\n',
           '[[state_models]]\ncode = "STD"\nname = "Standard"\nstates = [\n'
           '  { code = 1, name = "Running", category = "running" },\n'
           '  { code = 2, name = "Idle", category = "idle" },\n'
           '  { code = 3, name = "Setup", category = "setup" },\n'
           '  { code = 5, name = "Fault", category = "unplanned_stop" },\n]\n'
           'fault_codes = [{ codes = [1, 2, 3, 4, 5], reason = "FAULT" }]\n',
           '[[materials]]\ncode = "P"\nname = "Part"\nkind = "product"\nunit = "pcs"\n',
           '[[sites]]\ncode = "S"\nname = "Site"\ncalendar = "C"\n',
           '[[areas]]\ncode = "A"\nname = "Area"\nsite = "S"\n']
    out += [f'[[lines]]\ncode = "L{i}"\nname = "Line {i}"\narea = "A"\ntype = "T"\n'
            for i in range(lines)]
    out += [f'[[machines]]\ncode = "M{i:03d}"\nname = "Machine {i}"\nline = "L{i % lines}"\n'
            f'state_model = "STD"\nideal_cycle_times = {{ "P" = {IDEAL_CYCLE_SECONDS} }}\n'
            for i in range(machines)]
    return "\n".join(out)


# One state change a machine-minute (the first of each day exactly at midnight), 70 %
# running; one count row a second, every 50th part a reject. Pseudo-random but fixed.
# (psycopg placeholders: %% is the modulo operator.)
STATES = """
INSERT INTO ts.equipment_state (ts, equipment_id, state, reason_code)
SELECT %(start)s::timestamptz + make_interval(secs => m * 60 + CASE WHEN m %% 1440 = 0 THEN 0
                                                         ELSE (m * 31 + e.id * 17) %% 50 END),
       e.id,
       (ARRAY[1, 1, 1, 1, 1, 1, 1, 2, 3, 5])[1 + (m * 7 + e.id * 13) %% 10],
       CASE WHEN (m * 7 + e.id * 13) %% 10 = 9 THEN 1 + (m + e.id) %% 5 END
FROM mes.equipment e, generate_series(0, %(days)s * 1440 - 1) m
WHERE e.level = 'work_unit'
"""
COUNTS = """
INSERT INTO ts.production_count (ts, equipment_id, good, reject)
SELECT %(start)s::timestamptz + make_interval(secs => s), e.id,
       CASE WHEN (s * 7919 + e.id * 104729) %% 50 = 0 THEN 0 ELSE 1 END,
       CASE WHEN (s * 7919 + e.id * 104729) %% 50 = 0 THEN 1 ELSE 0 END
FROM mes.equipment e, generate_series(%(first)s::bigint, %(last)s::bigint - 1) s
WHERE e.level = 'work_unit'
"""

# The same KPIs per machine and hour, in plain SQL: state intervals with LEAD, clipped to
# hours; counts by time_bucket. The calendar is one 24-hour shift without breaks, so every
# second is planned busy time.
SQL_KPIS = """
WITH st AS (
    SELECT s.equipment_id, s.ts,
           lead(s.ts, 1, $2::timestamptz) OVER (PARTITION BY s.equipment_id ORDER BY s.ts)
               AS next_ts,
           c.category
    FROM ts.equipment_state s
    JOIN mes.equipment e ON e.id = s.equipment_id
    JOIN mes.state_model_state c ON c.state_model_id = e.state_model_id
                                AND c.state_code = s.state
    WHERE s.ts >= $1 AND s.ts < $2),
hours AS (
    SELECT h AS hour_start, h + interval '1 hour' AS hour_end
    FROM generate_series($1::timestamptz, $2::timestamptz - interval '1 hour',
                         interval '1 hour') h),
run AS (
    SELECT st.equipment_id, h.hour_start,
           coalesce(sum(extract(epoch FROM least(st.next_ts, h.hour_end)
                                - greatest(st.ts, h.hour_start)))
                    FILTER (WHERE st.category = 'running'), 0)::float8 AS apt
    FROM st JOIN hours h ON st.ts < h.hour_end AND st.next_ts > h.hour_start
    GROUP BY 1, 2),
cnt AS (
    SELECT equipment_id, time_bucket('1 hour', ts) AS hour_start,
           sum(good)::bigint AS good, sum(reject)::bigint AS reject
    FROM ts.production_count WHERE ts >= $1 AND ts < $2 GROUP BY 1, 2)
SELECT r.equipment_id, r.hour_start,
       r.apt / 3600.0 AS availability,
       $3 * (c.good + c.reject) / nullif(r.apt, 0) AS performance,
       c.good::float8 / nullif(c.good + c.reject, 0) AS quality
FROM run r LEFT JOIN cnt c USING (equipment_id, hour_start)
"""

REFERENCE_SCHEMA = {"equipment_id": pl.Int32, "hour_start": UTC_US, "availability": pl.Float64,
                    "performance": pl.Float64, "quality": pl.Float64}


def load_bench_plant(url: str, name: str, plant: str) -> None:
    """Load the plant definition text `plant` into the scratch database `name`."""
    plant_file = Path(f"/tmp/{name}.toml")
    plant_file.write_text(plant)
    try:
        with session_factory(url)() as session, session.begin():
            acting(session, ADMINISTRATION)
            load_plant(session, read_plant_file(plant_file))
    finally:
        plant_file.unlink()


def committed_and_analyzed(conn: psycopg.Connection[Any]) -> tuple[int, int]:
    """Commit the generated rows, analyze both hypertables; their state and count rows."""
    conn.commit()
    conn.autocommit = True
    conn.execute("ANALYZE ts.equipment_state")
    conn.execute("ANALYZE ts.production_count")
    rows = conn.execute("SELECT (SELECT count(*) FROM ts.equipment_state), "
                        "(SELECT count(*) FROM ts.production_count)").fetchone()
    assert rows is not None
    return int(rows[0]), int(rows[1])


def run_oee_bench(machines: int, days: int, progress: Callable[[str], None]
                  ) -> dict[str, Any]:
    cluster = running_local_cluster("OEE benchmark", "a scratch database it drops",
                                    OeeBenchError)
    results: dict[str, Any] = {"machines": machines, "days": days}
    with scratch_database(cluster, "mes_bench_oee") as scratch:
        load_bench_plant(scratch.url, scratch.name, bench_plant(machines))
        start = dt.datetime.combine(FIRST_DAY, dt.time(), tzinfo=dt.UTC)
        progress(f"generating {days} day(s) of {machines} machines: states and 1 Hz counts")
        with psycopg.connect(scratch.url) as conn:
            began = time.perf_counter()
            conn.execute(STATES, {"start": start, "days": days})
            for d in range(days):
                conn.execute(COUNTS, {"start": start, "first": d * 86400,
                                      "last": (d + 1) * 86400})
            load = time.perf_counter() - began
            results["state_rows"], results["count_rows"] = committed_and_analyzed(conn)
        results["load_seconds"] = round(load, 1)
        now = start + dt.timedelta(days=days + 1)
        day = FIRST_DAY
        end = start + dt.timedelta(days=1)
        progress("deriving the first day: read, compute, write (best of 3 after a warm-up)")
        timings: dict[str, list[float]] = {
            "read": [], "compute": [], "derive": [], "write": [], "sql": [],
            "sql_generic": []}
        for _round in range(4):
            with queries.connect(scratch.url) as conn:
                windows = plant_windows(conn, day)
                # One connection, one step after the other: where the time goes.
                clock = time.perf_counter()
                inputs = read_inputs(conn, windows, now)
                timings["read"].append(time.perf_counter() - clock)
                clock = time.perf_counter()
                derive(inputs)
                timings["compute"].append(time.perf_counter() - clock)
                # As the pipelines derive: the counts summed on a second connection while
                # the rest is read and machine time and stops are derived.
                clock = time.perf_counter()
                derived = derive(read_inputs(conn, windows, now, counts_url=scratch.url))
                timings["derive"].append(time.perf_counter() - clock)
                clock = time.perf_counter()
                write_partition(conn, windows, derived)
                timings["write"].append(time.perf_counter() - clock)
                # The plain SQL as PostgreSQL plans it on the same connection, then with the
                # settings of the pipelines' count sum (generic plan: parallel workers).
                clock = time.perf_counter()
                reference = queries.frame(conn, SQL_KPIS, [start, end, IDEAL_CYCLE_SECONDS])
                timings["sql"].append(time.perf_counter() - clock)
                clock = time.perf_counter()
                generic = queries.small_frame(scratch.url, SQL_KPIS,
                                              [start, end, IDEAL_CYCLE_SECONDS],
                                              REFERENCE_SCHEMA)
                timings["sql_generic"].append(time.perf_counter() - clock)
        best = {name: min(values[1:]) for name, values in timings.items()}
        results.update({f"{name}_seconds": round(value, 3) for name, value in best.items()})
        results["derive_and_write_seconds"] = round(best["derive"] + best["write"], 3)
        results["sql_over_polars"] = round(best["sql"] / best["derive"], 2)
        results["sql_generic_over_polars"] = round(best["sql_generic"] / best["derive"], 2)
        results["machine_time_rows"] = derived.machine_time.height
        results["downtime_events"] = derived.downtime_events.height
        results["compared_hours"], results["max_difference"] = _compare(derived.kpis,
                                                                       reference)
        _compare(derived.kpis, generic)
        if days > 1:
            progress(f"backfill: deriving {days} day partitions with writes")
            per_day = []
            for n in range(days):
                clock = time.perf_counter()
                derive_day(scratch.url, FIRST_DAY + dt.timedelta(days=n), now=now)
                per_day.append(time.perf_counter() - clock)
            results["backfill_seconds_per_day"] = round(statistics.mean(per_day), 3)
            results["backfill_seconds_per_day_max"] = round(max(per_day), 3)
    return results


def _compare(kpis: pl.DataFrame, reference: pl.DataFrame) -> tuple[int, float]:
    ours = kpis.filter((pl.col("scope") == "machine") & (pl.col("period") == "hour")).select(
        "equipment_id", pl.col("period_start").alias("hour_start"), "availability",
        "performance", "quality", "oee")
    theirs = reference.with_columns(pl.col("equipment_id").cast(pl.Int32)).with_columns(
        (pl.col("availability") * pl.col("performance") * pl.col("quality")).alias("oee"))
    joined = ours.join(theirs, on=["equipment_id", "hour_start"], how="full",
                       suffix="_sql")
    if joined.height != ours.height or joined.height != theirs.height:
        raise OeeBenchError(f"the pipelines derived {ours.height} machine-hours, plain SQL "
                            f"{theirs.height}: they do not cover the same hours")
    worst = 0.0
    for ratio in ("availability", "performance", "quality", "oee"):
        difference = (joined[ratio] - joined[f"{ratio}_sql"]).abs().max()
        if joined[ratio].is_null().sum() != joined[f"{ratio}_sql"].is_null().sum():
            raise OeeBenchError(f"{ratio}: the pipelines and plain SQL disagree on which "
                                "hours have none")
        worst = max(worst, float(difference or 0.0))  # type: ignore[arg-type]
    if worst > 1e-9:
        raise OeeBenchError(f"the pipelines and plain SQL disagree: largest difference "
                            f"{worst:.3g}")
    return joined.height, worst


def render_oee_bench(results: dict[str, Any]) -> str:
    r = results
    return "\n".join([
        f"OEE benchmark: {r['machines']} machines x {r['days']} day(s); "
        f"{r['state_rows']:,} state rows, {r['count_rows']:,} count rows "
        f"(generated in {r['load_seconds']} s)",
        f"  pipelines, one day partition: {r['derive_seconds']} s to derive (counts summed "
        f"on a second connection beside the rest; one connection in turn: read {r['read_seconds']} "
        f"s + compute {r['compute_seconds']} s), write {r['write_seconds']} s; "
        f"{r['machine_time_rows']:,} machine-time rows, {r['downtime_events']:,} downtime "
        "events",
        f"  same KPIs in plain SQL (LEAD, clip to hours, time_bucket): {r['sql_seconds']} s "
        f"as PostgreSQL plans it; {r['sql_generic_seconds']} s with the count sum's "
        "generic plan (parallel workers)",
        f"  SQL / pipelines: {r['sql_over_polars']}x (generic plan for both: "
        f"{r['sql_generic_over_polars']}x); {r['compared_hours']:,} machine-hours agree "
        f"(largest difference {r['max_difference']:.1e})",
        f"  target: derive + write under 5 s: "
        f"{'met' if r['derive_and_write_seconds'] < 5 else 'NOT met'} "
        f"({r['derive_and_write_seconds']} s); faster than the SQL: "
        f"{'met' if r['sql_over_polars'] > 1 else 'NOT met'} ({r['sql_over_polars']}x)",
        *([f"  backfill: {r['backfill_seconds_per_day']} s per day partition (max "
           f"{r['backfill_seconds_per_day_max']} s)"] if "backfill_seconds_per_day" in r
          else []),
    ])
