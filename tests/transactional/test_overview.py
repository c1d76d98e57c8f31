"""Overviews for screens: orders against plan, held lots, nonconformances."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from tests.transactional.shop_floor import (
    CERTIFIED,
    HOLE,
    ORDER,
    ShopFloor,
    acting_as,
    add_lot,
    person_id,
)
from transactional.models import Equipment, OperationRun, WorkOrder
from transactional.orders import report
from transactional.overview import held_lots, nonconformances, order_progress
from transactional.quality import record_inspection


def _paint_run(session: Session, floor: ShopFloor, good: float, scrap: float) -> None:
    """A completed run of the routing's last operation, written directly."""
    with acting_as(session, CERTIFIED):
        order_id = session.scalars(select(WorkOrder.id).where(WorkOrder.code == ORDER)).one()
        machine = session.scalars(select(Equipment.id).where(Equipment.code == "PAINT-1")).one()
        session.add(OperationRun(
            work_order_id=order_id, operation_id=floor.painting_id,
            equipment_id=machine, operator_id=person_id(session, CERTIFIED), status="completed",
            planned_quantity=100, good_quantity=good, scrap_quantity=scrap,
            ended_at=dt.datetime.now(dt.UTC)))


def test_order_progress_counts_the_last_operation_s_good_and_every_scrap(
        session: Session, floor: ShopFloor, run_id: int) -> None:
    with acting_as(session, CERTIFIED):
        report(session, run_id, 40, 3)
    _paint_run(session, floor, good=25, scrap=1)
    yesterday = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    with acting_as(session, CERTIFIED):
        session.execute(update(WorkOrder).where(WorkOrder.code == ORDER)
                        .values(due_at=yesterday))

    with session.begin():
        (progress,) = order_progress(session)

    # 40 stamped parts are not finished brackets: only the painting's 25 count.
    assert (progress.code, progress.product, progress.status) == (ORDER, "BRK-A", "in_progress")
    assert (progress.planned_quantity, progress.good_quantity, progress.scrap_quantity) == (
        100, 25, 4)
    assert (progress.runs, progress.running) == (2, 1)
    assert progress.progress == 0.25
    assert progress.late_at(dt.datetime.now(dt.UTC))
    assert not progress.late_at(yesterday - dt.timedelta(hours=1))


def test_finished_orders_are_left_out_unless_asked_for(session: Session, floor: ShopFloor) -> None:
    with acting_as(session, CERTIFIED):
        session.execute(update(WorkOrder).where(WorkOrder.code == ORDER)
                        .values(status="cancelled"))
    with session.begin():
        assert order_progress(session) == []
        (cancelled,) = order_progress(session, include_finished=True)
    assert (cancelled.status, cancelled.runs, cancelled.good_quantity) == ("cancelled", 0, 0)


def test_held_lots_and_open_nonconformances(session: Session, run_id: int) -> None:
    add_lot(session, "L-1", run_id, 50)
    add_lot(session, "L-2", run_id, 20)
    with acting_as(session, CERTIFIED):
        outcome = record_inspection(session, run_id, HOLE, 1, 10.3, CERTIFIED, "L-1")
    (opened,) = outcome.nonconformances

    with session.begin():
        held = held_lots(session)
        lines = nonconformances(session, open_only=True)

    assert [(lot.code, lot.quantity, lot.unit, lot.status, lot.location,
             lot.open_nonconformances) for lot in held] == [
        ("L-1", 50, "pcs", "on_hold", "WIP-L1", (opened.code,))]
    (line,) = lines
    assert (line.code, line.status, line.machine, line.work_order, line.lot, line.decision) == (
        opened.code, "open", "PRESS-1", ORDER, "L-1", None)
    assert (line.measured, line.lower_spec, line.upper_spec) == (10.3, 9.9, 10.1)
