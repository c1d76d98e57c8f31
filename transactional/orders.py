"""Work orders and their operation runs: the order's state machine, starting a run on a
machine (who may, with which work instruction), reporting quantities, and completing a
run behind its inspection gate.

Dispatching (which order goes where next) and ERP import live elsewhere.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import get_args

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from transactional.documents import served_revision
from transactional.errors import (
    ConcurrentChange,
    IllegalTransition,
    NotFound,
    NotPermitted,
    RuleViolation,
)
from transactional.exposure import record_envelopes
from transactional.labor import is_signed_on, machine_by_code, person_by_badge
from transactional.limits import quantity as bounded_quantity
from transactional.lookup import by_code, fresh_one
from transactional.lots import open_nonconformances, output_material_id, produce
from transactional.models import (
    Certification,
    Document,
    Equipment,
    InspectionPlan,
    InspectionResult,
    MaintenanceWindow,
    MaterialDefinition,
    Nonconformance,
    OperationRun,
    Person,
    PersonCertification,
    RoutingOperation,
    RunCorrection,
    WorkOrder,
    WorkOrderStatus,
)
from transactional.permissions import Action, require
from transactional.quality import hold_for_open_nonconformances

WORK_ORDER_STATUSES: tuple[WorkOrderStatus, ...] = get_args(WorkOrderStatus)

# The only moves an order makes; `in_progress` is reached by starting its first run.
TRANSITIONS: dict[WorkOrderStatus, frozenset[WorkOrderStatus]] = {
    "created": frozenset({"released", "cancelled"}),
    "released": frozenset({"in_progress", "cancelled"}),
    "in_progress": frozenset({"on_hold", "completed"}),
    "on_hold": frozenset({"in_progress", "cancelled"}),
    "completed": frozenset({"closed"}),
    "closed": frozenset(),
    "cancelled": frozenset(),
}
STARTABLE: frozenset[WorkOrderStatus] = frozenset({"released", "in_progress"})
# The permission each move needs.
MOVE_ACTION: dict[WorkOrderStatus, Action] = {
    "released": Action.RELEASE_ORDER, "on_hold": Action.HOLD_ORDER,
    "in_progress": Action.RESUME_ORDER, "completed": Action.COMPLETE_ORDER,
    "closed": Action.COMPLETE_ORDER, "cancelled": Action.CANCEL_ORDER,
    "created": Action.RELEASE_ORDER,
}
# A run may report up to this many times its planned quantity (good and scrap together);
# more is a typing error, to be corrected by a supervisor (`correct_run`).
MAX_OVERRUN = 2.0


def order_by_code(session: Session, code: str, *, lock: bool = False) -> WorkOrder:
    return by_code(session, WorkOrder, code, what="work order", lock=lock)


def run_by_id(session: Session, run_id: int, *, lock: bool = False) -> OperationRun:
    return fresh_one(session, select(OperationRun).where(OperationRun.id == run_id),
                     lock=lock, missing=f"no operation run {run_id}")


def _now(session: Session) -> dt.datetime:
    return session.execute(select(func.now())).scalar_one()


def _move(session: Session, order: WorkOrder, to_status: WorkOrderStatus) -> None:
    now = _now(session)
    order.status = to_status
    order.version += 1
    order.updated_at = now


def _running_run(session: Session, order: WorkOrder) -> tuple[int, str] | None:
    row = session.execute(
        select(OperationRun.id, Equipment.code)
        .join(Equipment, Equipment.id == OperationRun.equipment_id)
        .where(OperationRun.work_order_id == order.id, OperationRun.status == "running")
        .order_by(OperationRun.id).limit(1)).one_or_none()
    return None if row is None else (row[0], row[1])


def transition(session: Session, order_code: str, to_status: str,
               expected_version: int | None = None) -> WorkOrder:
    """Move an order to `to_status` if its state machine allows it. With
    `expected_version` (the version the caller saw), a change made by someone else since
    is refused with ConcurrentChange instead of being overwritten."""
    if to_status not in WORK_ORDER_STATUSES:
        raise RuleViolation(f"{to_status!r} is not a work order status "
                            f"({', '.join(WORK_ORDER_STATUSES)})")
    require(session, MOVE_ACTION[to_status])
    order = order_by_code(session, order_code, lock=True)
    if expected_version is not None and order.version != expected_version:
        raise ConcurrentChange(
            f"order {order_code} was changed by someone else (version {order.version}, "
            f"you saw {expected_version}; it is now {order.status}): read it again")
    target: WorkOrderStatus = to_status
    if target not in TRANSITIONS[order.status]:
        raise IllegalTransition(f"order {order_code} cannot go from {order.status} to "
                                f"{target}")
    if target in ("completed", "cancelled"):
        running = _running_run(session, order)
        if running is not None:
            raise RuleViolation(f"order {order_code} cannot be {target}: run {running[0]} "
                                f"is still running on {running[1]}")
    if target == "completed":
        open_ncrs = open_nonconformances(session, Nonconformance.work_order_id == order.id)
        if open_ncrs:
            raise RuleViolation(f"order {order_code} cannot be completed: nonconformance "
                                f"{', '.join(open_ncrs)} is still open (disposition first)")
    _move(session, order, target)
    session.flush()
    return order


def operation_of(session: Session, order: WorkOrder, operation_code: str) -> RoutingOperation:
    operation = session.scalars(select(RoutingOperation).where(
        RoutingOperation.product_id == order.product_id,
        RoutingOperation.code == operation_code)).one_or_none()
    if operation is None:
        raise NotFound(f"order {order.code} has no operation {operation_code}")
    return operation


def machine_type(session: Session, machine: Equipment) -> str | None:
    """The machine's work center type: its own, else its line's."""
    if machine.work_center_type:
        return machine.work_center_type
    line = aliased(Equipment)
    return session.scalar(select(line.work_center_type).where(line.id == machine.parent_id))


def check_certification(session: Session, operator: Person,
                        operation: RoutingOperation) -> None:
    """Refuse an operator who lacks the operation's certification, or whose certificate
    is not valid today (the database's date)."""
    if operation.required_certification_id is None:
        return
    certification = session.get_one(Certification, operation.required_certification_id)
    held = session.get(PersonCertification, (operator.id, certification.id),
                       populate_existing=True)
    refused = f"operator {operator.badge} is not certified {certification.code}"
    if held is None:
        raise NotPermitted(refused)
    today: dt.date = session.execute(select(func.current_date())).scalar_one()
    if held.valid_from > today:
        raise NotPermitted(f"{refused} (valid from {held.valid_from:%Y-%m-%d})")
    if held.valid_until is not None and held.valid_until < today:
        raise NotPermitted(f"{refused} (expired {held.valid_until:%Y-%m-%d})")


def _previous_operation_done_something(session: Session, order: WorkOrder,
                                       operation: RoutingOperation) -> None:
    """An operation starts only once the one before it in the routing has produced good
    units for this order."""
    previous = session.scalars(
        select(RoutingOperation)
        .where(RoutingOperation.product_id == operation.product_id,
               RoutingOperation.sequence < operation.sequence)
        .order_by(RoutingOperation.sequence.desc()).limit(1)).one_or_none()
    if previous is None:
        return
    made = session.scalar(
        select(func.coalesce(func.sum(OperationRun.good_quantity), 0.0))
        .where(OperationRun.work_order_id == order.id,
               OperationRun.operation_id == previous.id,
               OperationRun.status != "aborted"))
    if not made:
        raise RuleViolation(f"operation {operation.code} of order {order.code} cannot start: "
                            f"operation {previous.code} ({previous.name}) has produced nothing "
                            "yet")


def _outside_maintenance(session: Session, machine: Equipment) -> None:
    window = session.scalars(
        select(MaintenanceWindow)
        .where(MaintenanceWindow.equipment_id == machine.id,
               MaintenanceWindow.starts_at <= func.now(),
               MaintenanceWindow.ends_at > func.now())).first()
    if window is not None:
        raise RuleViolation(f"{machine.code} is in maintenance window {window.external_id} "
                            f"until {window.ends_at:%Y-%m-%d %H:%M}: no run starts there")


def start_run(session: Session, order_code: str, operation_code: str, machine_code: str,
              operator_badge: str) -> OperationRun:
    """Start an operation of an order on a machine, run by a signed-on, certified operator
    working from the released revision of the operation's work instruction, outside the
    machine's maintenance windows, once the operation before has produced something. The
    first run moves a released order to in progress."""
    require(session, Action.START_RUN)
    order = order_by_code(session, order_code, lock=True)
    if order.status not in STARTABLE:
        raise IllegalTransition(f"order {order_code} is {order.status}: runs start only on "
                                "a released or in-progress order")
    operation = operation_of(session, order, operation_code)
    where = f"operation {operation_code} of order {order_code}"
    machine = machine_by_code(session, machine_code)
    kind = machine_type(session, machine)
    if kind != operation.work_center_type:
        raise RuleViolation(f"{where} needs a {operation.work_center_type} machine; "
                            f"{machine_code} is {kind or 'of no work center type'}")
    _outside_maintenance(session, machine)
    _previous_operation_done_something(session, order, operation)
    operator = person_by_badge(session, operator_badge)
    if not is_signed_on(session, operator.id, machine.id):
        raise NotPermitted(f"operator {operator_badge} is not signed on at {machine_code}")
    check_certification(session, operator, operation)
    revision_id: int | None = None
    if operation.document_id is not None:
        document = session.get_one(Document, operation.document_id)
        try:
            revision_id = served_revision(session, document.code).id
        except RuleViolation:
            raise RuleViolation(f"{where} cannot start: its work instruction "
                                f"{document.code} has no released revision") from None
    busy = session.execute(
        select(OperationRun.id).where(OperationRun.equipment_id == machine.id,
                                      OperationRun.status == "running")).scalar_one_or_none()
    if busy is not None:
        raise RuleViolation(f"{machine_code} is busy with run {busy}: complete it first")
    run = OperationRun(work_order_id=order.id, operation_id=operation.id,
                       equipment_id=machine.id, operator_id=operator.id,
                       planned_quantity=order.quantity, document_revision_id=revision_id)
    try:
        with session.begin_nested():
            session.add(run)
    except IntegrityError as error:
        if "uq_operation_run_one_running_per_machine" not in str(error.orig):
            raise
        raise RuleViolation(f"{machine_code} started another run at the same moment") from None
    if order.status == "released":
        _move(session, order, "in_progress")
    session.flush()
    session.refresh(run)
    return run


def _where(session: Session, run: OperationRun) -> str:
    order_code, operation_code = session.execute(
        select(WorkOrder.code, RoutingOperation.code)
        .join(RoutingOperation, RoutingOperation.product_id == WorkOrder.product_id)
        .where(WorkOrder.id == run.work_order_id, RoutingOperation.id == run.operation_id)).one()
    return f"operation {operation_code} of order {order_code}"


def _run_unit(session: Session, run: OperationRun) -> str:
    return session.get_one(MaterialDefinition, output_material_id(session, run)).unit


def _order_not_held(session: Session, run: OperationRun, action: str) -> None:
    order = session.get_one(WorkOrder, run.work_order_id, populate_existing=True)
    if order.status == "on_hold":
        raise IllegalTransition(f"order {order.code} is on hold: run {run.id} cannot "
                                f"{action} until the order is resumed")


def _bounded(session: Session, run: OperationRun, good: float, scrap: float) -> None:
    unit = _run_unit(session, run)
    bounded_quantity(good, unit, f"run {run.id} good", zero=True)
    bounded_quantity(scrap, unit, f"run {run.id} scrap", zero=True)


def report(session: Session, run_id: int, good: float, scrap: float) -> OperationRun:
    """Add good and scrap quantities to a running run. The run's row lock makes reports
    from several stations add up exactly."""
    require(session, Action.REPORT_RUN)
    if good < 0 or scrap < 0:
        raise RuleViolation(f"run {run_id}: quantities cannot be negative "
                            f"(good {good:g}, scrap {scrap:g})")
    if good == 0 and scrap == 0:
        raise RuleViolation(f"run {run_id}: nothing to report (good and scrap are 0)")
    run = run_by_id(session, run_id, lock=True)
    if run.status != "running":
        raise IllegalTransition(f"run {run_id} is {run.status}: quantities are reported "
                                "while it runs")
    _order_not_held(session, run, "report quantities")
    _bounded(session, run, good, scrap)
    total = run.good_quantity + run.scrap_quantity + good + scrap
    if total > run.planned_quantity * MAX_OVERRUN:
        raise RuleViolation(f"run {run_id}: {total:g} made would be more than {MAX_OVERRUN:g} "
                            f"times the {run.planned_quantity:g} planned; check the figure "
                            "(a supervisor can correct a run: mes run correct)")
    run.good_quantity += good
    run.scrap_quantity += scrap
    run.version += 1
    session.flush()
    return run


@dataclass(frozen=True)
class MissingSamples:
    characteristic: str
    needed: int
    recorded: int


def missing_samples(session: Session, run: OperationRun) -> list[MissingSamples]:
    """The operation's inspections that lack results for this run."""
    recorded = (select(func.count(InspectionResult.id))
                .where(InspectionResult.run_id == run.id,
                       InspectionResult.plan_id == InspectionPlan.id)
                .scalar_subquery())
    rows = session.execute(
        select(InspectionPlan.characteristic, InspectionPlan.sample_size, recorded)
        .where(InspectionPlan.operation_id == run.operation_id)
        .order_by(InspectionPlan.characteristic)).all()
    return [MissingSamples(name, needed, count) for name, needed, count in rows
            if count < needed]


def complete_run(session: Session, run_id: int, by_badge: str,
                 output_lot_code: str | None = None,
                 output_location_code: str | None = None) -> OperationRun:
    """Complete a running run once every inspection of its operation has its samples.
    With `output_lot_code`, its good quantity becomes a new lot at `output_location_code`,
    linked to the lots the run consumed (on hold if a result out of spec is still open)."""
    require(session, Action.COMPLETE_RUN)
    person = person_by_badge(session, by_badge)
    if output_lot_code is not None and output_location_code is None:
        raise RuleViolation(f"run {run_id}: give the storage location of output lot "
                            f"{output_lot_code}")
    run = run_by_id(session, run_id, lock=True)
    if run.status != "running":
        raise IllegalTransition(f"run {run_id} is {run.status}: only a running run can "
                                "complete")
    _order_not_held(session, run, "complete")
    missing = missing_samples(session, run)
    if missing:
        needs = "; ".join(f"'{m.characteristic}' needs {m.needed} "
                          f"sample{'s' if m.needed != 1 else ''}, {m.recorded} recorded"
                          for m in missing)
        raise RuleViolation(f"{_where(session, run)} cannot complete: {needs}")
    if output_lot_code is not None and output_location_code is not None:
        material = session.get_one(MaterialDefinition, output_material_id(session, run))
        lot = produce(session, output_lot_code, material.code, run.good_quantity,
                      output_location_code, run.id, person.id)
        hold_for_open_nonconformances(session, run, lot, person)
    ended_at = _now(session)
    run.status = "completed"
    run.ended_at = ended_at
    run.version += 1
    session.flush()
    # The run's process values, summarised now that its span is final.
    record_envelopes(session, [run.id])
    return run


def correct_run(session: Session, run_id: int, good: float, scrap: float,
                reason: str) -> RunCorrection:
    """Set a run's good and scrap quantities to what was really made (a supervisor's
    correction of a wrong report), with the reason; the correction is its own audited
    record beside the run's changed row."""
    person = require(session, Action.CORRECT_RUN)
    if not reason.strip():
        raise RuleViolation(f"run {run_id}: a correction needs its reason")
    run = run_by_id(session, run_id, lock=True)
    if run.status == "aborted":
        raise IllegalTransition(f"run {run_id} is aborted: it has no quantities to correct")
    _bounded(session, run, good, scrap)
    if good + scrap > run.planned_quantity * MAX_OVERRUN:
        raise RuleViolation(f"run {run_id}: {good + scrap:g} made would be more than "
                            f"{MAX_OVERRUN:g} times the {run.planned_quantity:g} planned")
    correction = RunCorrection(run_id=run.id, person_id=person.id,
                               good_before=run.good_quantity,
                               scrap_before=run.scrap_quantity, good_after=good,
                               scrap_after=scrap, reason=reason)
    session.add(correction)
    run.good_quantity = good
    run.scrap_quantity = scrap
    run.version += 1
    session.flush()
    return correction


def abort_run(session: Session, run_id: int, reason: str) -> OperationRun:
    """End a running run without completing it (a wrong order or machine, a crash); what it
    reported stays on record, it counts for no operation's progress."""
    require(session, Action.ABORT_RUN)
    if not reason.strip():
        raise RuleViolation(f"run {run_id}: aborting needs its reason")
    run = run_by_id(session, run_id, lock=True)
    if run.status != "running":
        raise IllegalTransition(f"run {run_id} is {run.status}: only a running run can be "
                                "aborted")
    ended_at = _now(session)
    run.status = "aborted"
    run.abort_reason = reason
    run.ended_at = ended_at
    run.version += 1
    session.flush()
    return run


@dataclass(frozen=True)
class RunPerformance:
    """A run's actuals against its plan and its operation's standard."""

    run_id: int
    status: str
    planned_quantity: float
    good_quantity: float
    scrap_quantity: float
    elapsed_seconds: float
    standard_cycle_seconds: float

    @property
    def actual_quantity(self) -> float:
        """Everything the run made, good and scrap."""
        return self.good_quantity + self.scrap_quantity

    @property
    def quantity_deviation_pct(self) -> float:
        """Good quantity against planned, in percent (negative: short)."""
        return (self.good_quantity - self.planned_quantity) / self.planned_quantity * 100

    @property
    def actual_cycle_seconds(self) -> float | None:
        """Elapsed time per good unit; None before the first good unit."""
        if self.good_quantity <= 0:
            return None
        return self.elapsed_seconds / self.good_quantity

    @property
    def cycle_deviation_pct(self) -> float | None:
        """Actual cycle time against standard, in percent (positive: slower)."""
        actual = self.actual_cycle_seconds
        if actual is None:
            return None
        return (actual - self.standard_cycle_seconds) / self.standard_cycle_seconds * 100


def run_performance(session: Session, run_id: int) -> RunPerformance:
    """Planned against actual quantity and cycle time; a running run counts up to now."""
    run = run_by_id(session, run_id)
    operation = session.get_one(RoutingOperation, run.operation_id)
    end = run.ended_at or _now(session)
    return RunPerformance(run.id, run.status, run.planned_quantity, run.good_quantity,
                          run.scrap_quantity, (end - run.started_at).total_seconds(),
                          operation.standard_seconds_per_unit)
