"""Work requests to the CMMS against hand-built histories (rows written straight into the
derived tables and hypertables): each trigger fires and does not fire, the request carries
its production context exactly, no storms, delivery to an outbox and by POST, the CMMS's
status back; condition monitoring rules each triggered and not triggered."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from tests.conftest import SAMPLE_PLANT
from tests.transactional.shop_floor import ORDER, ShopFloor, add_lot, person_id
from transactional.audit import acting
from transactional.cmms_delivery import Delivery, deliver
from transactional.condition import Sample, monitor, off_baseline, out_of_limits, too_fast
from transactional.errors import NotPermitted
from transactional.models import (
    AuditLog,
    ConditionRule,
    Equipment,
    InspectionPlan,
    InspectionResult,
    Nonconformance,
    OperationRun,
    ProcessEvent,
    Signal,
    WorkOrder,
    WorkRequest,
    WorkRequestTrigger,
)
from transactional.plant import load_plant
from transactional.plant_file import PlantFileError, read_plant_file
from transactional.work_requests import (
    StatusFileError,
    evaluate,
    import_status_file,
    list_requests,
    priority_of,
)

DAY = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
THRESHOLDS = """
[work_requests]
long_stop_minutes = 30
fault_count = 3
fault_window_minutes = 60
mtbf_below_minutes = 120
out_of_limits_minutes = 10
nonconformance = true
signal_minutes = 15

[[work_requests.overrides]]
machine = "DEBURR-1"
long_stop_minutes = 5
"""
VIBRATION = ('{ code = "PRESS-1.vibration", name = "Frame vibration", kind = "process_value", '
             'unit = "mm/s", low_limit = 0.0, high_limit = 25.0')
CONDITION = ", condition = { max_rate_per_minute = 10.0, baseline_minutes = 10, " \
            "max_deviation = 5.0 }"


@contextmanager
def tx(session: Session) -> Iterator[None]:
    """One committed transaction, whatever reads autobegan before it."""
    if session.in_transaction():
        session.commit()
    with session.begin():
        yield


def at(hour: int, minute: int = 0) -> dt.datetime:
    return DAY.replace(hour=hour, minute=minute)


def plant_file(folder: Path, extra: str = THRESHOLDS, condition: str = CONDITION) -> Path:
    content = SAMPLE_PLANT.read_text()
    assert VIBRATION in content
    path = folder / "plant.toml"
    path.write_text(content.replace(VIBRATION, VIBRATION + condition) + extra)
    return path


@pytest.fixture
def plant(session: Session, floor: ShopFloor, tmp_path: Path) -> Session:
    """The shop floor with the thresholds above and a condition rule on PRESS-1.vibration."""
    with tx(session):
        acting(session, "mes-admin")
        load_plant(session, read_plant_file(plant_file(tmp_path)))
    return session


def machine(session: Session, code: str) -> int:
    return session.scalars(select(Equipment.id).where(Equipment.code == code)).one()


def signal(session: Session, code: str) -> int:
    return session.scalars(select(Signal.id).where(Signal.code == code)).one()


def add_run(session: Session, floor: ShopFloor, machine_code: str, start: dt.datetime,
            end: dt.datetime | None, due: dt.datetime | None = None) -> int:
    with tx(session):
        acting(session, "mes-admin")
        order = session.scalars(select(WorkOrder).where(WorkOrder.code == ORDER)).one()
        order.due_at = due
        run = OperationRun(work_order_id=order.id, operation_id=floor.stamping_id,
                           equipment_id=machine(session, machine_code),
                           operator_id=person_id(session, "1001"), planned_quantity=100,
                           status="completed" if end else "running", started_at=start,
                           ended_at=end)
        session.add(run)
        session.flush()
        return run.id


def add_stop(session: Session, machine_code: str, start: dt.datetime, minutes: float,
             fault: int | None = 3, reason: str | None = "BREAKDOWN-MECH",
             planned: bool = False) -> None:
    with tx(session):
        session.execute(text("""
            INSERT INTO derived.downtime_event (equipment_id, started_at, ended_at,
                duration_seconds, state, category, reason_code, downtime_reason_id,
                reason_source, planned, micro_stop)
            VALUES (:machine, :start, :end, :seconds, 5, 'unplanned_stop', :fault,
                    (SELECT id FROM mes.downtime_reason WHERE code = :reason),
                    :source, :planned, :micro)"""),
            {"machine": machine(session, machine_code), "start": start,
             "end": start + dt.timedelta(minutes=minutes), "seconds": minutes * 60,
             "fault": fault, "reason": reason, "planned": planned, "micro": minutes < 2,
             "source": "fault_code" if reason else "unclassified"})


def add_kpi(session: Session, machine_code: str, mtbf_seconds: float) -> None:
    with tx(session):
        session.execute(text("""
            INSERT INTO derived.kpi (equipment_id, scope, period, period_start, period_end,
                planned_busy_seconds, actual_production_seconds, setup_seconds,
                unknown_seconds, produced_quantity, good_quantity, scrap_quantity,
                missing_ideal_cycle_time, failure_count, failure_seconds, mtbf_seconds)
            VALUES (:machine, 'machine', 'day', :start, :end, 57600, :apt, 0, 0, 100, 100,
                    0, false, 4, 1200, :mtbf)"""),
            {"machine": machine(session, machine_code), "start": DAY,
             "end": DAY + dt.timedelta(days=1), "apt": mtbf_seconds * 4, "mtbf": mtbf_seconds})


def add_values(session: Session, signal_code: str,
               samples: list[tuple[dt.datetime, float]]) -> None:
    with tx(session):
        signal_id = signal(session, signal_code)
        for ts, value in samples:
            session.execute(text("INSERT INTO ts.process_value (ts, signal_id, value) "
                                 "VALUES (:ts, :signal, :value)"),
                            {"ts": ts, "signal": signal_id, "value": value})


def run_evaluation(session: Session, when: dt.datetime) -> list[str]:
    with tx(session):
        acting(session, "mes-admin")
        report = evaluate(session, at=when)
    return report.opened + report.updated


def requests(session: Session, cause: str | None = None) -> list[WorkRequest]:
    with tx(session):
        query = select(WorkRequest).order_by(WorkRequest.id).execution_options(
            populate_existing=True)
        if cause is not None:
            query = query.where(WorkRequest.cause == cause)
        return list(session.scalars(query))


# --- thresholds in the plant file ---------------------------------------------------------

def test_thresholds_and_condition_rules_are_loaded_and_reloaded_unchanged(
        plant: Session, tmp_path: Path) -> None:
    with tx(plant):
        rows = plant.scalars(select(WorkRequestTrigger)).all()
        default = next(r for r in rows if r.equipment_id is None)
        assert default.long_stop_seconds == 1800 and default.fault_count == 3
        assert default.nonconformance is True and default.signal_window_seconds == 900
        override = next(r for r in rows if r.equipment_id is not None)
        assert override.equipment_id == machine(plant, "DEBURR-1")
        assert override.long_stop_seconds == 300 and override.fault_count is None
        rule = plant.scalars(select(ConditionRule)).one()
        assert (rule.max_rate_per_minute, rule.baseline_minutes, rule.max_deviation) == (
            10.0, 10.0, 5.0)
        acting(plant, "mes-admin")
        report = load_plant(plant, read_plant_file(plant_file(tmp_path)))
        assert not report.changed
        # Without the section and the rule, they are gone.
        report = load_plant(plant, read_plant_file(plant_file(tmp_path, extra="",
                                                              condition="")))
        assert report.deleted == {"work_request_trigger": 2, "condition_rule": 1}


@pytest.mark.parametrize(("extra", "condition", "message"), [
    ('[work_requests]\nlong_stop_minutes = 0\n', "",
     "work_requests.long_stop_minutes"),
    ('[work_requests]\nfault_count = 3\n', "", "fault_count and fault_window_minutes"),
    ('[work_requests]\nlong_stop = 30\n', "", "work_requests.long_stop"),
    ('[work_requests]\n[[work_requests.overrides]]\nmachine = "PRESS-9"\n', "",
     "work_requests.overrides[0].machine: unknown machine 'PRESS-9'"),
    ('[work_requests]\n[[work_requests.overrides]]\nlong_stop_minutes = 5\n', "",
     "name either a machine or a state_model"),
    ("", ", condition = { baseline_minutes = 10 }", "max_deviation go together"),
    ("", ", condition = { max_rate = 1.0 }", "condition.max_rate"),
])
def test_bad_thresholds_are_refused_naming_the_key(tmp_path: Path, extra: str, condition: str,
                                                   message: str) -> None:
    with pytest.raises(PlantFileError) as refused:
        read_plant_file(plant_file(tmp_path, extra=extra, condition=condition))
    assert message in str(refused.value)


# --- triggers ------------------------------------------------------------------------------

def test_a_long_stop_opens_a_request_with_its_production_context(
        plant: Session, floor: ShopFloor) -> None:
    run = add_run(plant, floor, "PRESS-1", at(7), None, due=at(18))
    add_lot(plant, "LOT-A", run, 50)
    add_stop(plant, "PRESS-1", at(8), 40)
    add_stop(plant, "PRESS-2", at(8), 20)                     # shorter than 30 min
    add_stop(plant, "PRESS-2", at(8, 30), 50, planned=True)   # planned: not a failure
    add_stop(plant, "DEBURR-1", at(8), 8, fault=None, reason=None)  # its own 5 min
    add_values(plant, "PRESS-1.temperature", [(at(7, 40), 20.0), (at(7, 50), 50.0),
                                               (at(7, 55), 60.0), (at(8), 70.0),
                                               (at(8, 1), 99.0)])

    # Machines in code order: DEBURR-1 first.
    assert run_evaluation(plant, at(9)) == ["WR-000001", "WR-000002"]

    deburr, press = requests(plant, "long_stop")
    assert (press.equipment_id, press.status, press.priority, press.event_at) == (
        machine(plant, "PRESS-1"), "open", 1, at(8))
    payload = press.payload
    assert payload["equipment"] == {"code": "PRESS-1", "name": "Press 1", "line": "L1",
                                    "bottleneck": True}
    assert payload["faults"] == [{"code": 3, "reason": "BREAKDOWN-MECH",
                                  "text": "Mechanical failure",
                                  "at": "2026-03-02T08:00:00+00:00"}]
    assert payload["production"] == {
        "work_order": ORDER, "due_at": "2026-03-02T18:00:00+00:00", "operation": 10,
        "operation_code": "10", "run": run, "material": "BRACKET-RAW", "lots": ["LOT-A"],
        "operator": {"badge": "1001", "name": payload["production"]["operator"]["name"]}}
    assert payload["production"]["operator"]["name"]
    assert payload["ideal_cycle_seconds"] == 2.0
    assert payload["parts_lost"] == 1200.0            # 40 min / 2 s per part
    temperature = next(s for s in payload["signals"] if s["signal"] == "PRESS-1.temperature")
    assert temperature == {"signal": "PRESS-1.temperature", "unit": "degC",
                           "low_limit": 10.0, "high_limit": 90.0, "samples": 3,
                           "min": 50.0, "max": 70.0, "mean": 60.0}
    assert payload["signal_window"] == {"from": "2026-03-02T07:45:00+00:00",
                                        "to": "2026-03-02T08:00:00+00:00"}
    assert payload["priority"] == 1 and "bottleneck" in payload["priority_reason"]
    assert payload["occurrences"] == 1 and payload["cause"] == "long_stop"

    assert deburr.equipment_id == machine(plant, "DEBURR-1")
    assert deburr.priority == 4 and deburr.payload["production"] is None
    assert deburr.payload["faults"] == []
    assert deburr.payload["equipment"]["bottleneck"] is False
    assert deburr.payload["parts_lost"] == 320.0       # 8 min / 1.5 s, its only cycle time


def test_priority_from_production_impact() -> None:
    due = at(20)
    assert priority_of(bottleneck=True, due_at=due, running=True, at=at(8))[0] == 1
    assert priority_of(bottleneck=True, due_at=None, running=True, at=at(8))[0] == 2
    assert priority_of(bottleneck=False, due_at=at(6), running=True, at=at(8))[0] == 2
    assert priority_of(bottleneck=False, due_at=DAY + dt.timedelta(days=3), running=True,
                       at=at(8))[0] == 3
    assert priority_of(bottleneck=False, due_at=None, running=False, at=at(8))[0] == 4


def test_a_repeated_trigger_updates_the_open_request_and_a_closed_one_stops_repeating(
        plant: Session, tmp_path: Path) -> None:
    add_stop(plant, "PRESS-1", at(8), 40)
    run_evaluation(plant, at(9))
    assert run_evaluation(plant, at(9)) == []           # the same window again: nothing
    with tx(plant):
        acting(plant, "mes-admin")
        plant.execute(text("UPDATE mes.work_request SET sent_at = now()"))
    add_stop(plant, "PRESS-1", at(10), 45)
    assert run_evaluation(plant, at(11)) == ["WR-000001"]
    (request,) = requests(plant)
    assert (request.occurrences, request.event_at, request.last_event_at) == (2, at(8), at(10))
    assert request.sent_at is None                     # updated: sent again
    assert request.payload["occurrences"] == 2
    assert request.payload["last_event_at"] == "2026-03-02T10:00:00+00:00"

    closing = tmp_path / "status.json"
    closing.write_text(json.dumps([{"request": "WR-000001", "status": "closed",
                                    "external_id": "CM-77"}]))
    with tx(plant):
        acting(plant, "5001")
        assert import_status_file(plant, closing).changed == ["WR-000001"]
    assert run_evaluation(plant, at(11, 30)) == []      # the old stops opened nothing
    add_stop(plant, "PRESS-1", at(12), 35)
    assert run_evaluation(plant, at(13)) == ["WR-000002"]
    first, second = requests(plant)
    assert (first.status, first.external_id, second.status) == ("closed", "CM-77", "open")
    assert first.closed_at is not None and second.event_at == at(12)


def test_repeated_faults_within_the_window(plant: Session) -> None:
    for minute, code in ((0, 9), (10, 10), (20, 9)):
        add_stop(plant, "WASH-1", at(8, minute), 1, fault=code, reason="BREAKDOWN-ELEC")
    for minute in (0, 10):                               # two only
        add_stop(plant, "PRESS-2", at(8, minute), 1)
    for hour in (5, 6, 7):                               # three, but an hour apart
        add_stop(plant, "DEBURR-1", at(hour), 1)
    run_evaluation(plant, at(9))
    (request,) = requests(plant, "repeated_faults")
    assert request.equipment_id == machine(plant, "WASH-1")
    assert request.event_at == at(8, 20)
    assert [f["code"] for f in request.payload["faults"]] == [9, 10, 9]
    assert {f["text"] for f in request.payload["faults"]} == {"Electrical failure"}
    assert request.payload["detail"]["fault_count"] == 3
    assert request.payload["parts_lost"] == 150.0        # 3 min / 1.2 s
    # A fourth fault updates it; no second request.
    add_stop(plant, "WASH-1", at(9, 5), 1, fault=11, reason="BREAKDOWN-ELEC")
    run_evaluation(plant, at(9, 30))
    (request,) = requests(plant, "repeated_faults")
    assert request.occurrences == 2
    assert [f["code"] for f in request.payload["faults"]] == [10, 9, 11]


def test_mtbf_below_its_limit(plant: Session) -> None:
    add_kpi(plant, "PRESS-1", 3600)
    add_kpi(plant, "PRESS-2", 10_000)
    run_evaluation(plant, at(23))
    (request,) = requests(plant, "low_mtbf")
    assert request.equipment_id == machine(plant, "PRESS-1")
    assert request.payload["detail"]["mtbf_seconds"] == 3600
    assert request.payload["detail"]["threshold_seconds"] == 7200


def test_a_nonconformance_naming_a_machine(plant: Session, floor: ShopFloor) -> None:
    run = add_run(plant, floor, "PRESS-2", at(7), None)
    with tx(plant):
        acting(plant, "mes-admin")
        plan = plant.scalars(select(InspectionPlan.id).where(
            InspectionPlan.characteristic == "hole diameter")).one()
        result = InspectionResult(run_id=run, plan_id=plan, sample_number=1, measured=10.3,
                                  within_spec=False, recorded_by=person_id(plant, "1001"),
                                  recorded_at=at(8))
        plant.add(result)
        plant.flush()
        order = plant.scalars(select(WorkOrder.id).where(WorkOrder.code == ORDER)).one()
        plant.add(Nonconformance(code="NC-1", opened_at=at(8), inspection_result_id=result.id,
                                 run_id=run, work_order_id=order,
                                 equipment_id=machine(plant, "PRESS-2"),
                                 operator_id=person_id(plant, "1001"),
                                 characteristic="hole diameter", measured=10.3,
                                 lower_spec=9.9, upper_spec=10.1))
    run_evaluation(plant, at(9))
    (request,) = requests(plant, "nonconformance")
    assert request.equipment_id == machine(plant, "PRESS-2")
    assert request.payload["detail"]["nonconformance"] == "NC-1"
    assert request.payload["production"]["run"] == run
    assert "hole diameter 10.3 outside 9.9..10.1" in request.payload["description"]


def test_nothing_fires_without_thresholds(session: Session, floor: ShopFloor) -> None:
    add_stop(session, "PRESS-1", at(8), 400)
    add_kpi(session, "PRESS-1", 60)
    assert run_evaluation(session, at(23)) == []


# --- condition monitoring -------------------------------------------------------------------

def samples(values: Sequence[float], start: dt.datetime = DAY) -> list[Sample]:
    return [Sample(start + dt.timedelta(minutes=i), v) for i, v in enumerate(values)]


def test_out_of_limits_for_longer_than_the_threshold() -> None:
    ten = dt.timedelta(minutes=10)
    long = samples([50] + [95] * 11 + [50])              # above 90 from 00:01 to 00:12
    (found,) = out_of_limits(long, 10, 90, ten, DAY + dt.timedelta(hours=1))
    assert (found.rule, found.at, found.value) == ("limits", DAY + dt.timedelta(minutes=1), 95)
    assert "above the high limit 90 for 11.0 min" in found.detail
    short = samples([50] + [95] * 5 + [50])
    assert list(out_of_limits(short, 10, 90, ten, DAY + dt.timedelta(hours=1))) == []
    going_on = samples([50, 5, 4, 3])                    # below 10 until `until`
    (found,) = out_of_limits(going_on, 10, 90, ten, DAY + dt.timedelta(minutes=20))
    assert found.value == 3 and "below the low limit 10 for 19.0 min" in found.detail


def test_rate_of_change() -> None:
    (found,) = too_fast(samples([5, 5, 5, 20, 35, 35]), 10)
    assert (found.rule, found.at, found.value) == (
        "rate_of_change", DAY + dt.timedelta(minutes=3), 20)   # one per stretch
    assert list(too_fast(samples([5, 10, 15, 20]), 10)) == []


def test_deviation_from_the_rolling_baseline() -> None:
    values = [5.0] * 12 + [11.0, 11.5, 5.0]
    (found,) = off_baseline(samples(values), dt.timedelta(minutes=10), 5.0, DAY)
    assert (found.rule, found.at, found.value) == (
        "baseline_deviation", DAY + dt.timedelta(minutes=12), 11.0)
    assert "+6 from the mean 5" in found.detail
    drift = [5.0 + 0.4 * i for i in range(30)]           # slow: the baseline follows
    assert list(off_baseline(samples(drift), dt.timedelta(minutes=10), 5.0, DAY)) == []


def test_condition_events_carry_the_run_and_lot_and_feed_the_process_limit_trigger(
        plant: Session, floor: ShopFloor) -> None:
    run = add_run(plant, floor, "PRESS-1", at(7), None)
    lot = add_lot(plant, "LOT-C", run, 10)
    add_values(plant, "PRESS-1.temperature",
               [(at(8, m), 95.0) for m in range(13)] + [(at(8, 13), 50.0)])
    add_values(plant, "PRESS-2.temperature",                 # out for 5 min only
               [(at(8, m), 95.0) for m in range(5)] + [(at(8, 5), 50.0)])
    add_values(plant, "PRESS-1.vibration",
               [(at(8, m), 5.0) for m in range(12)] + [(at(8, 12), 30.0)])
    with tx(plant):
        acting(plant, "mes-admin")
        assert monitor(plant, since=at(7), until=at(9)) == 4
        assert monitor(plant, since=at(7), until=at(9)) == 0    # found again: not stored
        events = plant.scalars(select(ProcessEvent).order_by(ProcessEvent.at,
                                                             ProcessEvent.rule)).all()
    order = plant.scalars(select(WorkOrder.id).where(WorkOrder.code == ORDER)).one()
    assert [(e.subject, e.rule, e.at) for e in events] == [
        ("signal:PRESS-1.temperature", "limits", at(8)),
        ("signal:PRESS-1.vibration", "baseline_deviation", at(8, 12)),
        ("signal:PRESS-1.vibration", "limits", at(8, 12)),
        ("signal:PRESS-1.vibration", "rate_of_change", at(8, 12)),
    ]
    assert {(e.kind, e.run_id, e.work_order_id, e.lot_id) for e in events} == {
        ("condition", run, order, lot)}
    run_evaluation(plant, at(9))
    (request,) = requests(plant, "process_limit")
    assert request.equipment_id == machine(plant, "PRESS-1")
    # Three findings at one moment are one occurrence.
    assert request.occurrences == 2 and request.event_at == at(8)
    assert request.payload["production"]["lots"] == ["LOT-C"]


# --- delivery ------------------------------------------------------------------------------

class CMMS:
    """A CMMS endpoint on 127.0.0.1 that refuses the first `failures` requests."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.received: list[dict[str, Any]] = []
        cmms = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if cmms.failures > 0:
                    cmms.failures -= 1
                    self.send_response(503)
                else:
                    cmms.received.append(json.loads(body))
                    self.send_response(201)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/work-requests"

    def __enter__(self) -> CMMS:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def open_request(plant: Session) -> Iterator[Session]:
    add_stop(plant, "PRESS-1", at(8), 40)
    run_evaluation(plant, at(9))
    yield plant


def send(session: Session, delivery: Delivery, waits: list[float]) -> Any:
    with tx(session):
        acting(session, "mes-admin")
        return deliver(session, delivery, sleep=waits.append)


def test_outbox_files_appear_whole(open_request: Session, tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    report = send(open_request, Delivery(outbox=outbox), [])
    assert report.written == ["WR-000001"]
    assert [p.name for p in outbox.iterdir()] == ["WR-000001.json"]
    document = json.loads((outbox / "WR-000001.json").read_text())
    assert (document["request"], document["status"], document["cause"]) == (
        "WR-000001", "open", "long_stop")
    (request,) = requests(open_request)
    assert request.sent_at is not None
    assert send(open_request, Delivery(outbox=outbox), []).written == []   # sent already


def test_post_retries_with_backoff_then_succeeds_when_the_cmms_is_back(
        open_request: Session, tmp_path: Path) -> None:
    waits: list[float] = []
    with CMMS(failures=3) as cmms:
        delivery = Delivery(url=cmms.url, attempts=2, backoff_seconds=0.5)
        report = send(open_request, delivery, waits)
        assert report.failed and report.sent == []
        (request,) = requests(open_request)
        assert (request.sent_at, request.send_attempts) == (None, 2)
        assert "503" in (request.last_error or "")
        assert waits == [0.5]
        report = send(open_request, delivery, waits)       # one more failure, then accepted
        assert report.sent == ["WR-000001"]
        assert waits == [0.5, 0.5]
        (request,) = requests(open_request)
        assert request.sent_at is not None and request.send_attempts == 4
        assert request.last_error is None
        (received,) = cmms.received
        assert received["request"] == "WR-000001"
        assert received["equipment"]["code"] == "PRESS-1"
    # Nobody listening: recorded, not raised.
    add_stop(open_request, "PRESS-1", at(10), 40)
    run_evaluation(open_request, at(11))
    report = send(open_request, Delivery(url=cmms.url, attempts=1), waits)
    assert list(report.failed) == ["WR-000001"]
    (request,) = requests(open_request)
    assert request.sent_at is None and "URLError" in (request.last_error or "")


# --- status from the CMMS -------------------------------------------------------------------

def test_status_import_is_all_or_nothing_audited_and_permitted(
        open_request: Session, tmp_path: Path) -> None:
    add_stop(open_request, "DEBURR-1", at(8), 10)
    run_evaluation(open_request, at(9))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"request": "WR-000001", "status": "acknowledged"},
                               {"request": "WR-000099", "status": "closed"},
                               {"request": "WR-000002", "status": "done"}]))
    with tx(open_request):
        acting(open_request, "5001")
        with pytest.raises(StatusFileError) as refused:
            import_status_file(open_request, bad)
    message = str(refused.value)
    assert "status 'done' is not one of" in message
    assert [r.status for r in requests(open_request)] == ["open", "open"]

    first = tmp_path / "first.csv"
    first.write_text("request,external_id,status\nWR-000001,CM-1,acknowledged\n"
                     "WR-000002,,in_progress\n")
    with tx(open_request):
        acting(open_request, "5001")
        assert import_status_file(open_request, first).changed == ["WR-000001", "WR-000002"]
    missing = tmp_path / "missing.json"
    missing.write_text(json.dumps([{"external_id": "CM-1", "status": "closed"},
                                   {"request": "WR-000099", "status": "closed"}]))
    with tx(open_request):
        acting(open_request, "5001")
        with pytest.raises(StatusFileError, match="no work request 'WR-000099'"):
            import_status_file(open_request, missing)
    by_number = tmp_path / "by_number.json"
    by_number.write_text(json.dumps([{"external_id": "CM-1", "status": "closed"}]))
    with tx(open_request):
        acting(open_request, "5001")
        import_status_file(open_request, by_number)
        again = import_status_file(open_request, by_number)
        assert again.unchanged == ["WR-000001"]
    reopen = tmp_path / "reopen.json"
    reopen.write_text(json.dumps([{"request": "WR-000001", "status": "open"}]))
    with tx(open_request):
        acting(open_request, "5001")
        with pytest.raises(StatusFileError, match="is closed; it cannot become open"):
            import_status_file(open_request, reopen)
    assert [(r.status, r.external_id) for r in requests(open_request)] == [
        ("closed", "CM-1"), ("in_progress", None)]
    with tx(open_request):
        audited = open_request.scalar(select(func.count()).select_from(AuditLog).where(
            AuditLog.table_name == "work_request", AuditLog.actor == "5001"))
        assert audited == 3
        acting(open_request, "1001")                     # an operator may not
        with pytest.raises(NotPermitted, match="import work request statuses"):
            import_status_file(open_request, by_number)
    assert [r.code for r in list_requests(open_request, only_open=True)] == ["WR-000002"]


# --- the command line ---------------------------------------------------------------------

def test_the_maintenance_commands(plant: Session, use_database: str, log_in: Any,
                                  tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from mes.cli import app
    from mes.settings import get_settings

    outbox = tmp_path / "outbox"
    monkeypatch.setenv("MES_CMMS_OUTBOX", str(outbox))
    get_settings.cache_clear()
    add_stop(plant, "PRESS-1", at(8), 40)
    plant.commit()
    runner = CliRunner()
    result = runner.invoke(app, ["maintenance", "evaluate", "--at", "2026-03-02T09:00Z"])
    assert result.exit_code == 0, result.output
    assert "1 work requests opened, 0 updated: WR-000001" in result.output
    assert "1 written to the outbox, 0 posted" in result.output
    assert (outbox / "WR-000001.json").is_file()

    result = runner.invoke(app, ["maintenance", "requests", "--json"])
    assert result.exit_code == 0, result.output
    (listed,) = json.loads(result.output)
    assert (listed["request"], listed["machine"], listed["cause"], listed["status"],
            listed["priority"]) == ("WR-000001", "PRESS-1", "long_stop", "open", 2)
    assert listed["sent_at"] is not None

    status = tmp_path / "status.csv"
    status.write_text("request,status\nWR-000001,closed\n")
    result = runner.invoke(app, ["maintenance", "requests", "import", str(status)])
    assert result.exit_code == 1 and "nobody is logged in" in result.output
    log_in("5001")
    result = runner.invoke(app, ["maintenance", "requests", "import", str(status)])
    assert result.exit_code == 0, result.output
    assert "1 work requests changed" in result.output
    result = runner.invoke(app, ["maintenance", "requests", "--open"])
    assert result.output.strip() == "no work requests"
    result = runner.invoke(app, ["maintenance", "requests"])
    assert result.output.startswith("WR-000001  PRESS-1    long_stop        closed")


@pytest.mark.slow
def test_the_dagster_asset_evaluates_and_writes_the_outbox(
        plant: Session, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dagster as dg

    from mes.settings import get_settings
    from pipelines.assets.work_requests import cmms_work_requests
    from pipelines.resources import MesDatabase

    monkeypatch.setenv("MES_CMMS_OUTBOX", str(tmp_path / "outbox"))
    get_settings.cache_clear()
    add_stop(plant, "PRESS-1", at(8), 40)
    plant.commit()
    result = dg.materialize(
        [cmms_work_requests], resources={"database": MesDatabase(url=db_url)},
        run_config={"ops": {"cmms_work_requests": {"config": {
            "at": "2026-03-02T09:00:00+00:00"}}}})
    assert result.success
    (materialization,) = result.asset_materializations_for_node("cmms_work_requests")
    assert materialization.metadata["opened"].value == 1
    assert (tmp_path / "outbox" / "WR-000001.json").is_file()
