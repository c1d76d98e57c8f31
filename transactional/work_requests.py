"""Work requests to the maintenance system (CMMS): the triggers, the request with its
production context, one open request per machine and cause, and the CMMS's status back.

Reads derived tables the pipelines write (stops, KPIs) and condition events; delivering the
requests (outbox folder, HTTP) is `transactional.cmms_delivery`. The caller owns the
transaction.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

from sqlalchemy import RowMapping, select
from sqlalchemy.orm import Session

from transactional import cmms_queries as q
from transactional.errors import FileProblems
from transactional.files import read_text
from transactional.models import Equipment, WorkRequest, WorkRequestCause, WorkRequestStatus
from transactional.permissions import Action, require

DEFAULT_SIGNAL_WINDOW = dt.timedelta(minutes=15)
# An order due within this long (or overdue) when the machine stops makes it urgent.
DUE_SOON = dt.timedelta(hours=24)
CAUSES: tuple[str, ...] = get_args(WorkRequestCause)
STATUSES: tuple[str, ...] = get_args(WorkRequestStatus)
CLOSED = ("closed", "cancelled")


@dataclass(frozen=True)
class TriggerEvent:
    """One event that calls for maintenance: the machine, the cause, when, and what."""

    equipment_id: int
    cause: str
    at: dt.datetime
    description: str
    faults: tuple[dict[str, Any], ...] = ()
    # Seconds the machine stood still (a stop), for the parts lost.
    stop_seconds: float | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class EvaluationReport:
    opened: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{len(self.opened)} work requests opened, {len(self.updated)} updated"
                + (f": {', '.join(self.opened + self.updated)}"
                   if self.opened or self.updated else ""))


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.astimezone(dt.UTC).isoformat()


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def _fault(row: RowMapping) -> dict[str, Any]:
    return {"code": row["reason_code"], "reason": row["reason"], "text": row["reason_name"],
            "at": _iso(row["at"])}


# --- triggers -----------------------------------------------------------------------------

def trigger_events(session: Session, machine: RowMapping, since: dt.datetime,
                   at: dt.datetime) -> list[TriggerEvent]:
    """Every event of one machine in (since, at] its thresholds (a THRESHOLDS row) call
    for, in time order."""
    machine_id = machine["equipment_id"]
    code = machine["machine"]
    params = {"machine": machine_id, "since": since, "at": at}
    events: list[TriggerEvent] = []
    if machine["long_stop_seconds"] is not None:
        for row in session.execute(q.LONG_STOPS, {**params, "seconds":
                                                  machine["long_stop_seconds"]}).mappings():
            what = f"fault {row['reason_code']}" if row["reason_code"] is not None else "stop"
            text = f" ({row['reason_name']})" if row["reason_name"] else ""
            going_on = "" if row["ended_at"] else ", still stopped"
            events.append(TriggerEvent(
                machine_id, "long_stop", row["at"],
                f"{code}: unplanned stop of {_minutes(row['seconds'])}{going_on}, "
                f"{what}{text}",
                faults=(_fault(row),) if row["reason_code"] is not None else (),
                stop_seconds=row["seconds"],
                detail={"stop": {"started_at": _iso(row["at"]), "ended_at": _iso(row["ended_at"]),
                                 "duration_seconds": row["seconds"]},
                        "threshold_seconds": machine["long_stop_seconds"]}))
    if machine["fault_count"] is not None and machine["fault_window_seconds"] is not None:
        window = dt.timedelta(seconds=machine["fault_window_seconds"])
        count = machine["fault_count"]
        faults = session.execute(q.FAULTS, {**params, "since": since - window}).mappings().all()
        for last, row in enumerate(faults):
            # The faults within the window that ends at this one.
            recent = [f for f in faults[:last + 1] if f["at"] > row["at"] - window]
            if len(recent) < count or row["at"] <= since:
                continue
            events.append(TriggerEvent(
                machine_id, "repeated_faults", row["at"],
                f"{code}: {len(recent)} faults within {_minutes(window.total_seconds())} "
                f"(codes {', '.join(str(f['reason_code']) for f in recent)})",
                faults=tuple(_fault(f) for f in recent),
                stop_seconds=sum(f["seconds"] for f in recent),
                detail={"fault_count": len(recent), "threshold_count": count,
                        "window_seconds": window.total_seconds()}))
    if machine["mtbf_below_seconds"] is not None:
        for row in session.execute(q.LOW_MTBF, {**params, "limit":
                                                machine["mtbf_below_seconds"]}).mappings():
            events.append(TriggerEvent(
                machine_id, "low_mtbf", row["at"],
                f"{code}: MTBF {_minutes(row['mtbf_seconds'])} on the day from "
                f"{row['at'].isoformat()}, below {_minutes(machine['mtbf_below_seconds'])} "
                f"({row['failure_count']} failures)",
                detail={"mtbf_seconds": row["mtbf_seconds"],
                        "failure_count": row["failure_count"],
                        "period_start": _iso(row["at"]), "period_end": _iso(row["period_end"]),
                        "threshold_seconds": machine["mtbf_below_seconds"]}))
    for row in session.execute(q.CONDITION_EVENTS, params).mappings():
        events.append(TriggerEvent(
            machine_id, "process_limit", row["at"], f"{code}: {row['signal']}: {row['detail']}",
            detail={"signal": row["signal"], "rule": row["rule"], "value": row["value"]}))
    if machine["nonconformance"]:
        for row in session.execute(q.NONCONFORMANCES, params).mappings():
            events.append(TriggerEvent(
                machine_id, "nonconformance", row["at"],
                f"{code}: nonconformance {row['code']}: {row['characteristic']} "
                f"{row['measured']:g} outside {row['lower_spec']:g}..{row['upper_spec']:g}",
                detail={"nonconformance": row["code"], "characteristic": row["characteristic"],
                        "measured": row["measured"], "lower_spec": row["lower_spec"],
                        "upper_spec": row["upper_spec"]}))
    return sorted(events, key=lambda event: event.at)


# --- the request ------------------------------------------------------------------------------

def priority_of(*, bottleneck: bool, due_at: dt.datetime | None, running: bool,
                at: dt.datetime) -> tuple[int, str]:
    """1 (most urgent) to 4 from production impact, and why."""
    due_soon = due_at is not None and due_at - at <= DUE_SOON
    reasons = []
    if bottleneck:
        reasons.append("the machine is its line's bottleneck")
    if due_soon:
        assert due_at is not None
        reasons.append(f"the running order is due {_iso(due_at)}")
    if bottleneck and due_soon:
        return 1, " and ".join(reasons)
    if reasons:
        return 2, reasons[0]
    if running:
        return 3, "an order is running on the machine"
    return 4, "no order running on the machine"


def build_payload(session: Session, machine: RowMapping, event: TriggerEvent, *,
                  code: str, bottlenecks: set[int], occurrences: int,
                  first_event_at: dt.datetime) -> tuple[dict[str, Any], int]:
    """The request as the CMMS receives it (docs/erp-and-cmms.md), and its priority."""
    machine_id = machine["equipment_id"]
    run = session.execute(q.RUN_AT, {"machine": machine_id, "at": event.at}).mappings().first()
    cycle = run["ideal_cycle_seconds"] if run is not None else None
    if cycle is None:
        # As the KPIs do: without a run, the machine's only ideal cycle time, if it has one.
        times = session.scalars(q.CYCLE_TIMES, {"machine": machine_id}).all()
        cycle = times[0] if len(times) == 1 else None
    parts_lost = (round(event.stop_seconds / cycle, 1)
                  if event.stop_seconds is not None and cycle else None)
    window = dt.timedelta(seconds=machine["signal_window_seconds"]
                          or DEFAULT_SIGNAL_WINDOW.total_seconds())
    signals = [
        {"signal": s["code"], "unit": s["unit"], "low_limit": s["low_limit"],
         "high_limit": s["high_limit"], "samples": s["samples"], "min": s["min"],
         "max": s["max"], "mean": s["mean"]}
        for s in session.execute(q.SIGNALS_AROUND, {"machine": machine_id,
                                                    "since": event.at - window,
                                                    "at": event.at}).mappings()]
    bottleneck = machine_id in bottlenecks
    priority, why = priority_of(bottleneck=bottleneck, due_at=run["due_at"] if run else None,
                                running=run is not None, at=event.at)
    production = None if run is None else {
        "work_order": run["work_order"], "due_at": _iso(run["due_at"]),
        "operation": run["operation"], "operation_code": run["operation_code"],
        "run": run["run_id"], "material": run["material"], "lots": list(run["lots"]),
        "operator": {"badge": run["operator_badge"], "name": run["operator_name"]}}
    payload = {
        "request": code,
        "cause": event.cause,
        "description": event.description,
        "equipment": {"code": machine["machine"], "name": machine["machine_name"],
                      "line": machine["line"], "bottleneck": bottleneck},
        "event_at": _iso(first_event_at),
        "last_event_at": _iso(event.at),
        "occurrences": occurrences,
        "priority": priority,
        "priority_reason": why,
        "faults": list(event.faults),
        "production": production,
        "ideal_cycle_seconds": cycle,
        "parts_lost": parts_lost,
        "signals": signals,
        "signal_window": {"from": _iso(event.at - window), "to": _iso(event.at)},
        "detail": dict(event.detail),
    }
    return payload, priority


def evaluate(session: Session, *, at: dt.datetime,
             lookback: dt.timedelta = dt.timedelta(hours=24)) -> EvaluationReport:
    """Open or update work requests for every trigger event in (at - lookback, at].

    One request not closed per machine and cause: a later event updates it (its payload,
    occurrences and last event) instead of opening another. Events up to the newest one a
    request of the machine and cause stood for are not counted again, so evaluating the
    same window twice changes nothing, and after the CMMS closed a request only a newer
    event opens the next one. An updated request is sent again (sent_at cleared)."""
    session.execute(q.EVALUATION_LOCK)
    since = at - lookback
    bottlenecks = set(session.scalars(q.BOTTLENECKS).all())
    report = EvaluationReport()
    for machine in session.execute(q.THRESHOLDS).mappings().all():
        for event in trigger_events(session, machine, since, at):
            _apply(session, machine, event, bottlenecks, report)
    session.flush()
    return report


def _apply(session: Session, machine: RowMapping, event: TriggerEvent, bottlenecks: set[int],
           report: EvaluationReport) -> None:
    key = {"machine": event.equipment_id, "cause": event.cause}
    handled = session.scalar(q.HANDLED_UNTIL, key)
    if handled is not None and event.at <= handled:
        return
    open_id = session.scalar(q.OPEN_REQUEST, key)
    if open_id is None:
        request_id = int(session.scalar(q.NEXT_REQUEST_ID) or 0)
        code = f"WR-{request_id:06d}"
        payload, priority = build_payload(session, machine, event, code=code,
                                          bottlenecks=bottlenecks, occurrences=1,
                                          first_event_at=event.at)
        session.add(WorkRequest(id=request_id, code=code, equipment_id=event.equipment_id,
                                cause=event.cause, priority=priority, event_at=event.at,
                                last_event_at=event.at, payload=payload))
        session.flush()
        report.opened.append(code)
        return
    request = session.get_one(WorkRequest, open_id)
    payload, priority = build_payload(session, machine, event, code=request.code,
                                      bottlenecks=bottlenecks,
                                      occurrences=request.occurrences + 1,
                                      first_event_at=request.event_at)
    request.occurrences += 1
    request.last_event_at = event.at
    request.priority = min(request.priority, priority)
    payload["priority"] = request.priority
    request.payload = payload
    request.sent_at = None
    session.flush()
    if request.code not in report.opened + report.updated:
        report.updated.append(request.code)


# --- listing ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class RequestView:
    code: str
    machine: str
    cause: str
    status: str
    priority: int
    event_at: dt.datetime
    last_event_at: dt.datetime
    occurrences: int
    external_id: str | None
    sent_at: dt.datetime | None
    send_attempts: int
    last_error: str | None
    description: str

    def as_json(self) -> dict[str, Any]:
        return {"request": self.code, "machine": self.machine, "cause": self.cause,
                "status": self.status, "priority": self.priority,
                "event_at": _iso(self.event_at), "last_event_at": _iso(self.last_event_at),
                "occurrences": self.occurrences, "external_id": self.external_id,
                "sent_at": _iso(self.sent_at), "send_attempts": self.send_attempts,
                "last_error": self.last_error, "description": self.description}


def list_requests(session: Session, *, only_open: bool = False) -> list[RequestView]:
    """Work requests, the newest first; `only_open`: those not closed or cancelled."""
    query = (select(WorkRequest, Equipment.code)
             .join(Equipment, Equipment.id == WorkRequest.equipment_id)
             .order_by(WorkRequest.opened_at.desc(), WorkRequest.id.desc()))
    if only_open:
        query = query.where(WorkRequest.status.not_in(CLOSED))
    return [RequestView(r.code, machine, r.cause, r.status, r.priority, r.event_at,
                        r.last_event_at, r.occurrences, r.external_id, r.sent_at,
                        r.send_attempts, r.last_error, str(r.payload.get("description", "")))
            for r, machine in session.execute(query)]


# --- status from the CMMS -----------------------------------------------------------------

class StatusFileError(FileProblems):
    """A CMMS status file that cannot be imported; lists every problem found."""

    refusal = "work request statuses rejected, nothing was written"


STATUS_FIELDS = ("request", "external_id", "status")


@dataclass(frozen=True)
class StatusRecord:
    request: str | None
    external_id: str | None
    status: str
    where: str


@dataclass
class StatusReport:
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return f"{len(self.changed)} work requests changed, {len(self.unchanged)} unchanged"


def _entries(path: Path) -> Iterator[tuple[str, Mapping[str, Any]]]:
    suffix = path.suffix.lower()
    content = read_text(path, StatusFileError, encoding="utf-8-sig")
    if suffix == ".json":
        try:
            document = json.loads(content)
        except json.JSONDecodeError as error:
            raise StatusFileError(path, [f"not valid JSON: line {error.lineno} column "
                                         f"{error.colno}: {error.msg}"]) from None
        if not isinstance(document, list):
            raise StatusFileError(path, ["expected a JSON list of objects, each with "
                                         "request (or external_id) and status"])
        for number, entry in enumerate(document, start=1):
            yield f"entry {number}", entry if isinstance(entry, dict) else {"": entry}
    elif suffix == ".csv":
        reader = csv.DictReader(io.StringIO(content, newline=""))
        if not reader.fieldnames:
            raise StatusFileError(path, [f"no header row; expected {','.join(STATUS_FIELDS)}"])
        for row in reader:
            yield f"row {reader.line_num}", {k: v for k, v in row.items() if v not in (None, "")}
    else:
        raise StatusFileError(path, [f"unknown format {suffix or '(no extension)'!r}; give a "
                                     ".json or .csv file"])


def read_status_file(path: Path) -> list[StatusRecord]:
    """Read and check a status file from the CMMS without touching the database."""
    records: list[StatusRecord] = []
    problems: list[str] = []
    for where, entry in _entries(path):
        unknown = sorted(set(entry) - set(STATUS_FIELDS))
        if unknown:
            problems.append(f"{where}: unknown field {unknown[0]!r} (expected "
                            f"{', '.join(STATUS_FIELDS)})")
            continue
        request, external_id, status = (entry.get(name) for name in STATUS_FIELDS)
        if not all(isinstance(v, str | None) for v in (request, external_id, status)):
            problems.append(f"{where}: request, external_id and status must be text")
            continue
        if not request and not external_id:
            problems.append(f"{where}: give the request's code (request) or the CMMS's "
                            "number (external_id)")
            continue
        if status not in STATUSES:
            problems.append(f"{where}: status {status!r} is not one of {', '.join(STATUSES)}")
            continue
        records.append(StatusRecord(request or None, external_id or None, str(status), where))
    if problems:
        raise StatusFileError(path, problems)
    return records


def import_statuses(session: Session, records: Sequence[StatusRecord],
                    source: Path | str) -> StatusReport:
    """Apply the CMMS's statuses (and its own numbers) to the requests; all or nothing.

    A request is found by its code, else by the CMMS number a former import gave it. A
    closed or cancelled request stays so (a later event opens a new one)."""
    require(session, Action.IMPORT_WORK_REQUEST_STATUS)
    session.execute(q.STATUS_IMPORT_LOCK)
    by_code = {r.code: r for r in session.scalars(
        select(WorkRequest).where(WorkRequest.code.in_(
            [r.request for r in records if r.request])).with_for_update())}
    by_external = {r.external_id: r for r in session.scalars(
        select(WorkRequest).where(WorkRequest.external_id.in_(
            [r.external_id for r in records if r.external_id])).with_for_update())}
    problems: list[str] = []
    plan: list[tuple[StatusRecord, WorkRequest]] = []
    seen: dict[str, str] = {}
    for record in records:
        request = (by_code.get(record.request) if record.request
                   else by_external.get(record.external_id or ""))
        label = f"{record.where} ({record.request or record.external_id})"
        if request is None:
            what = (f"no work request {record.request!r}" if record.request
                    else f"no work request with CMMS number {record.external_id!r}")
            problems.append(f"{label}: {what}")
            continue
        if request.code in seen:
            problems.append(f"{label}: {request.code} is also in {seen[request.code]}")
            continue
        seen[request.code] = record.where
        if request.status in CLOSED and record.status != request.status:
            problems.append(f"{label}: {request.code} is {request.status}; it cannot become "
                            f"{record.status} (a new event opens a new request)")
            continue
        plan.append((record, request))
    if problems:
        raise StatusFileError(source, problems)
    report = StatusReport()
    for record, request in plan:
        changed = False
        if record.status != request.status:
            request.status = record.status  # type: ignore[assignment]
            if record.status in CLOSED:
                request.closed_at = dt.datetime.now(dt.UTC)
            changed = True
        if record.external_id and record.external_id != request.external_id:
            request.external_id = record.external_id
            changed = True
        (report.changed if changed else report.unchanged).append(request.code)
    session.flush()
    return report


def import_status_file(session: Session, path: Path) -> StatusReport:
    """Read, check and apply a CMMS status file; nothing is written if anything is wrong."""
    return import_statuses(session, read_status_file(path), path)
