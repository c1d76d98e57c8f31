"""Every SQL statement of the CMMS work requests and of condition monitoring, with bound
parameters only. Reads the plant model, the hypertables and the derived tables the
pipelines write (`derived.downtime_event`, `derived.kpi`); writes nothing itself."""

from __future__ import annotations

from sqlalchemy import text

# Each machine's thresholds: its own, else its state model's, else the plant's.
MACHINE_THRESHOLDS = """
SELECT m.id AS equipment_id, m.code AS machine, m.name AS machine_name,
       line.code AS line,
       coalesce(me.long_stop_seconds, sm.long_stop_seconds, pl.long_stop_seconds)
           AS long_stop_seconds,
       coalesce(me.fault_count, sm.fault_count, pl.fault_count) AS fault_count,
       coalesce(me.fault_window_seconds, sm.fault_window_seconds, pl.fault_window_seconds)
           AS fault_window_seconds,
       coalesce(me.mtbf_below_seconds, sm.mtbf_below_seconds, pl.mtbf_below_seconds)
           AS mtbf_below_seconds,
       coalesce(me.out_of_limits_seconds, sm.out_of_limits_seconds, pl.out_of_limits_seconds)
           AS out_of_limits_seconds,
       coalesce(me.nonconformance, sm.nonconformance, pl.nonconformance, false)
           AS nonconformance,
       coalesce(me.signal_window_seconds, sm.signal_window_seconds, pl.signal_window_seconds)
           AS signal_window_seconds
FROM mes.equipment m
LEFT JOIN mes.equipment line ON line.id = m.parent_id
LEFT JOIN mes.work_request_trigger me ON me.equipment_id = m.id
LEFT JOIN mes.work_request_trigger sm ON sm.state_model_id = m.state_model_id
LEFT JOIN mes.work_request_trigger pl ON pl.equipment_id IS NULL AND pl.state_model_id IS NULL
WHERE m.level = 'work_unit'
"""
THRESHOLDS = text(f"{MACHINE_THRESHOLDS} ORDER BY m.code")

# The bottleneck of a line: the machine with the largest ideal cycle time on it (its
# slowest material); ties make each of them one.
BOTTLENECKS = text("""
WITH slowest AS (
    SELECT m.id, m.parent_id, max(c.seconds) AS seconds
    FROM mes.equipment m JOIN mes.ideal_cycle_time c ON c.equipment_id = m.id
    WHERE m.level = 'work_unit' GROUP BY m.id, m.parent_id)
SELECT s.id FROM slowest s
WHERE s.seconds = (SELECT max(o.seconds) FROM slowest o WHERE o.parent_id = s.parent_id)
""")

UNPLANNED_STOP = """
d.equipment_id = :machine AND NOT d.planned AND d.category = 'unplanned_stop'"""

# Stops that lasted (or, still going on, have lasted by :at) at least :seconds.
LONG_STOPS = text(f"""
SELECT d.started_at AS at, d.ended_at, d.reason_code, r.code AS reason, r.name AS reason_name,
       extract(epoch FROM coalesce(d.ended_at, :at) - d.started_at)::float8 AS seconds
FROM derived.downtime_event d
LEFT JOIN mes.downtime_reason r ON r.id = d.downtime_reason_id
WHERE {UNPLANNED_STOP} AND d.started_at > :since AND d.started_at <= :at
  AND coalesce(d.ended_at, :at) - d.started_at >= make_interval(secs => :seconds)
ORDER BY d.started_at
""")

# Stops with a machine fault code, micro-stops included (a fault that repeats briefly is
# exactly what maintenance wants to hear about).
FAULTS = text(f"""
SELECT d.started_at AS at, d.ended_at, d.reason_code, r.code AS reason, r.name AS reason_name,
       extract(epoch FROM coalesce(d.ended_at, :at) - d.started_at)::float8 AS seconds
FROM derived.downtime_event d
LEFT JOIN mes.downtime_reason r ON r.id = d.downtime_reason_id
WHERE {UNPLANNED_STOP} AND d.reason_code IS NOT NULL
  AND d.started_at > :since AND d.started_at <= :at
ORDER BY d.started_at
""")

LOW_MTBF = text("""
SELECT k.period_start AS at, k.period_end, k.mtbf_seconds, k.failure_count,
       k.actual_production_seconds
FROM derived.kpi k
WHERE k.equipment_id = :machine AND k.scope = 'machine' AND k.period = 'day'
  AND k.mtbf_seconds < :limit AND k.period_end > :since AND k.period_start <= :at
ORDER BY k.period_start
""")

CONDITION_EVENTS = text("""
SELECT e.at, e.rule, e.value, e.detail, s.code AS signal
FROM mes.process_event e JOIN mes.signal s ON s.id = e.signal_id
WHERE e.kind = 'condition' AND s.equipment_id = :machine AND e.at > :since AND e.at <= :at
ORDER BY e.at, s.code
""")

NONCONFORMANCES = text("""
SELECT n.opened_at AS at, n.code, n.characteristic, n.measured, n.lower_spec, n.upper_spec
FROM mes.nonconformance n
WHERE n.equipment_id = :machine AND n.opened_at > :since AND n.opened_at <= :at
ORDER BY n.opened_at, n.code
""")

# The run on the machine at :at, with its order, operation, operator, material, the
# machine's ideal cycle time for that material, and the lots it made.
RUN_AT = text("""
SELECT r.id AS run_id, r.work_order_id, wo.code AS work_order, wo.due_at, ro.sequence AS operation,
       ro.code AS operation_code, p.badge AS operator_badge, p.name AS operator_name,
       m.code AS material, c.seconds AS ideal_cycle_seconds,
       (SELECT min(l.id) FROM mes.material_lot l WHERE l.produced_by_run_id = r.id) AS lot_id,
       array(SELECT l.code FROM mes.material_lot l WHERE l.produced_by_run_id = r.id
             ORDER BY l.code) AS lots
FROM mes.operation_run r
JOIN mes.work_order wo ON wo.id = r.work_order_id
JOIN mes.routing_operation ro ON ro.id = r.operation_id
JOIN mes.product_definition pd ON pd.id = ro.product_id
JOIN mes.material_definition m ON m.id = coalesce(ro.output_material_id, pd.material_id)
JOIN mes.person p ON p.id = r.operator_id
LEFT JOIN mes.ideal_cycle_time c
    ON c.equipment_id = r.equipment_id AND c.material_id = m.id
WHERE r.equipment_id = :machine AND r.started_at <= :at
  AND coalesce(r.ended_at, 'infinity') > :at
ORDER BY r.started_at DESC
LIMIT 1
""")

CYCLE_TIMES = text("SELECT seconds FROM mes.ideal_cycle_time WHERE equipment_id = :machine")

GOOD_SAMPLE = "v.quality NOT IN (SELECT code FROM mes.sample_quality WHERE category = 'bad')"

# Each process value of the machine over the minutes before the event (good samples).
SIGNALS_AROUND = text(f"""
SELECT s.code, s.unit, s.low_limit, s.high_limit, count(v.value)::integer AS samples,
       min(v.value) AS min, max(v.value) AS max, avg(v.value) AS mean
FROM mes.signal s
LEFT JOIN ts.process_value v ON v.signal_id = s.id AND v.ts >= :since AND v.ts <= :at
    AND v.value IS NOT NULL AND {GOOD_SAMPLE}
WHERE s.equipment_id = :machine AND s.kind = 'process_value'
GROUP BY s.id
ORDER BY s.code
""")

OPEN_REQUEST = text("""
SELECT id FROM mes.work_request
WHERE equipment_id = :machine AND cause = :cause AND status NOT IN ('closed', 'cancelled')
FOR UPDATE
""")

# Events up to the newest one any request of the machine and cause stood for were handled.
HANDLED_UNTIL = text("""
SELECT max(last_event_at) FROM mes.work_request WHERE equipment_id = :machine AND cause = :cause
""")

NEXT_REQUEST_ID = text("SELECT nextval(pg_get_serial_sequence('mes.work_request', 'id'))")

# One evaluation at a time: two would both see no open request and both insert.
EVALUATION_LOCK = text("SELECT pg_advisory_xact_lock(hashtext('mes.work_request_evaluate'))")
STATUS_IMPORT_LOCK = text(
    "SELECT pg_advisory_xact_lock(hashtext('mes.work_request_status_import'))")

# --- condition monitoring -------------------------------------------------------------------

MONITORED_SIGNALS = text(f"""
SELECT s.id AS signal_id, s.code, s.equipment_id, s.low_limit, s.high_limit,
       c.max_rate_per_minute, c.baseline_minutes, c.max_deviation, t.out_of_limits_seconds
FROM mes.signal s
JOIN ({MACHINE_THRESHOLDS}) t ON t.equipment_id = s.equipment_id
LEFT JOIN mes.condition_rule c ON c.signal_id = s.id
WHERE s.kind = 'process_value'
ORDER BY s.code
""")

SAMPLES = text(f"""
SELECT v.ts AS at, v.value FROM ts.process_value v
WHERE v.signal_id = :signal AND v.ts >= :since AND v.ts <= :until AND v.value IS NOT NULL
  AND {GOOD_SAMPLE}
ORDER BY v.ts
""")
