"""Every SQL statement the pipelines run, with bound parameters only.

Reads come back as Arrow through ADBC (`adbc-driver-postgresql`) and become Polars frames;
1 Hz counts are summed in the database (`time_bucket`) so that only aggregates move.
Per-machine windows travel as one JSON parameter (`jsonb_to_recordset`), because machines
of different calendars have different local days. No arithmetic of KPIs lives here.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeAlias

import adbc_driver_postgresql.dbapi as adbc
import polars as pl
import psycopg

from mes.db import psycopg_url

Connection: TypeAlias = adbc.Connection

SESSION_WORK_MEM = "SET work_mem = '256MB'"

WINDOWS = """
    SELECT * FROM jsonb_to_recordset($1::jsonb)
        AS w(equipment_id integer, window_start timestamptz, window_end timestamptz)"""

MACHINES = """
SELECT m.id AS equipment_id, m.code AS machine, m.state_model_id,
       line.id AS line_id, line.code AS line, site.id AS site_id, site.code AS site,
       cal.id AS calendar_id, cal.timezone
FROM mes.equipment m
JOIN mes.equipment line ON line.id = m.parent_id
JOIN mes.equipment area ON area.id = line.parent_id
JOIN mes.equipment site ON site.id = area.parent_id
JOIN mes.shift_calendar cal ON cal.id = coalesce(line.shift_calendar_id, site.shift_calendar_id)
WHERE m.level = 'work_unit'
ORDER BY m.id
"""

# The plant's sites: one partition each in the pipelines when there are several.
SITES = "SELECT code FROM mes.equipment WHERE level = 'site' ORDER BY code"

SHIFTS = """
SELECT s.id AS shift_id, s.shift_calendar_id AS calendar_id, s.code,
       extract(epoch FROM s.start_time)::float8 AS start_seconds,
       extract(epoch FROM s.duration)::float8 AS duration_seconds,
       array_to_string(s.weekdays, ',') AS weekdays
FROM mes.shift s ORDER BY s.shift_calendar_id, s.start_time
"""

BREAKS = """
SELECT b.shift_id, extract(epoch FROM b.start_offset)::float8 AS offset_seconds,
       extract(epoch FROM b.duration)::float8 AS duration_seconds, b.downtime_reason_id
FROM mes.shift_break b ORDER BY b.shift_id, b.start_offset
"""

PLANNED_STOPS = """
SELECT p.shift_calendar_id AS calendar_id, p.equipment_id, p.starts_at, p.ends_at,
       p.downtime_reason_id
FROM mes.planned_stop p WHERE p.starts_at < $2 AND p.ends_at > $1
"""

MAINTENANCE_WINDOWS = """
SELECT w.equipment_id, w.starts_at, w.ends_at
FROM mes.maintenance_window w WHERE w.starts_at < $2 AND w.ends_at > $1
"""

# The states inside each machine's window, the state carried in (the last change before
# the window) and the first change after it (where a stop that goes on past the window
# ends). The outer bounds ($2, $3) let TimescaleDB exclude chunks when planning.
STATES = f"""
WITH w AS ({WINDOWS})
SELECT s.equipment_id, s.ts, s.state, s.reason_code
FROM w JOIN ts.equipment_state s
  ON s.equipment_id = w.equipment_id AND s.ts >= w.window_start AND s.ts < w.window_end
WHERE s.ts >= $2 AND s.ts < $3
UNION ALL
SELECT w.equipment_id, before.ts, before.state, before.reason_code
FROM w CROSS JOIN LATERAL (
    SELECT p.ts, p.state, p.reason_code FROM ts.equipment_state p
    WHERE p.equipment_id = w.equipment_id AND p.ts < w.window_start
    ORDER BY p.ts DESC LIMIT 1) before
UNION ALL
SELECT w.equipment_id, after.ts, after.state, after.reason_code
FROM w CROSS JOIN LATERAL (
    SELECT p.ts, p.state, p.reason_code FROM ts.equipment_state p
    WHERE p.equipment_id = w.equipment_id AND p.ts >= w.window_end
    ORDER BY p.ts LIMIT 1) after
"""

STATE_CATEGORIES = """
SELECT state_model_id, state_code AS state, category FROM mes.state_model_state
"""

# Open gaps (gap_end NULL) last until data flows again: for us, to the end of time.
COLLECTION_GAPS = """
SELECT equipment_id, gap_start, coalesce(gap_end, '9999-12-31 00:00+00'::timestamptz) AS gap_end
FROM ts.collection_gap WHERE gap_end IS NULL OR gap_end > $1
"""

RUNS = """
SELECT r.id AS operation_run_id, r.equipment_id, r.started_at,
       coalesce(r.ended_at, '9999-12-31 00:00+00'::timestamptz) AS ended_at,
       r.work_order_id, coalesce(op.output_material_id, p.material_id) AS material_id,
       (SELECT string_agg(l.code, ',' ORDER BY l.id) FROM mes.material_lot l
        WHERE l.produced_by_run_id = r.id) AS lot_codes
FROM mes.operation_run r
JOIN mes.work_order wo ON wo.id = r.work_order_id
JOIN mes.product_definition p ON p.id = wo.product_id
JOIN mes.routing_operation op ON op.id = r.operation_id
WHERE r.started_at < $2 AND (r.ended_at IS NULL OR r.ended_at > $1)
"""

IDEAL_CYCLE_TIMES = "SELECT equipment_id, material_id, seconds FROM mes.ideal_cycle_time"

FAULT_CODE_REASONS = """
SELECT state_model_id, fault_code AS reason_code, downtime_reason_id FROM mes.fault_code_reason
"""

CLASSIFICATIONS = """
SELECT equipment_id, started_at, downtime_reason_id FROM mes.downtime_classification
WHERE started_at >= $1 AND started_at < $2
"""

DOWNTIME_REASONS = "SELECT id AS downtime_reason_id, code, planned FROM mes.downtime_reason"

# Counts per machine and bucket between the outer bounds. The bucket ($3) is the coarsest
# grid every hour, shift and break boundary of the calendars lies on (an hour, 15 minutes,
# a minute), so a bucket never straddles one; each machine's own window is applied to the
# buckets afterwards. In a bucket that holds a run's start or end, per row, so every count
# lands on the right side of it; without such boundaries the plain form is cheaper.
COUNTS = """
SELECT c.equipment_id, time_bucket($3::interval, c.ts) AS bucket,
       sum(c.good)::bigint AS good, sum(c.reject)::bigint AS reject
FROM ts.production_count c
WHERE c.ts >= $1 AND c.ts < $2
GROUP BY 1, 2
"""
_BOUNDARIES = """
WITH boundary AS (
    SELECT DISTINCT b.equipment_id, time_bucket($3::interval, b.at) AS minute
    FROM jsonb_to_recordset($4::jsonb) AS b(equipment_id integer, at timestamptz))"""
_SPLIT_BUCKETS = """
SELECT c.equipment_id,
       CASE WHEN bd.minute IS NULL THEN time_bucket($3::interval, c.ts) ELSE c.ts END AS bucket,
       sum(c.good)::bigint AS good, sum(c.reject)::bigint AS reject"""
_AT_BOUNDARY = """
LEFT JOIN boundary bd
  ON bd.equipment_id = c.equipment_id AND bd.minute = time_bucket($3::interval, c.ts)"""
COUNTS_SPLIT_AT = f"""{_BOUNDARIES}{_SPLIT_BUCKETS}
FROM ts.production_count c{_AT_BOUNDARY}
WHERE c.ts >= $1 AND c.ts < $2
GROUP BY 1, 2
"""

# The same for a few recent minutes of the machines in $4 ($5 when split; a JSON array of
# ids): one index range scan a machine (the primary key leads with the machine), where the
# plain form scans the chunk. The board reads this way at every refresh.
COUNTS_OF_MACHINES = """
SELECT c.equipment_id, time_bucket($3::interval, c.ts) AS bucket,
       sum(c.good)::bigint AS good, sum(c.reject)::bigint AS reject
FROM jsonb_array_elements_text($4::jsonb) AS m(id)
JOIN ts.production_count c ON c.equipment_id = m.id::integer AND c.ts >= $1 AND c.ts < $2
GROUP BY 1, 2
"""
COUNTS_OF_MACHINES_SPLIT_AT = f"""{_BOUNDARIES}{_SPLIT_BUCKETS}
FROM jsonb_array_elements_text($5::jsonb) AS m(id)
JOIN ts.production_count c ON c.equipment_id = m.id::integer AND c.ts >= $1 AND c.ts < $2
{_AT_BOUNDARY}
GROUP BY 1, 2
"""

# Machine counts over each run's whole span, against what its operators reported.
RUN_COUNTS = """
SELECT r.id AS operation_run_id, r.equipment_id, r.started_at, r.ended_at,
       coalesce(c.good, 0)::bigint AS machine_good,
       coalesce(c.reject, 0)::bigint AS machine_reject,
       r.good_quantity AS reported_good, r.scrap_quantity AS reported_scrap
FROM mes.operation_run r
CROSS JOIN LATERAL (
    SELECT sum(p.good) AS good, sum(p.reject) AS reject FROM ts.production_count p
    WHERE p.equipment_id = r.equipment_id AND p.ts >= r.started_at
      AND p.ts < coalesce(r.ended_at, '9999-12-31 00:00+00'::timestamptz)) c
WHERE r.id = ANY(SELECT (jsonb_array_elements_text($1::jsonb))::integer)
ORDER BY r.id
"""

RUNS_STARTED = """
SELECT r.id FROM mes.operation_run r
JOIN (SELECT * FROM jsonb_to_recordset($1::jsonb)
      AS w(equipment_id integer, window_start timestamptz, window_end timestamptz)) w
  ON w.equipment_id = r.equipment_id
WHERE r.started_at >= w.window_start AND r.started_at < w.window_end
"""

# Replacing a partition: the rows of each machine (or line, site) whose time column lies in
# that equipment's window. Table and column names come from the fixed set below.
REPLACE_WINDOW = """
DELETE FROM derived.{table} t USING (
    SELECT * FROM jsonb_to_recordset($1::jsonb)
        AS w(equipment_id integer, window_start timestamptz, window_end timestamptz)) w
WHERE t.equipment_id = w.equipment_id AND t.{column} >= w.window_start
  AND t.{column} < w.window_end
"""
PARTITIONED = {"machine_time": "starts_at", "kpi": "period_start",
               "downtime_event": "started_at", "count_reconciliation": "started_at"}

# Downtime events keep their ids across derivations (the id an operator classifies by).
EVENTS_STAGING = "downtime_event_staging"
INSERT_EVENTS = """
WITH old AS (
    DELETE FROM derived.downtime_event t USING (
        SELECT * FROM jsonb_to_recordset($1::jsonb)
            AS w(equipment_id integer, window_start timestamptz, window_end timestamptz)) w
    WHERE t.equipment_id = w.equipment_id AND t.started_at >= w.window_start
      AND t.started_at < w.window_end
    RETURNING t.equipment_id, t.started_at, t.id)
INSERT INTO derived.downtime_event (id, equipment_id, started_at, ended_at, duration_seconds,
    state, category, reason_code, downtime_reason_id, reason_source, planned, micro_stop,
    operation_run_id, work_order_id, lot_codes)
SELECT coalesce(old.id, nextval(pg_get_serial_sequence('derived.downtime_event', 'id'))),
       s.equipment_id, s.started_at, s.ended_at, s.duration_seconds, s.state, s.category,
       s.reason_code, s.downtime_reason_id, s.reason_source, s.planned, s.micro_stop,
       s.operation_run_id, s.work_order_id, s.lot_codes
FROM downtime_event_staging s
LEFT JOIN old ON old.equipment_id = s.equipment_id AND old.started_at = s.started_at
"""

DELETE_RECONCILIATION = """
DELETE FROM derived.count_reconciliation
WHERE operation_run_id = ANY(SELECT (jsonb_array_elements_text($1::jsonb))::integer)
"""

# -- what the command line and the checks read back ----------------------------------------

KPI_ROWS = """
SELECT e.code AS equipment, k.*, s.code AS shift_code
FROM derived.kpi k
JOIN mes.equipment e ON e.id = k.equipment_id
LEFT JOIN mes.shift s ON s.id = k.shift_id
WHERE e.code = $1 AND k.period = $2 AND k.period_start < $4 AND k.period_end > $3
ORDER BY k.period_start
"""

DOWNTIME_EVENTS = """
SELECT d.id, e.code AS machine, d.started_at, d.ended_at, d.duration_seconds, d.state,
       d.category, d.reason_code, r.code AS reason, d.reason_source, d.planned, d.micro_stop,
       d.operation_run_id, wo.code AS work_order, d.lot_codes
FROM derived.downtime_event d
JOIN mes.equipment e ON e.id = d.equipment_id
LEFT JOIN mes.downtime_reason r ON r.id = d.downtime_reason_id
LEFT JOIN mes.work_order wo ON wo.id = d.work_order_id
WHERE ($1::text IS NULL OR e.code = $1) AND d.started_at < $3
  AND coalesce(d.ended_at, '9999-12-31 00:00+00'::timestamptz) > $2
ORDER BY d.started_at, e.code
"""

DOWNTIME_EVENT = """
SELECT d.id, d.equipment_id, e.code AS machine, d.started_at, d.category
FROM derived.downtime_event d JOIN mes.equipment e ON e.id = d.equipment_id
WHERE d.id = $1
"""

DOWNTIME_EVENT_SPAN = """
SELECT d.id, d.equipment_id, site.code AS site, d.started_at, d.ended_at, cal.timezone
FROM derived.downtime_event d
JOIN mes.equipment m ON m.id = d.equipment_id
JOIN mes.equipment line ON line.id = m.parent_id
JOIN mes.equipment area ON area.id = line.parent_id
JOIN mes.equipment site ON site.id = area.parent_id
JOIN mes.shift_calendar cal ON cal.id = coalesce(line.shift_calendar_id, site.shift_calendar_id)
WHERE d.id = $1
"""

MACHINE_TIME_COVERAGE = f"""
SELECT w.equipment_id,
       extract(epoch FROM w.window_end - w.window_start)::float8 AS calendar_seconds,
       coalesce(sum(t.seconds), 0)::float8 AS machine_seconds,
       count(t.*) FILTER (WHERE t.starts_at < lag_end) AS overlaps
FROM ({WINDOWS}) w
LEFT JOIN (SELECT t.*, lag(t.ends_at) OVER (PARTITION BY t.equipment_id ORDER BY t.starts_at)
               AS lag_end
           FROM derived.machine_time t) t
  ON t.equipment_id = w.equipment_id AND t.starts_at >= w.window_start
 AND t.starts_at < w.window_end
GROUP BY w.equipment_id, w.window_start, w.window_end
"""

KPI_RANGES = f"""
SELECT count(*) FILTER (WHERE availability < 0 OR availability > 1 OR quality < 0
                        OR quality > 1 OR performance < 0 OR oee < 0) AS out_of_range,
       count(*) FILTER (WHERE performance > 1) AS performance_above_one,
       count(*) FILTER (WHERE missing_ideal_cycle_time) AS missing_ideal_cycle_time,
       count(*) FILTER (WHERE produced_quantity < 0 OR good_quantity < 0
                        OR scrap_quantity < 0) AS negative_counts,
       count(*) FILTER (WHERE planned_busy_seconds = 0 AND (availability IS NOT NULL
                        OR oee IS NOT NULL)) AS ratio_without_planned_time,
       count(*) AS rows
FROM derived.kpi k
JOIN ({WINDOWS}) w ON w.equipment_id = k.equipment_id
 AND k.period_start >= w.window_start AND k.period_start < w.window_end
"""

RECONCILIATION_FLAGS = """
SELECT count(*) FILTER (WHERE NOT within_tolerance) AS outside_tolerance, count(*) AS runs
FROM derived.count_reconciliation
WHERE operation_run_id = ANY(SELECT (jsonb_array_elements_text($1::jsonb))::integer)
"""


# -- what the dashboards read ---------------------------------------------------------------

# Stops overlapping [$1, $2) added up per reason (unclassified ones under no reason).
DOWNTIME_PARETO = """
SELECT coalesce(r.code, 'unclassified') AS reason, d.planned, count(*)::bigint AS stops,
       sum(extract(epoch FROM least(coalesce(d.ended_at, $2), $2) - greatest(d.started_at, $1))
           )::float8 AS seconds
FROM derived.downtime_event d
LEFT JOIN mes.downtime_reason r ON r.id = d.downtime_reason_id
WHERE d.started_at < $2 AND coalesce(d.ended_at, 'infinity'::timestamptz) > $1
  AND NOT d.micro_stop
GROUP BY 1, 2
ORDER BY seconds DESC
"""

# A machine's time in [$2, $3) as runs of one category: consecutive segments merged.
STATE_TIMELINE = """
WITH segment AS (
    SELECT t.starts_at, t.ends_at, t.category, r.code AS reason,
           row_number() OVER (ORDER BY t.starts_at)
             - row_number() OVER (PARTITION BY t.category, r.code ORDER BY t.starts_at) AS island
    FROM derived.machine_time t
    JOIN mes.equipment e ON e.id = t.equipment_id
    LEFT JOIN mes.downtime_reason r ON r.id = t.downtime_reason_id
    WHERE e.code = $1 AND t.starts_at < $3 AND t.ends_at > $2)
SELECT min(starts_at) AS starts_at, max(ends_at) AS ends_at, category, reason
FROM segment GROUP BY island, category, reason ORDER BY 1
"""

# Stored base quantities of one scope and period in [$3, $4), per equipment.
KPI_BASE = """
SELECT e.code AS equipment, k.*
FROM derived.kpi k JOIN mes.equipment e ON e.id = k.equipment_id
WHERE k.scope = $1 AND k.period = $2 AND k.period_start >= $3 AND k.period_start < $4
ORDER BY k.period_start, e.code
"""

# The sites whose facts the central store holds (empty on a site's own database).
CENTRAL_SITES = "SELECT code AS site FROM central.site ORDER BY code"

# Forwarded base quantities of one scope's day rows in [$2, $3), per site and equipment;
# of every site, or of the site coded $4.
CENTRAL_KPI_DAYS = """
SELECT s.code AS site, e.code AS equipment, k.*
FROM central.kpi k
JOIN central.site s ON s.id = k.site_id
JOIN central.equipment e ON e.site_id = k.site_id AND e.id = k.equipment_id
WHERE k.scope = $1 AND k.period = 'day' AND k.period_start >= $2 AND k.period_start < $3
  AND ($4::text IS NULL OR s.code = $4)
ORDER BY k.period_start, s.code, e.code
"""

SIGNALS = """
SELECT s.code AS signal, s.name, s.unit, s.low_limit, s.high_limit, e.code AS machine
FROM mes.signal s JOIN mes.equipment e ON e.id = s.equipment_id
WHERE s.kind = 'process_value' ORDER BY e.code, s.code
"""

# Process values of the signals named in $1 (a JSON array of codes) in [$2, $3), averaged
# (with minimum and maximum) per $4 bucket in the database, so a month draws quickly.
SIGNAL_TREND = """
SELECT s.code AS signal, time_bucket($4::interval, v.ts) AS bucket,
       avg(v.value)::float8 AS mean, min(v.value)::float8 AS low,
       max(v.value)::float8 AS high, count(*)::bigint AS samples
FROM ts.process_value v JOIN mes.signal s ON s.id = v.signal_id
WHERE s.code = ANY(SELECT jsonb_array_elements_text($1::jsonb)) AND v.ts >= $2 AND v.ts < $3
GROUP BY 1, 2 ORDER BY 1, 2
"""

# The runs on the machines of the signals named in $1 that overlap [$2, $3).
SIGNAL_RUNS = """
SELECT e.code AS machine, r.id AS run, wo.code AS work_order, r.started_at,
       coalesce(r.ended_at, $3) AS ended_at,
       (SELECT string_agg(l.code, ', ' ORDER BY l.code) FROM mes.material_lot l
         WHERE l.produced_by_run_id = r.id) AS lots
FROM mes.operation_run r
JOIN mes.equipment e ON e.id = r.equipment_id
JOIN mes.work_order wo ON wo.id = r.work_order_id
WHERE r.equipment_id IN (SELECT s.equipment_id FROM mes.signal s
                         WHERE s.code = ANY(SELECT jsonb_array_elements_text($1::jsonb)))
  AND r.started_at < $3 AND coalesce(r.ended_at, 'infinity'::timestamptz) > $2
ORDER BY r.started_at
"""


@contextmanager
def connect(url: str) -> Iterator[Connection]:
    """An ADBC connection (not autocommit: the caller commits)."""
    with adbc.connect(psycopg_url(url)) as conn:
        # Summing a day of 1 Hz counts per machine-minute sorts on disk with the default
        # 4 MB (6 s for 8.6 M rows here); with room it is a hash aggregate in memory.
        execute(conn, SESSION_WORK_MEM)
        conn.commit()
        yield conn


def frame(conn: Connection, query: str, parameters: Sequence[Any] = ()) -> pl.DataFrame:
    with conn.cursor() as cursor:
        cursor.execute(query, parameters=tuple(parameters) if parameters else None)
        result = pl.from_arrow(cursor.fetch_arrow_table())
    assert isinstance(result, pl.DataFrame)
    return result


def small_frame(url: str, query: str, parameters: Sequence[Any],
                schema: dict[str, Any]) -> pl.DataFrame:
    """A query with a small result (aggregates) on a psycopg connection of its own, meant
    for a thread beside the ADBC connection: psycopg lets other Python threads run while
    the server works, where ADBC holds the interpreter for much of the wait.

    The plan is the generic one (planned for any bounds): planned for the actual bounds,
    PostgreSQL expects one group per count row (863 k for 2,400 machine-hours) and sums a
    day in one process; the generic plan's estimate lets it sum in parallel workers
    (0.61 s instead of 0.89 s for 8.6 M rows on two cores)."""
    with psycopg.connect(psycopg_url(url), cursor_factory=psycopg.RawCursor) as conn:
        conn.execute(SESSION_WORK_MEM)
        conn.execute("SET plan_cache_mode = force_generic_plan")
        rows = conn.execute(query, list(parameters)).fetchall()
    return pl.DataFrame(rows, schema=schema, orient="row")


def execute(conn: Connection, query: str, parameters: Sequence[Any] = ()) -> None:
    with conn.cursor() as cursor:
        cursor.execute(query, parameters=tuple(parameters) if parameters else None)


def windows_json(windows: pl.DataFrame) -> str:
    """Windows (equipment_id, window_start, window_end) as the JSON parameter above."""
    return json.dumps([
        {"equipment_id": row["equipment_id"], "window_start": row["window_start"].isoformat(),
         "window_end": row["window_end"].isoformat()}
        for row in windows.select("equipment_id", "window_start", "window_end").to_dicts()])


def boundaries_json(boundaries: pl.DataFrame) -> str:
    return json.dumps([{"equipment_id": row["equipment_id"], "at": row["at"].isoformat()}
                       for row in boundaries.to_dicts()])


def ids_json(ids: Sequence[int]) -> str:
    return json.dumps([int(i) for i in ids])


def replace_window(conn: Connection, table: str, windows: pl.DataFrame,
                   rows: pl.DataFrame) -> None:
    """Delete the windows' rows of `derived.<table>` and insert `rows`, in the caller's
    transaction: a partition is replaced whole or not at all."""
    column = PARTITIONED[table]
    execute(conn, REPLACE_WINDOW.format(table=table, column=column), [windows_json(windows)])
    ingest(conn, table, rows)


def ingest(conn: Connection, table: str, rows: pl.DataFrame, *,
           temporary: bool = False) -> None:
    if rows.is_empty() and not temporary:
        return
    with conn.cursor() as cursor:
        if temporary:
            cursor.adbc_ingest(table, rows.to_arrow(), mode="replace", temporary=True)
        else:
            cursor.adbc_ingest(table, rows.to_arrow(), mode="append", db_schema_name="derived")


def replace_events(conn: Connection, windows: pl.DataFrame, events: pl.DataFrame) -> None:
    ingest(conn, EVENTS_STAGING, events, temporary=True)
    execute(conn, INSERT_EVENTS, [windows_json(windows)])
    execute(conn, f"DROP TABLE {EVENTS_STAGING}")


def utc(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.UTC)
