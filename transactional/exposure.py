"""Process values in production context: the envelope of each process value of a machine
over each operation run (stored with the run), and the lots made while a signal was out of
its limits, with every lot made from them since (the reverse of a trace).

The exposure query reads the stored envelopes of the runs inside the window and goes to the
raw samples only for the runs it cannot judge from them (still running, cut by the window,
no envelope, or one judged against other limits). It never commits; holding lots goes
through the lot service, so the audit log records it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from transactional import lots
from transactional.errors import RuleViolation
from transactional.lookup import by_code
from transactional.models import Signal

# A sample holds until the next sample or the run's end. Out of limits counts only samples
# whose quality is not bad: a bad sample says nothing about the process.
RECORD_ENVELOPES = text("""
INSERT INTO mes.run_signal_envelope AS e (run_id, signal_id, samples, min_value, max_value,
    mean_value, samples_out_of_limits, seconds_out_of_limits, bad_quality_seconds,
    low_limit, high_limit, computed_at)
SELECT r.id, s.id, count(pv.ts), min(pv.value), max(pv.value), avg(pv.value),
       count(*) FILTER (WHERE pv.out_of_limits),
       coalesce(sum(pv.held) FILTER (WHERE pv.out_of_limits), 0),
       coalesce(sum(pv.held) FILTER (WHERE pv.bad), 0),
       s.low_limit, s.high_limit, now()
FROM mes.operation_run r
JOIN mes.signal s ON s.equipment_id = r.equipment_id AND s.kind = 'process_value'
LEFT JOIN LATERAL (
    SELECT v.ts, v.value,
           coalesce(q.category, 'bad') = 'bad' AS bad,
           coalesce(q.category, 'bad') <> 'bad'
               AND (v.value < s.low_limit OR v.value > s.high_limit) AS out_of_limits,
           extract(epoch FROM coalesce(lead(v.ts) OVER (ORDER BY v.ts),
                                       coalesce(r.ended_at, now())) - v.ts) AS held
    FROM ts.process_value v
    LEFT JOIN mes.sample_quality q ON q.code = v.quality
    WHERE v.signal_id = s.id AND v.ts >= r.started_at AND v.ts < coalesce(r.ended_at, now())
) pv ON true
WHERE r.id = ANY(:runs)
GROUP BY r.id, s.id, s.low_limit, s.high_limit
ON CONFLICT (run_id, signal_id) DO UPDATE SET
    samples = excluded.samples, min_value = excluded.min_value,
    max_value = excluded.max_value, mean_value = excluded.mean_value,
    samples_out_of_limits = excluded.samples_out_of_limits,
    seconds_out_of_limits = excluded.seconds_out_of_limits,
    bad_quality_seconds = excluded.bad_quality_seconds, low_limit = excluded.low_limit,
    high_limit = excluded.high_limit, computed_at = excluded.computed_at
""")

# Runs of the machine overlapping the window; those inside it, ended, with an envelope
# against today's limits are judged by the envelope, the others from the samples.
EXPOSED_RUNS = text("""
WITH candidate AS (
    SELECT r.id, r.status, r.started_at, coalesce(r.ended_at, now()) AS ended_at
    FROM mes.operation_run r
    WHERE r.equipment_id = :machine AND r.started_at < :until
      AND coalesce(r.ended_at, 'infinity') > :since
), judged AS (
    SELECT c.*, e.samples_out_of_limits, e.seconds_out_of_limits, e.min_value, e.max_value
    FROM candidate c
    LEFT JOIN mes.run_signal_envelope e
        ON e.run_id = c.id AND e.signal_id = :signal AND c.status <> 'running'
       AND c.started_at >= :since AND c.ended_at <= :until
       AND e.low_limit IS NOT DISTINCT FROM :low AND e.high_limit IS NOT DISTINCT FROM :high
)
SELECT id, 'envelope' AS judged_by FROM judged WHERE samples_out_of_limits > 0
UNION ALL
SELECT j.id, 'samples' FROM judged j
WHERE j.samples_out_of_limits IS NULL AND EXISTS (
    SELECT 1 FROM ts.process_value v
    WHERE v.signal_id = :signal
      AND v.ts >= greatest(j.started_at, :since) AND v.ts < least(j.ended_at, :until)
      AND (v.value < :low OR v.value > :high)
      AND v.quality NOT IN (SELECT code FROM mes.sample_quality WHERE category = 'bad'))
""")
RUN_DETAILS = text("""
SELECT r.id AS run_id, wo.code AS order_id, ro.code AS operation, e.code AS machine,
       p.badge AS operator, r.started_at, r.ended_at, r.status
FROM mes.operation_run r
JOIN mes.work_order wo ON wo.id = r.work_order_id
JOIN mes.routing_operation ro ON ro.id = r.operation_id
JOIN mes.equipment e ON e.id = r.equipment_id
JOIN mes.person p ON p.id = r.operator_id
WHERE r.id = ANY(:runs) ORDER BY r.started_at
""")
MADE_LOTS = text("""
SELECT l.id, l.code, m.code AS material, m.kind, l.status, l.produced_by_run_id AS run_id
FROM mes.material_lot l JOIN mes.material_definition m ON m.id = l.material_id
WHERE l.produced_by_run_id = ANY(:runs) ORDER BY l.code
""")
# Every lot made from the exposed lots, with which exposed lot it contains.
DOWNSTREAM = text("""
WITH RECURSIVE down AS (
    SELECT g.child_lot_id AS lot_id, g.parent_lot_id AS source_id
    FROM mes.genealogy_link g WHERE g.parent_lot_id = ANY(:lots)
  UNION
    SELECT g.child_lot_id, d.source_id
    FROM down d JOIN mes.genealogy_link g ON g.parent_lot_id = d.lot_id
)
SELECT l.code, m.code AS material, m.kind, l.status,
       array_agg(DISTINCT s.code ORDER BY s.code) AS contains
FROM down d
JOIN mes.material_lot l ON l.id = d.lot_id
JOIN mes.material_lot s ON s.id = d.source_id
JOIN mes.material_definition m ON m.id = l.material_id
WHERE l.id <> ALL(:lots)
GROUP BY l.code, m.code, m.kind, l.status
ORDER BY l.code
""")
HOLDABLE = ("available", "quarantined")


@dataclass(frozen=True)
class ExposedRun:
    run_id: int
    order_id: str
    operation: str
    machine: str
    operator: str
    started_at: dt.datetime
    ended_at: dt.datetime | None
    status: str
    judged_by: str  # "envelope" (stored) or "samples" (read from the hypertable)


@dataclass(frozen=True)
class ExposedLot:
    code: str
    material: str
    finished: bool  # a product (material kind 'product')
    status: str
    run_id: int | None = None  # the exposed run that made it
    contains: tuple[str, ...] = ()  # for a downstream lot: the exposed lots in it


@dataclass(frozen=True)
class Exposure:
    signal: str
    low_limit: float | None
    high_limit: float | None
    since: dt.datetime | None
    until: dt.datetime | None
    runs: tuple[ExposedRun, ...]
    made: tuple[ExposedLot, ...]
    downstream: tuple[ExposedLot, ...]
    held: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        def moment(value: dt.datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {"signal": self.signal, "low_limit": self.low_limit,
                "high_limit": self.high_limit, "from": moment(self.since),
                "to": moment(self.until),
                "runs": [{**asdict(r), "started_at": moment(r.started_at),
                          "ended_at": moment(r.ended_at)} for r in self.runs],
                "made": [asdict(lot) for lot in self.made],
                "downstream": [asdict(lot) for lot in self.downstream],
                "held": list(self.held)}


def record_envelopes(session: Session, run_ids: Sequence[int]) -> None:
    """Store (or refresh) the envelope of every process value of each run's machine over
    the run; a running run's so far."""
    if run_ids:
        session.execute(RECORD_ENVELOPES, {"runs": list(run_ids)})


def process_signal(session: Session, code: str) -> Signal:
    signal = by_code(session, Signal, code, what="signal")
    if signal.kind != "process_value":
        raise RuleViolation(f"signal {code} is a {signal.kind} signal, not a process value")
    if signal.low_limit is None and signal.high_limit is None:
        raise RuleViolation(f"signal {code} has no limits in the plant file: nothing can be "
                            "out of them")
    return signal


def exposed_run_ids(session: Session, signal: Signal, since: dt.datetime | None = None,
                    until: dt.datetime | None = None) -> dict[int, str]:
    """The runs of the signal's machine during which it was out of its limits (within the
    window), each with what judged it: 'envelope' or 'samples'."""
    rows = session.execute(EXPOSED_RUNS, {
        "machine": signal.equipment_id, "signal": signal.id,
        "low": signal.low_limit if signal.low_limit is not None else float("-inf"),
        "high": signal.high_limit if signal.high_limit is not None else float("inf"),
        "since": since or dt.datetime.min.replace(tzinfo=dt.UTC),
        "until": until or dt.datetime.max.replace(tzinfo=dt.UTC)}).all()
    return {run_id: judged_by for run_id, judged_by in rows}


def exposed_lots(session: Session, signal_code: str, since: dt.datetime | None = None,
                 until: dt.datetime | None = None, hold_by: int | None = None) -> Exposure:
    """Every lot made while `signal_code` was out of its limits, and every lot made from
    one of them since; with `hold_by` (a person's id), those still available are put on
    hold."""
    if since and until and until <= since:
        raise RuleViolation("--to must be after --from")
    signal = process_signal(session, signal_code)
    judged = exposed_run_ids(session, signal, since, until)
    runs = tuple(ExposedRun(**row, judged_by=judged[row["run_id"]]) for row in
                 session.execute(RUN_DETAILS, {"runs": list(judged)}).mappings())
    made_rows = session.execute(MADE_LOTS, {"runs": list(judged)}).mappings().all()
    made = tuple(ExposedLot(row["code"], row["material"], row["kind"] == "product",
                            row["status"], row["run_id"]) for row in made_rows)
    downstream = tuple(
        ExposedLot(row["code"], row["material"], row["kind"] == "product", row["status"],
                   contains=tuple(row["contains"]))
        for row in session.execute(DOWNSTREAM, {"lots": [r["id"] for r in made_rows]})
        .mappings())
    held: list[str] = []
    if hold_by is not None:
        for lot in (*made, *downstream):
            if lot.status in HOLDABLE:
                lots.set_status(session, lot.code, "on_hold", hold_by)
                held.append(lot.code)
    return Exposure(signal.code, signal.low_limit, signal.high_limit, since, until, runs,
                    made, downstream, tuple(held))


def render(exposure: Exposure) -> str:
    limits = f"[{exposure.low_limit}, {exposure.high_limit}]"
    window = ""
    if exposure.since or exposure.until:
        window = (f" from {exposure.since.isoformat() if exposure.since else 'the start'}"
                  f" to {exposure.until.isoformat() if exposure.until else 'now'}")
    lines = [f"{exposure.signal} out of its limits {limits}{window}: "
             f"{len(exposure.runs)} runs, {len(exposure.made)} lots made, "
             f"{len(exposure.downstream)} lots made from them"]
    for run in exposure.runs:
        end = run.ended_at.isoformat() if run.ended_at else "running"
        lines.append(f"  run {run.run_id}: order {run.order_id}, operation {run.operation} "
                     f"on {run.machine}, operator {run.operator}, "
                     f"{run.started_at.isoformat()} to {end}")
    for lot in exposure.made:
        lines.append(f"  made {lot.code} ({lot.material}, {lot.status}) by run {lot.run_id}")
    for lot in exposure.downstream:
        finished = ", finished" if lot.finished else ""
        lines.append(f"  contains {', '.join(lot.contains)}: {lot.code} "
                     f"({lot.material}, {lot.status}{finished})")
    if exposure.held:
        lines.append(f"put on hold: {', '.join(exposure.held)}")
    return "\n".join(lines)
