"""Material lots against the real database: receive, split, merge, move, status, consume,
produce; balances always equal the movements and never go negative; two operators taking
from one lot at once; every change in the audit log; the `mes lot` commands."""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from mes.cli import app
from mes.db import engine, session_factory
from tests.conftest import SAMPLE_PLANT
from transactional import lots
from transactional.audit import acting
from transactional.errors import IllegalTransition, NotFound, RuleViolation
from transactional.labor import person_by_badge
from transactional.models import (
    BomItem,
    Equipment,
    InspectionPlan,
    InspectionResult,
    LotMovement,
    MaterialDefinition,
    MaterialLot,
    OperationRun,
    ProductDefinition,
    RoutingOperation,
    WorkOrder,
)
from transactional.plant import load_plant
from transactional.plant_file import read_plant_file

LOCATIONS = {"RM-STORE": "Raw material store", "LINE-1": "Line 1 buffer",
             "LINE-2": "Line 2 buffer", "FG-STORE": "Finished goods",
             "QUARANTINE": "Quarantine cage"}


# --- building a plant with a product, its routing and runs (shared with test_trace) -----

@dataclass(frozen=True)
class Routing:
    work_order_id: int
    stamp_id: int   # STAMP: STEEL-COIL -> BRACKET-RAW, on the presses
    paint_id: int   # PAINT: BRACKET-RAW -> BRACKET-A, in the paint booth
    hole_plan_id: int
    coating_plan_id: int


def setup_plant(session: Session) -> None:
    """The sample plant plus storage locations, committed."""
    acting(session, "mes-admin")
    load_plant(session, read_plant_file(SAMPLE_PLANT))
    for code, name in LOCATIONS.items():
        lots.add_location(session, code, name)
    session.commit()


def person(session: Session, badge: str) -> int:
    return person_by_badge(session, badge).id


def _id(session: Session, model: type[MaterialDefinition] | type[Equipment], code: str) -> int:
    found = session.scalar(select(model.id).where(model.code == code))
    assert found is not None, code
    return found


def setup_routing(session: Session, work_order: str = "WO-4711") -> Routing:
    """Product BRACKET-A: 10 STAMP (coil -> raw brackets), 20 PAINT (raw -> painted), each
    with a bill of materials and an inspection plan, and a released work order; committed."""
    acting(session, "mes-admin")
    material = {code: _id(session, MaterialDefinition, code)
                for code in ("STEEL-COIL", "BRACKET-RAW", "BRACKET-A")}
    product = ProductDefinition(code="BRACKET-A", name="Bracket A",
                                material_id=material["BRACKET-A"])
    session.add(product)
    session.flush()
    stamp = RoutingOperation(product_id=product.id, sequence=10, code="STAMP", name="Stamp",
                             work_center_type="STAMPING", standard_seconds_per_unit=2.0,
                             output_material_id=material["BRACKET-RAW"])
    paint = RoutingOperation(product_id=product.id, sequence=20, code="PAINT", name="Paint",
                             work_center_type="FINISHING", standard_seconds_per_unit=3.0)
    session.add_all([stamp, paint])
    session.flush()
    hole = InspectionPlan(operation_id=stamp.id, characteristic="hole diameter", nominal=8.0,
                          lower_spec=7.9, upper_spec=8.1, unit="mm")
    coating = InspectionPlan(operation_id=paint.id, characteristic="coating thickness",
                             nominal=60, lower_spec=50, upper_spec=80, unit="um")
    order = WorkOrder(code=work_order, product_id=product.id, quantity=400, status="released")
    session.add_all([
        BomItem(operation_id=stamp.id, material_id=material["STEEL-COIL"],
                quantity_per_unit=0.5),
        BomItem(operation_id=paint.id, material_id=material["BRACKET-RAW"],
                quantity_per_unit=1),
        hole, coating, order])
    session.commit()
    return Routing(order.id, stamp.id, paint.id, hole.id, coating.id)


def start_run(session: Session, routing: Routing, operation_id: int, machine: str,
              badge: str, planned: float = 200) -> int:
    """A running operation run, inserted directly (dispatching is not this module's job)."""
    acting(session, badge)
    run = OperationRun(work_order_id=routing.work_order_id, operation_id=operation_id,
                       equipment_id=_id(session, Equipment, machine),
                       operator_id=person(session, badge), planned_quantity=planned,
                       started_at=dt.datetime(2026, 3, 2, 6, 0, tzinfo=dt.UTC))
    session.add(run)
    session.commit()
    return run.id


def finish_run(session: Session, run_id: int, good: float) -> None:
    acting(session, "mes-admin")
    run = session.get(OperationRun, run_id)
    assert run is not None
    run.status, run.good_quantity = "completed", good
    run.ended_at = dt.datetime(2026, 3, 2, 9, 30, tzinfo=dt.UTC)
    session.commit()


def inspect(session: Session, run_id: int, plan_id: int, measured: float, within: bool,
            badge: str, sample: int = 1) -> None:
    acting(session, badge)
    session.add(InspectionResult(run_id=run_id, plan_id=plan_id, sample_number=sample,
                                 measured=measured, within_spec=within,
                                 recorded_by=person(session, badge)))
    session.commit()


def do(session: Session, badge: str, action: Callable[[int], object]) -> None:
    """One transaction as an operator would make it: who acts, the action, commit."""
    acting(session, badge)
    action(person(session, badge))
    session.commit()


def lot(session: Session, code: str) -> MaterialLot:
    session.expire_all()
    found = session.scalar(select(MaterialLot).where(MaterialLot.code == code))
    assert found is not None, code
    return found


def movements(session: Session, code: str) -> list[tuple[str, float, str]]:
    return [tuple(row) for row in session.execute(text(
        "SELECT m.kind, m.quantity, s.code FROM mes.lot_movement m "
        "JOIN mes.material_lot l ON l.id = m.lot_id "
        "JOIN mes.storage_location s ON s.id = m.location_id "
        "WHERE l.code = :code ORDER BY m.id"), {"code": code})]


def balance(session: Session) -> dict[tuple[str, str], float]:
    return {(row.material, row.location): row.quantity for row in session.execute(text(
        "SELECT m.code AS material, s.code AS location, b.quantity "
        "FROM mes.material_balance b "
        "JOIN mes.material_definition m ON m.id = b.material_id "
        "JOIN mes.storage_location s ON s.id = b.location_id"))}


def assert_balances_consistent(session: Session) -> None:
    """The view equals the sum of the movements and of the lots where they are, and no
    lot and no balance is negative."""
    session.expire_all()
    by_lots: dict[tuple[str, str], float] = {}
    for row in session.execute(text(
            "SELECT m.code AS material, s.code AS location, l.quantity "
            "FROM mes.material_lot l JOIN mes.material_definition m ON m.id = l.material_id "
            "JOIN mes.storage_location s ON s.id = l.location_id")):
        assert row.quantity >= 0
        key = (row.material, row.location)
        by_lots[key] = by_lots.get(key, 0.0) + row.quantity
    from_view = balance(session)
    assert all(quantity >= 0 for quantity in from_view.values())
    assert {k: v for k, v in from_view.items() if v} == {k: v for k, v in by_lots.items() if v}
    per_lot = session.execute(text(
        "SELECT count(*) FROM mes.material_lot l WHERE l.quantity <> "
        "(SELECT coalesce(sum(quantity), 0) FROM mes.lot_movement WHERE lot_id = l.id)"
    )).scalar_one()
    assert per_lot == 0


@pytest.fixture
def plant(session: Session) -> Session:
    setup_plant(session)
    return session


@pytest.fixture
def routing(plant: Session) -> Routing:
    return setup_routing(plant)


def receive(session: Session, code: str, quantity: float, material: str = "STEEL-COIL",
            location: str = "RM-STORE", badge: str = "1001") -> None:
    do(session, badge, lambda who: lots.receive(session, code, material, quantity, location,
                                                who))


# --- receive ------------------------------------------------------------------------------

def test_receive_creates_a_lot_through_a_movement(plant: Session) -> None:
    receive(plant, "COIL-1", 500)

    coil = lot(plant, "COIL-1")
    assert (coil.quantity, coil.status) == (500, "available")
    assert movements(plant, "COIL-1") == [("receive", 500, "RM-STORE")]
    assert balance(plant) == {("STEEL-COIL", "RM-STORE"): 500}


@pytest.mark.parametrize(("code", "material", "quantity", "location", "message"), [
    ("COIL-1", "STEEL-COIL", 10, "RM-STORE", "lot COIL-1 exists already"),
    ("COIL-2", "COPPER", 10, "RM-STORE", "no material COPPER"),
    ("COIL-2", "STEEL-COIL", 10, "ROOF", "no storage location ROOF"),
    ("COIL-2", "STEEL-COIL", 0, "RM-STORE", "the quantity must be a positive number"),
    ("COIL-2", "STEEL-COIL", -5, "RM-STORE", "the quantity must be a positive number"),
])
def test_receive_refuses_bad_input(plant: Session, code: str, material: str, quantity: float,
                                   location: str, message: str) -> None:
    receive(plant, "COIL-1", 500)
    acting(plant, "1001")
    with pytest.raises(RuleViolation, match=message):
        lots.receive(plant, code, material, quantity, location, person(plant, "1001"))
    plant.rollback()
    assert plant.execute(text("SELECT count(*) FROM mes.material_lot")).scalar_one() == 1


def test_an_unknown_badge_is_refused(plant: Session) -> None:
    with pytest.raises(NotFound, match="no person with badge 9999"):
        person_by_badge(plant, "9999")


# --- split and merge ------------------------------------------------------------------------

def test_split_moves_quantity_into_new_lots_with_links(plant: Session) -> None:
    receive(plant, "COIL-1", 500)
    do(plant, "1001", lambda who: lots.split(plant, "COIL-1", [("COIL-1A", 120),
                                                                ("COIL-1B", 80)], who))

    assert [lot(plant, c).quantity for c in ("COIL-1", "COIL-1A", "COIL-1B")] == [300, 120, 80]
    assert movements(plant, "COIL-1") == [("receive", 500, "RM-STORE"),
                                          ("split_out", -200, "RM-STORE")]
    assert movements(plant, "COIL-1A") == [("split_in", 120, "RM-STORE")]
    links = plant.execute(text(
        "SELECT p.code, c.code, g.kind, g.quantity FROM mes.genealogy_link g "
        "JOIN mes.material_lot p ON p.id = g.parent_lot_id "
        "JOIN mes.material_lot c ON c.id = g.child_lot_id ORDER BY c.code")).all()
    assert [tuple(link) for link in links] == [("COIL-1", "COIL-1A", "split", 120),
                                               ("COIL-1", "COIL-1B", "split", 80)]
    assert balance(plant) == {("STEEL-COIL", "RM-STORE"): 500}
    assert_balances_consistent(plant)


def test_a_held_lot_split_stays_held_and_a_lot_split_whole_is_consumed(plant: Session) -> None:
    receive(plant, "COIL-1", 500)
    do(plant, "2001", lambda who: lots.set_status(plant, "COIL-1", "on_hold", who))
    do(plant, "1001", lambda who: lots.split(plant, "COIL-1", [("COIL-1A", 200),
                                                                ("COIL-1B", 300)], who))

    assert lot(plant, "COIL-1A").status == lot(plant, "COIL-1B").status == "on_hold"
    assert (lot(plant, "COIL-1").quantity, lot(plant, "COIL-1").status) == (0, "consumed")


def test_splitting_more_than_a_lot_holds_is_refused_and_writes_nothing(plant: Session) -> None:
    receive(plant, "COIL-1", 500)
    acting(plant, "1001")
    with pytest.raises(RuleViolation, match="lot COIL-1: 600 kg wanted, 500 kg left"):
        lots.split(plant, "COIL-1", [("COIL-1A", 300), ("COIL-1B", 300)],
                   person(plant, "1001"))
    plant.rollback()

    assert lot(plant, "COIL-1").quantity == 500
    assert movements(plant, "COIL-1") == [("receive", 500, "RM-STORE")]
    assert plant.execute(text("SELECT count(*) FROM mes.material_lot")).scalar_one() == 1


def test_merge_puts_whole_lots_together(plant: Session) -> None:
    receive(plant, "COIL-1", 500)
    receive(plant, "COIL-2", 250.5)
    do(plant, "1001", lambda who: lots.merge(plant, ["COIL-1", "COIL-2"], "COIL-M", who))

    merged = lot(plant, "COIL-M")
    assert (merged.quantity, merged.status) == (750.5, "available")
    assert [(lot(plant, c).quantity, lot(plant, c).status) for c in ("COIL-1", "COIL-2")] == [
        (0, "consumed"), (0, "consumed")]
    assert movements(plant, "COIL-2")[-1] == ("merge_out", -250.5, "RM-STORE")
    assert movements(plant, "COIL-M") == [("merge_in", 750.5, "RM-STORE")]
    kinds = plant.execute(text(
        "SELECT kind, quantity FROM mes.genealogy_link ORDER BY quantity")).all()
    assert [tuple(k) for k in kinds] == [("merge", 250.5), ("merge", 500)]
    assert_balances_consistent(plant)


@pytest.mark.parametrize(("second", "message"), [
    ("RAW-1", "differ in material"),
    ("COIL-HELD", "differ in status"),
    ("COIL-LINE", "differ in location"),
    ("COIL-1", "two or more different lots"),
    ("COIL-9", "no material lot COIL-9"),
])
def test_merge_refuses_lots_that_do_not_belong_together(plant: Session, second: str,
                                                        message: str) -> None:
    receive(plant, "COIL-1", 500)
    receive(plant, "RAW-1", 100, material="BRACKET-RAW")
    receive(plant, "COIL-HELD", 100)
    do(plant, "2001", lambda who: lots.set_status(plant, "COIL-HELD", "on_hold", who))
    receive(plant, "COIL-LINE", 100, location="LINE-1")
    acting(plant, "1001")
    with pytest.raises(RuleViolation, match=message):
        lots.merge(plant, ["COIL-1", second], "COIL-M", person(plant, "1001"))
    plant.rollback()
    assert lot(plant, "COIL-1").status == "available"


# --- move and status ---------------------------------------------------------------------------

def test_move_takes_the_lot_out_of_one_location_into_another(plant: Session) -> None:
    receive(plant, "COIL-1", 500)
    receive(plant, "COIL-2", 100)
    do(plant, "1001", lambda who: lots.move(plant, "COIL-1", "LINE-1", who))

    coil = lot(plant, "COIL-1")
    assert coil.quantity == 500
    assert movements(plant, "COIL-1")[1:] == [("move_out", -500, "RM-STORE"),
                                              ("move_in", 500, "LINE-1")]
    assert balance(plant) == {("STEEL-COIL", "RM-STORE"): 100, ("STEEL-COIL", "LINE-1"): 500}
    assert_balances_consistent(plant)

    acting(plant, "1001")
    with pytest.raises(RuleViolation, match="lot COIL-1 is at LINE-1 already"):
        lots.move(plant, "COIL-1", "LINE-1", person(plant, "1001"))
    plant.rollback()


LEGAL = [("available", "on_hold"), ("on_hold", "available"), ("available", "quarantined"),
         ("on_hold", "quarantined"), ("quarantined", "available"), ("quarantined", "on_hold"),
         ("quarantined", "scrapped"), ("available", "scrapped"), ("on_hold", "scrapped")]
PATH_TO = {"available": [], "on_hold": ["on_hold"], "quarantined": ["quarantined"]}


@pytest.mark.parametrize(("start", "target"), LEGAL)
def test_legal_status_changes(plant: Session, start: str, target: str) -> None:
    receive(plant, "COIL-1", 500)
    for status in [*PATH_TO[start], target]:
        acting(plant, "2001")
        lots.set_status(plant, "COIL-1", status, person(plant, "2001"))
        plant.commit()
    assert lot(plant, "COIL-1").status == target


@pytest.mark.parametrize(("start", "target"), [
    ("scrapped", "available"), ("scrapped", "quarantined"), ("available", "consumed"),
    ("on_hold", "consumed"), ("available", "available")])
def test_illegal_status_changes_are_refused(plant: Session, start: str, target: str) -> None:
    receive(plant, "COIL-1", 500)
    if start == "scrapped":
        do(plant, "2001", lambda who: lots.set_status(plant, "COIL-1", "scrapped", who))
    elif start == "on_hold":
        do(plant, "2001", lambda who: lots.set_status(plant, "COIL-1", "on_hold", who))
    acting(plant, "2001")
    with pytest.raises(IllegalTransition, match="COIL-1"):
        lots.set_status(plant, "COIL-1", target, person(plant, "2001"))
    plant.rollback()
    assert lot(plant, "COIL-1").status == start


def test_a_consumed_lot_is_final(plant: Session, routing: Routing) -> None:
    receive(plant, "COIL-1", 50)
    run = start_run(plant, routing, routing.stamp_id, "PRESS-1", "1001")
    do(plant, "1001", lambda who: lots.consume(plant, "COIL-1", 50, run, who))
    assert lot(plant, "COIL-1").status == "consumed"
    for action in (lambda who: lots.set_status(plant, "COIL-1", "available", who),
                   lambda who: lots.move(plant, "COIL-1", "LINE-1", who),
                   lambda who: lots.split(plant, "COIL-1", [("COIL-1A", 1)], who)):
        acting(plant, "2001")
        with pytest.raises(IllegalTransition,
                           match=r"lot COIL-1 (is consumed|cannot go from consumed)"):
            action(person(plant, "2001"))
        plant.rollback()


def test_scrapping_takes_what_is_left_out_of_stock(plant: Session) -> None:
    receive(plant, "COIL-1", 500)
    do(plant, "2001", lambda who: lots.set_status(plant, "COIL-1", "quarantined", who))
    do(plant, "2001", lambda who: lots.move(plant, "COIL-1", "QUARANTINE", who))
    do(plant, "2001", lambda who: lots.set_status(plant, "COIL-1", "scrapped", who))

    assert (lot(plant, "COIL-1").quantity, lot(plant, "COIL-1").status) == (0, "scrapped")
    assert movements(plant, "COIL-1")[-1] == ("scrap", -500, "QUARANTINE")
    assert_balances_consistent(plant)


def test_status_is_accepted_as_typed(plant: Session) -> None:
    receive(plant, "COIL-1", 500)
    do(plant, "2001", lambda who: lots.set_status(plant, "COIL-1", "On-Hold", who))
    assert lot(plant, "COIL-1").status == "on_hold"
    with pytest.raises(RuleViolation, match="lot status 'held': not one of available"):
        lots.parse_status("held")


# --- consume, produce, and the bill of materials ---------------------------------------------

def test_consume_takes_from_the_lot_into_the_run(plant: Session, routing: Routing) -> None:
    receive(plant, "COIL-1", 100)
    run = start_run(plant, routing, routing.stamp_id, "PRESS-1", "1001")
    do(plant, "1001", lambda who: lots.consume(plant, "COIL-1", 30, run, who))
    assert (lot(plant, "COIL-1").quantity, lot(plant, "COIL-1").status) == (70, "available")
    do(plant, "1001", lambda who: lots.consume(plant, "COIL-1", 70, run, who))
    assert (lot(plant, "COIL-1").quantity, lot(plant, "COIL-1").status) == (0, "consumed")
    run_of_movements = plant.execute(text(
        "SELECT DISTINCT run_id FROM mes.lot_movement WHERE kind = 'consume'")).scalars().all()
    assert run_of_movements == [run]
    assert_balances_consistent(plant)


def test_consuming_more_than_there_is_is_refused_and_writes_nothing(
        plant: Session, routing: Routing) -> None:
    receive(plant, "L-1", 50)
    run = start_run(plant, routing, routing.stamp_id, "PRESS-1", "1001")
    do(plant, "1001", lambda who: lots.consume(plant, "L-1", 30, run, who))
    audit_before = plant.execute(text("SELECT count(*) FROM mes.audit_log")).scalar_one()

    acting(plant, "1001")
    with pytest.raises(RuleViolation, match=r"^lot L-1: 30 kg wanted, 20 kg left$"):
        lots.consume(plant, "L-1", 30, run, person(plant, "1001"))
    plant.rollback()

    assert lot(plant, "L-1").quantity == 20
    assert [m[:2] for m in movements(plant, "L-1")] == [("receive", 50), ("consume", -30)]
    assert plant.execute(text("SELECT count(*) FROM mes.audit_log")).scalar_one() == audit_before
    assert_balances_consistent(plant)


def test_the_database_itself_refuses_a_movement_below_zero(plant: Session) -> None:
    receive(plant, "L-1", 50)
    coil = lot(plant, "L-1")
    acting(plant, "1001")
    plant.add(LotMovement(lot_id=coil.id, kind="adjust", quantity=-50.5,
                          location_id=coil.location_id))
    with pytest.raises(DBAPIError, match="ck_material_lot_quantity"):
        plant.flush()
    plant.rollback()
    assert lot(plant, "L-1").quantity == 50


@pytest.mark.parametrize(("status", "message"), [
    ("on_hold", "lot COIL-1 is on hold: only available lots can be consumed"),
    ("quarantined", "lot COIL-1 is quarantined: only available lots can be consumed"),
])
def test_a_held_or_quarantined_lot_cannot_be_consumed(plant: Session, routing: Routing,
                                                      status: str, message: str) -> None:
    receive(plant, "COIL-1", 100)
    do(plant, "2001", lambda who: lots.set_status(plant, "COIL-1", status, who))
    run = start_run(plant, routing, routing.stamp_id, "PRESS-1", "1001")
    acting(plant, "1001")
    with pytest.raises(RuleViolation, match=message):
        lots.consume(plant, "COIL-1", 10, run, person(plant, "1001"))
    plant.rollback()
    assert lot(plant, "COIL-1").quantity == 100


def test_check_consumable_follows_the_bill_of_materials(plant: Session,
                                                        routing: Routing) -> None:
    receive(plant, "COIL-1", 100)
    receive(plant, "RAW-1", 100, material="BRACKET-RAW", location="LINE-2")
    stamping = start_run(plant, routing, routing.stamp_id, "PRESS-1", "1001")
    painting = start_run(plant, routing, routing.paint_id, "PAINT-1", "1002")
    stamp_run, paint_run = plant.get(OperationRun, stamping), plant.get(OperationRun, painting)
    assert stamp_run is not None and paint_run is not None

    lots.check_consumable(plant, lot(plant, "COIL-1"), stamp_run)
    lots.check_consumable(plant, lot(plant, "RAW-1"), paint_run)
    with pytest.raises(RuleViolation, match=(
            "lot RAW-1 is BRACKET-RAW, which operation STAMP of run .* does not use "
            r"\(its bill of materials asks for STEEL-COIL\)")):
        lots.check_consumable(plant, lot(plant, "RAW-1"), stamp_run)
    with pytest.raises(RuleViolation, match="asks for BRACKET-RAW"):
        lots.check_consumable(plant, lot(plant, "COIL-1"), paint_run)

    finish_run(plant, stamping, good=0)
    stamp_run = plant.get(OperationRun, stamping)
    assert stamp_run is not None
    with pytest.raises(RuleViolation, match="is completed: material goes only into a running"):
        lots.check_consumable(plant, lot(plant, "COIL-1"), stamp_run)

    # consume() applies the same check and writes nothing when it refuses.
    acting(plant, "1002")
    with pytest.raises(RuleViolation, match="does not use"):
        lots.consume(plant, "COIL-1", 10, painting, person(plant, "1002"))
    plant.rollback()
    assert lot(plant, "COIL-1").quantity == 100


def test_produce_links_the_output_to_what_the_run_consumed(plant: Session,
                                                          routing: Routing) -> None:
    receive(plant, "COIL-1", 100)
    receive(plant, "COIL-2", 100)
    run = start_run(plant, routing, routing.stamp_id, "PRESS-1", "1001")
    do(plant, "1001", lambda who: lots.consume(plant, "COIL-1", 60, run, who))
    do(plant, "1001", lambda who: lots.consume(plant, "COIL-2", 15, run, who))
    do(plant, "1001", lambda who: lots.consume(plant, "COIL-2", 5, run, who))
    do(plant, "1001", lambda who: lots.produce(plant, "RAW-1", "BRACKET-RAW", 160, "LINE-1",
                                               run, who))

    raw = lot(plant, "RAW-1")
    assert (raw.quantity, raw.produced_by_run_id, raw.status) == (160, run, "available")
    assert movements(plant, "RAW-1") == [("produce", 160, "LINE-1")]
    links = plant.execute(text(
        "SELECT p.code, g.kind, g.run_id, g.quantity FROM mes.genealogy_link g "
        "JOIN mes.material_lot p ON p.id = g.parent_lot_id ORDER BY p.code")).all()
    assert [tuple(link) for link in links] == [("COIL-1", "consumed", run, 60),
                                               ("COIL-2", "consumed", run, 20)]
    assert_balances_consistent(plant)


def test_produce_refuses_inputs_the_run_did_not_consume_and_the_wrong_material(
        plant: Session, routing: Routing) -> None:
    receive(plant, "COIL-1", 100)
    receive(plant, "COIL-2", 100)
    run = start_run(plant, routing, routing.stamp_id, "PRESS-1", "1001")
    do(plant, "1001", lambda who: lots.consume(plant, "COIL-1", 60, run, who))
    who = person(plant, "1001")
    acting(plant, "1001")
    with pytest.raises(RuleViolation, match="lot COIL-2 was not consumed by run"):
        lots.produce(plant, "RAW-1", "BRACKET-RAW", 10, "LINE-1", run, who,
                     parent_lot_codes=["COIL-1", "COIL-2"])
    plant.rollback()
    acting(plant, "1001")
    with pytest.raises(RuleViolation, match="makes BRACKET-RAW, not BRACKET-A"):
        lots.produce(plant, "RAW-1", "BRACKET-A", 10, "LINE-1", run, who)
    plant.rollback()
    assert plant.execute(text(
        "SELECT count(*) FROM mes.material_lot WHERE code = 'RAW-1'")).scalar_one() == 0


def test_balances_equal_the_movements_through_a_whole_day(plant: Session,
                                                          routing: Routing) -> None:
    receive(plant, "COIL-1", 500)
    receive(plant, "COIL-2", 300)
    do(plant, "1001", lambda who: lots.split(plant, "COIL-1", [("COIL-1A", 200)], who))
    do(plant, "1001", lambda who: lots.move(plant, "COIL-1A", "LINE-1", who))
    run = start_run(plant, routing, routing.stamp_id, "PRESS-1", "1001")
    do(plant, "1001", lambda who: lots.consume(plant, "COIL-1A", 200, run, who))
    do(plant, "1001", lambda who: lots.consume(plant, "COIL-2", 100, run, who))
    do(plant, "1001", lambda who: lots.produce(plant, "RAW-1", "BRACKET-RAW", 300, "LINE-2",
                                               run, who))
    do(plant, "1001", lambda who: lots.produce(plant, "RAW-2", "BRACKET-RAW", 290, "LINE-2",
                                               run, who))
    do(plant, "1001", lambda who: lots.merge(plant, ["RAW-1", "RAW-2"], "RAW-M", who))
    do(plant, "2001", lambda who: lots.set_status(plant, "COIL-2", "quarantined", who))
    do(plant, "2001", lambda who: lots.move(plant, "COIL-2", "QUARANTINE", who))

    assert balance(plant) == {("STEEL-COIL", "RM-STORE"): 300,
                              ("STEEL-COIL", "LINE-1"): 0,
                              ("STEEL-COIL", "QUARANTINE"): 200,
                              ("BRACKET-RAW", "LINE-2"): 590}
    assert_balances_consistent(plant)


# --- two operators at once ---------------------------------------------------------------------

def _consume_in_own_session(db_url: str, run: int, quantity: float, start: threading.Barrier,
                            outcome: dict[str, str], name: str) -> None:
    with session_factory(db_url)() as session:
        try:
            with session.begin():
                acting(session, "1001")
                start.wait(timeout=10)
                lots.consume(session, "L-1", quantity, run, person(session, "1001"))
            outcome[name] = "ok"
        except RuleViolation as error:
            outcome[name] = str(error)


def test_two_operators_consuming_from_one_lot_at_once(db_url: str, plant: Session,
                                                      routing: Routing) -> None:
    receive(plant, "L-1", 100)
    run = start_run(plant, routing, routing.stamp_id, "PRESS-1", "1001")
    start = threading.Barrier(2)
    outcome: dict[str, str] = {}
    threads = [threading.Thread(target=_consume_in_own_session,
                                args=(db_url, run, 60, start, outcome, name))
               for name in ("first", "second")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(outcome.values()) == ["lot L-1: 60 kg wanted, 40 kg left", "ok"]
    assert lot(plant, "L-1").quantity == 40
    assert plant.execute(text(
        "SELECT sum(m.quantity) FROM mes.lot_movement m JOIN mes.material_lot l "
        "ON l.id = m.lot_id WHERE l.code = 'L-1'")).scalar_one() == 40
    assert_balances_consistent(plant)


def test_the_second_operator_waits_for_the_first(db_url: str, plant: Session,
                                                 routing: Routing) -> None:
    """The first holds the lot's row lock until it commits; the second waits, then sees
    what is left (not the quantity it read before) and is refused."""
    receive(plant, "L-1", 100)
    run = start_run(plant, routing, routing.stamp_id, "PRESS-1", "1001")
    outcome: dict[str, str] = {}
    first = session_factory(db_url)()
    acting(first, "1001")
    lots.consume(first, "L-1", 70, run, person(first, "1001"))  # locked, not committed
    second = threading.Thread(target=_consume_in_own_session,
                              args=(db_url, run, 50, threading.Barrier(1), outcome, "second"))
    second.start()
    try:
        waiting = 0
        for _ in range(100):
            waiting = plant.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'")).scalar_one()
            plant.rollback()
            if waiting:
                break
            time.sleep(0.05)
        assert waiting == 1, "the second operator should wait for the first's lock"
        assert "second" not in outcome
    finally:
        first.commit()
        first.close()
        second.join(timeout=30)
    assert outcome == {"second": "lot L-1: 50 kg wanted, 30 kg left"}
    assert lot(plant, "L-1").quantity == 30


# --- the audit log -----------------------------------------------------------------------------

def test_lot_changes_are_in_the_audit_log_with_who(plant: Session, routing: Routing) -> None:
    receive(plant, "COIL-1", 500)
    do(plant, "1002", lambda who: lots.split(plant, "COIL-1", [("COIL-1A", 100)], who))
    do(plant, "2001", lambda who: lots.set_status(plant, "COIL-1A", "on_hold", who))

    coil = lot(plant, "COIL-1")
    records = plant.execute(text(
        "SELECT actor, action, after->>'kind' AS kind, after->>'quantity' AS quantity "
        "FROM mes.audit_log WHERE table_name = 'lot_movement' ORDER BY id")).all()
    assert [tuple(r) for r in records] == [("1001", "insert", "receive", "500"),
                                           ("1002", "insert", "split_out", "-100"),
                                           ("1002", "insert", "split_in", "100")]
    lot_records = plant.execute(text(
        "SELECT actor, action, before->>'quantity', after->>'quantity' FROM mes.audit_log "
        "WHERE table_name = 'material_lot' AND record_id = :id ORDER BY id"),
        {"id": str(coil.id)}).all()
    assert [tuple(r) for r in lot_records] == [("1001", "insert", None, "0"),
                                               ("1001", "update", "0", "500"),
                                               ("1002", "update", "500", "400")]
    held = plant.execute(text(
        "SELECT actor, before->>'status', after->>'status' FROM mes.audit_log "
        "WHERE table_name = 'material_lot' AND after->>'code' = 'COIL-1A' "
        "AND before->>'status' IS DISTINCT FROM after->>'status' AND action = 'update'")).all()
    assert [tuple(r) for r in held] == [("2001", "available", "on_hold")]
    link = plant.execute(text(
        "SELECT actor FROM mes.audit_log WHERE table_name = 'genealogy_link'")).scalars().all()
    assert link == ["1002"]


# --- shipping to another site ------------------------------------------------------------

def audit_rows(session: Session) -> int:
    return int(session.execute(text("SELECT count(*) FROM mes.audit_log")).scalar_one())


def test_shipping_takes_the_whole_lot_out_and_names_the_site(plant: Session) -> None:
    receive(plant, "COIL-1", 500)
    before = plant.execute(text("SELECT max(id) FROM mes.audit_log")).scalar_one()
    do(plant, "1001", lambda who: lots.ship(plant, "COIL-1", "SOUTH", who))

    coil = lot(plant, "COIL-1")
    assert (coil.quantity, coil.status, coil.shipped_to_site) == (0, "shipped", "SOUTH")
    assert movements(plant, "COIL-1") == [("receive", 500, "RM-STORE"),
                                          ("ship_out", -500, "RM-STORE")]
    assert balance(plant) == {("STEEL-COIL", "RM-STORE"): 0}
    audited = plant.execute(text(
        "SELECT table_name, actor, after->>'kind', after->>'status', after->>'shipped_to_site' "
        "FROM mes.audit_log WHERE id > :before ORDER BY id"), {"before": before}).all()
    assert ("lot_movement", "1001", "ship_out", None, None) in audited
    assert ("material_lot", "1001", None, "shipped", "SOUTH") in audited
    assert {row[1] for row in audited} == {"1001"}
    acting(plant, "1001")
    with pytest.raises(IllegalTransition, match="lot COIL-1 is shipped: it cannot be split"):
        lots.split(plant, "COIL-1", [("COIL-1A", 1)], person(plant, "1001"))
    plant.rollback()


def test_a_lot_received_from_another_site_keeps_its_code_and_names_its_origin(
        plant: Session) -> None:
    do(plant, "1001", lambda who: lots.receive(plant, "COIL-9", "STEEL-COIL", 40, "RM-STORE",
                                               who, from_site="SOUTH"))

    coil = lot(plant, "COIL-9")
    assert (coil.quantity, coil.origin_site, coil.shipped_to_site) == (40, "SOUTH", None)
    assert movements(plant, "COIL-9") == [("receive", 40, "RM-STORE")]


@pytest.mark.parametrize(("status", "to_site", "message"), [
    ("on_hold", "SOUTH",
     "lot COIL-1 is on hold: only available lots can be shipped (release it first)"),
    ("quarantined", "SOUTH", "lot COIL-1 is quarantined: only available lots can be shipped"),
    ("scrapped", "SOUTH", "lot COIL-1 is scrapped: only available lots can be shipped"),
    ("available", "NORTH", "shipping lot COIL-1: NORTH is this plant's own site"),
    ("available", " ", "shipping lot COIL-1: name the other site by its code"),
])
def test_shipping_a_lot_that_may_not_go_is_refused_and_writes_nothing(
        plant: Session, status: str, to_site: str, message: str) -> None:
    receive(plant, "COIL-1", 500)
    if status != "available":
        do(plant, "2001", lambda who: lots.set_status(plant, "COIL-1", status, who))
    before = (movements(plant, "COIL-1"), lot(plant, "COIL-1").status, audit_rows(plant))
    plant.commit()

    acting(plant, "1001")
    with pytest.raises(RuleViolation, match=re.escape(message)):
        lots.ship(plant, "COIL-1", to_site, person(plant, "1001"))
    plant.rollback()

    coil = lot(plant, "COIL-1")
    assert (movements(plant, "COIL-1"), coil.status, audit_rows(plant)) == before
    assert coil.shipped_to_site is None


# --- the `mes lot` commands --------------------------------------------------------------------

@pytest.mark.slow
def test_lot_commands(use_database: str, log_in: Callable[..., None]) -> None:
    with session_factory(use_database)() as session:
        setup_plant(session)
    runner = CliRunner()

    def mes(*args: str) -> str:
        result = runner.invoke(app, list(args))
        assert result.exit_code == 0, result.output
        return result.output

    log_in("1001")
    out = mes("lot", "receive", "COIL-1", "--material", "STEEL-COIL", "--quantity", "500",
              "--location", "RM-STORE")
    assert "received lot COIL-1: 500 kg of STEEL-COIL, available, at RM-STORE" in out
    out = mes("lot", "split", "COIL-1", "--into", "COIL-1A=120", "--into", "COIL-1B=80")
    assert "new lot COIL-1A: 120 kg" in out and "new lot COIL-1B: 80 kg" in out
    assert "left lot COIL-1: 300 kg" in out
    out = mes("lot", "merge", "COIL-1A", "COIL-1B", "--into", "COIL-M")
    assert "merged COIL-1A, COIL-1B into lot COIL-M: 200 kg of STEEL-COIL" in out
    out = mes("lot", "ship", "COIL-1", "--to-site", "SOUTH")
    assert "shipped lot COIL-1: 0 kg of STEEL-COIL, shipped, to site SOUTH" in out
    out = mes("lot", "receive", "COIL-S", "--material", "STEEL-COIL", "--quantity", "30",
              "--location", "RM-STORE", "--from-site", "SOUTH")
    assert "received lot COIL-S: 30 kg of STEEL-COIL, available, at RM-STORE, from site " \
           "SOUTH" in out
    log_in("1002")
    out = mes("lot", "move", "COIL-M", "LINE-1")
    assert "moved lot COIL-M: 200 kg of STEEL-COIL, available, at LINE-1" in out
    log_in("2001")
    out = mes("lot", "status", "COIL-M", "on-hold")
    assert "lot COIL-M: 200 kg of STEEL-COIL, on hold, at LINE-1" in out
    refused = runner.invoke(app, ["lot", "status", "COIL-1A", "available"])
    assert refused.exit_code == 1
    assert "lot COIL-1A cannot go from consumed to available" in refused.output
    log_in("1002")
    no_role = runner.invoke(app, ["lot", "status", "COIL-M", "available"])
    assert no_role.exit_code == 1
    assert "1002 (Ben Okafor) may not release a lot from hold or quarantine: it needs the " \
           "role quality" in no_role.output
    bad = runner.invoke(app, ["lot", "split", "COIL-M", "--into", "X"])
    assert bad.exit_code != 0 and "CODE=QUANTITY" in bad.output
    mes("logout")
    unknown = runner.invoke(app, ["lot", "move", "COIL-M", "RM-STORE"])
    assert unknown.exit_code == 1 and "nobody is logged in" in unknown.output
    # Administration with the owner's credentials, nobody logged in: the `mes-admin` account.
    out = mes("lot", "location", "DOCK-2", "--name", "Receiving dock 2")
    assert "storage location DOCK-2 added" in out

    with engine(use_database).connect() as conn:
        held = conn.execute(text(
            "SELECT status, quantity FROM mes.material_lot WHERE code = 'COIL-M'")).one()
        actors = conn.execute(text(
            "SELECT DISTINCT actor FROM mes.audit_log WHERE actor NOT IN "
            "('mes-admin', 'mes-login') ORDER BY actor")).scalars().all()
    assert tuple(held) == ("on_hold", 200)
    assert actors == ["1001", "1002", "2001"]
