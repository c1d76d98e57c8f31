"""Read-only overviews for screens: work orders against plan, lots on hold, nonconformances.

Each function takes a session and returns plain frozen records, newest first where order
matters; nothing here changes a row. The dashboards show these; the CLI may too.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, select, true
from sqlalchemy.orm import Session, aliased

from transactional.models import (
    Disposition,
    Equipment,
    MaterialDefinition,
    MaterialLot,
    Nonconformance,
    OperationRun,
    ProductDefinition,
    RoutingOperation,
    StorageLocation,
    WorkOrder,
)

FINISHED = ("completed", "closed", "cancelled")


@dataclass(frozen=True)
class OrderProgress:
    """A work order against its plan: what its last operation has made so far."""

    code: str
    product: str
    status: str
    priority: int
    planned_quantity: float
    good_quantity: float  # good units of the routing's last operation, over all its runs
    scrap_quantity: float  # scrap of every operation
    due_at: dt.datetime | None
    runs: int
    running: int

    @property
    def progress(self) -> float:
        """Good units of the last operation as a share of the order's quantity."""
        return self.good_quantity / self.planned_quantity if self.planned_quantity else 0.0

    def late_at(self, now: dt.datetime) -> bool:
        """Due before `now` and not finished."""
        return self.due_at is not None and self.due_at < now and self.status not in FINISHED


def order_progress(session: Session, *, include_finished: bool = False) -> list[OrderProgress]:
    """Every work order (unfinished ones unless asked), by due time then priority."""
    last_sequence = (select(RoutingOperation.product_id,
                            func.max(RoutingOperation.sequence).label("sequence"))
                     .group_by(RoutingOperation.product_id).subquery())
    last_operation = aliased(RoutingOperation)
    final_good = (select(func.coalesce(func.sum(OperationRun.good_quantity), 0.0))
                  .join(last_operation, last_operation.id == OperationRun.operation_id)
                  .join(last_sequence, (last_sequence.c.product_id == last_operation.product_id)
                        & (last_sequence.c.sequence == last_operation.sequence))
                  .where(OperationRun.work_order_id == WorkOrder.id)
                  .scalar_subquery())
    runs = (select(func.count(OperationRun.id).label("runs"),
                   func.coalesce(func.sum(OperationRun.scrap_quantity), 0.0).label("scrap"),
                   func.count(OperationRun.id).filter(OperationRun.status == "running")
                   .label("running"))
            .where(OperationRun.work_order_id == WorkOrder.id).lateral())
    query = (select(WorkOrder.code, ProductDefinition.code, WorkOrder.status, WorkOrder.priority,
                    WorkOrder.quantity, final_good, runs.c.scrap, WorkOrder.due_at, runs.c.runs,
                    runs.c.running)
             .join(ProductDefinition, ProductDefinition.id == WorkOrder.product_id)
             .join(runs, true())
             .order_by(WorkOrder.due_at.asc().nulls_last(), WorkOrder.priority.desc(),
                       WorkOrder.code))
    if not include_finished:
        query = query.where(WorkOrder.status.not_in(FINISHED))
    return [OrderProgress(code, product, status, priority, float(quantity), float(good),
                          float(scrap), due_at, int(count), int(running))
            for code, product, status, priority, quantity, good, scrap, due_at, count, running
            in session.execute(query)]


@dataclass(frozen=True)
class HeldLot:
    code: str
    material: str
    quantity: float
    unit: str
    status: str
    location: str
    open_nonconformances: tuple[str, ...]


def held_lots(session: Session) -> list[HeldLot]:
    """Lots on hold or in quarantine, with the open nonconformances that hold them."""
    open_ncrs = (select(func.coalesce(func.array_agg(Nonconformance.code.distinct()), []))
                 .where(Nonconformance.lot_id == MaterialLot.id,
                        Nonconformance.status == "open")
                 .scalar_subquery())
    query = (select(MaterialLot.code, MaterialDefinition.code, MaterialLot.quantity,
                    MaterialDefinition.unit, MaterialLot.status, StorageLocation.code, open_ncrs)
             .join(MaterialDefinition, MaterialDefinition.id == MaterialLot.material_id)
             .join(StorageLocation, StorageLocation.id == MaterialLot.location_id)
             .where(MaterialLot.status.in_(("on_hold", "quarantined")))
             .order_by(MaterialLot.code))
    return [HeldLot(code, material, float(quantity), unit, status, location,
                    tuple(sorted(ncrs or ())))
            for code, material, quantity, unit, status, location, ncrs in session.execute(query)]


@dataclass(frozen=True)
class NonconformanceLine:
    code: str
    status: str
    opened_at: dt.datetime
    characteristic: str
    measured: float
    lower_spec: float
    upper_spec: float
    machine: str
    work_order: str
    lot: str | None
    decision: str | None


def nonconformances(session: Session, *, open_only: bool = False) -> list[NonconformanceLine]:
    """Nonconformances, newest first, with their disposition when there is one."""
    query = (select(Nonconformance.code, Nonconformance.status, Nonconformance.opened_at,
                    Nonconformance.characteristic, Nonconformance.measured,
                    Nonconformance.lower_spec, Nonconformance.upper_spec, Equipment.code,
                    WorkOrder.code, MaterialLot.code, Disposition.decision)
             .join(Equipment, Equipment.id == Nonconformance.equipment_id)
             .join(WorkOrder, WorkOrder.id == Nonconformance.work_order_id)
             .outerjoin(MaterialLot, MaterialLot.id == Nonconformance.lot_id)
             .outerjoin(Disposition, Disposition.nonconformance_id == Nonconformance.id)
             .order_by(Nonconformance.opened_at.desc(), Nonconformance.code.desc()))
    if open_only:
        query = query.where(Nonconformance.status == "open")
    return [NonconformanceLine(*row) for row in session.execute(query)]


def work_centers(session: Session) -> list[str]:
    """The codes of the plant's work centers (lines), in order."""
    return list(session.scalars(select(Equipment.code).where(Equipment.level == "work_center")
                                .order_by(Equipment.code)))
