"""The integrity holes a new user found (issue 10): each is attempted, refused, and shown
to have changed nothing."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from psycopg import errors
from sqlalchemy import func, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, SessionTransaction
from typer.testing import CliRunner

from mes.cli import app
from mes.db import session_factory
from tests.conftest import SAMPLE_PLANT, AdminConnection
from tests.transactional.shop_floor import (
    CERTIFIED,
    HOLE,
    ORDER,
    PAINTING,
    QUALITY,
    STAMPING,
    SUPERVISOR,
    ShopFloor,
    acting_as,
    add_lot,
    fresh_lot,
    set_order_status,
    sign_on_directly,
    stamping_run,
)
from transactional.audit import acting
from transactional.erp_import import import_orders
from transactional.errors import IllegalTransition, NotPermitted, RuleViolation
from transactional.lots import receive, set_status
from transactional.models import (
    AuditLog,
    InspectionPlan,
    MaintenanceWindow,
    MaterialLot,
    OperationRun,
    PersonClassMembership,
    RunCorrection,
    WorkOrder,
)
from transactional.orders import (
    abort_run,
    complete_run,
    correct_run,
    report,
    start_run,
    transition,
)
from transactional.plant import load_plant
from transactional.plant_file import read_plant_file
from transactional.products import load_products, read_products_file
from transactional.quality import record_inspection

SAMPLES = SAMPLE_PLANT.parent


@pytest.fixture
def run_id(session: Session, floor: ShopFloor) -> int:
    """Operation 10 of order 4711 running on PRESS-1, operator 1001."""
    return stamping_run(session)


def _lot(session: Session, code: str) -> MaterialLot:
    return fresh_lot(session, code)


def _run(session: Session, run: int) -> OperationRun:
    with session.begin():
        return session.scalars(select(OperationRun).where(OperationRun.id == run)
                               .execution_options(populate_existing=True)).one()


def _open_ncr(session: Session, run: int, lot_code: str) -> str:
    with acting_as(session, CERTIFIED):
        outcome = record_inspection(session, run, HOLE, 1, 10.3, CERTIFIED, lot_code)
    return outcome.nonconformances[0].code


# --- a lot held by an open nonconformance ---------------------------------------------------

@pytest.mark.parametrize("badge", [CERTIFIED, SUPERVISOR, QUALITY])
def test_a_lot_held_by_an_open_ncr_is_released_only_by_its_disposition(
        session: Session, run_id: int, badge: str) -> None:
    add_lot(session, "L-1", run_id, 50)
    code = _open_ncr(session, run_id, "L-1")
    with pytest.raises(NotPermitted) as refused, acting_as(session, badge):
        set_status(session, "L-1", "available", 1)
    assert (f"held by open nonconformance {code}" in str(refused.value)
            or "may not release a lot from hold" in str(refused.value))
    assert _lot(session, "L-1").status == "on_hold"


# --- an inspection names a lot that is not the run's ----------------------------------------

def test_an_inspection_refuses_a_lot_that_is_not_the_runs(session: Session,
                                                          run_id: int) -> None:
    add_lot(session, "OTHER-ORDER-LOT", None, 40)
    with pytest.raises(RuleViolation, match="neither an input nor an output of run"), \
            acting_as(session, CERTIFIED):
        record_inspection(session, run_id, HOLE, 1, 10.3, CERTIFIED, "OTHER-ORDER-LOT")
    assert _lot(session, "OTHER-ORDER-LOT").status == "available"
    with session.begin():
        assert session.scalar(text("SELECT count(*) FROM mes.nonconformance")) == 0
        assert session.scalar(text("SELECT count(*) FROM mes.inspection_result")) == 0


# --- success printed before the commit -----------------------------------------------------

def test_nothing_is_printed_as_done_when_the_commit_fails(
        session: Session, floor: ShopFloor, use_database: str, log_in: Callable[..., None],
        monkeypatch: pytest.MonkeyPatch) -> None:
    set_order_status(session, "released")
    sign_on_directly(session, CERTIFIED, "PRESS-1")
    log_in(CERTIFIED)

    def refuse_commit(self: SessionTransaction) -> None:
        raise OperationalError("COMMIT", {}, psycopg.OperationalError(
            "server closed the connection unexpectedly"))

    monkeypatch.setattr(SessionTransaction, "commit", refuse_commit)
    result = CliRunner().invoke(app, ["run", "start", ORDER, STAMPING, "PRESS-1"])
    monkeypatch.undo()
    assert result.exit_code == 1
    assert "started" not in result.output
    with session.begin():
        assert session.scalar(select(func.count(OperationRun.id))) == 0


# --- quantities ----------------------------------------------------------------------------

@pytest.mark.parametrize("good, finding", [
    (1e12, "more than 1e\\+09"),
    (1e300, "more than 1e\\+09"),
    (0.0000001, "is not in whole pieces"),
    (2.5, "is not in whole pieces"),
    (float("inf"), "must be a positive number"),
    (201, "more than 2 times the 100 planned"),
])
def test_a_report_out_of_bounds_is_refused(session: Session, run_id: int, good: float,
                                           finding: str) -> None:
    with pytest.raises(RuleViolation, match=finding), acting_as(session, CERTIFIED):
        report(session, run_id, good, 0)
    assert (_run(session, run_id).good_quantity, _run(session, run_id).version) == (0, 1)


def test_a_received_quantity_out_of_bounds_is_refused(session: Session,
                                                       floor: ShopFloor) -> None:
    for quantity, finding in ((1e300, "more than"), (0.0000001, "steps of 0.001 kg")):
        with pytest.raises(RuleViolation, match=finding), acting_as(session, CERTIFIED):
            receive(session, "COIL-X", "STEEL-COIL", quantity, "WIP-L1", 1)
    with session.begin():
        assert session.scalar(select(MaterialLot.id).where(MaterialLot.code == "COIL-X")) \
            is None


def test_a_supervisor_corrects_and_aborts_a_run_on_the_record(session: Session,
                                                               run_id: int) -> None:
    with acting_as(session, CERTIFIED):
        report(session, run_id, 50, 0)
    with pytest.raises(NotPermitted, match="may not correct a run's quantities: it needs the "
                       "role supervisor"), acting_as(session, CERTIFIED):
        correct_run(session, run_id, 5, 0, "typo")
    with acting_as(session, SUPERVISOR):
        correct_run(session, run_id, 5, 1, "operator typed 50 for 5")
    assert (_run(session, run_id).good_quantity, _run(session, run_id).scrap_quantity) == (5, 1)
    with acting_as(session, SUPERVISOR):
        abort_run(session, run_id, "wrong coil loaded")
    aborted = _run(session, run_id)
    assert (aborted.status, aborted.abort_reason) == ("aborted", "wrong coil loaded")
    with session.begin():
        correction = session.scalars(select(RunCorrection)).one()
        assert (correction.good_before, correction.good_after) == (50, 5)
        audited = set(session.scalars(select(AuditLog.table_name)
                                      .where(AuditLog.actor == SUPERVISOR)))
    assert audited == {"run_correction", "operation_run"}


# --- quantity set directly ----------------------------------------------------------------

def test_a_lot_quantity_changes_only_through_movements(session: Session, floor: ShopFloor,
                                                       db_admin: AdminConnection) -> None:
    add_lot(session, "COIL-1", None, 300, material="STEEL-COIL")
    db_admin.execute("SELECT set_config('mes.actor', '1001', false)")
    for role in ("mes_app", None):  # the application role, then even the owner's rights
        if role:
            db_admin.execute(f"SET ROLE {role}")
        with pytest.raises(errors.InsufficientPrivilege):
            db_admin.execute("UPDATE mes.material_lot SET quantity = 999 "
                             "WHERE code = 'COIL-1'")
        db_admin.execute("RESET ROLE")
    assert _lot(session, "COIL-1").quantity == 300


# --- spec limits and class memberships audited ---------------------------------------------

def test_spec_limit_changes_and_class_memberships_are_audited(session: Session,
                                                              floor: ShopFloor) -> None:
    with acting_as(session, "mes-admin"):
        plan = session.scalars(select(InspectionPlan)
                               .where(InspectionPlan.characteristic == HOLE)).one()
        plan.upper_spec = 10.5
        session.add(PersonClassMembership(person_id=1, personnel_class_id=2))
    with session.begin():
        logged = {(r.table_name, r.action) for r in session.scalars(
            select(AuditLog).where(AuditLog.table_name.in_(
                ("inspection_plan", "person_class_membership")), AuditLog.action != "insert"
                                   if False else AuditLog.id > 0))}
    assert ("inspection_plan", "update") in logged
    assert ("person_class_membership", "insert") in logged


# --- held orders, maintenance windows, operation order, open NCRs -------------------------

def test_a_held_order_takes_no_reports_and_no_completion(session: Session,
                                                         run_id: int) -> None:
    with acting_as(session, SUPERVISOR):
        transition(session, ORDER, "on_hold")
    with pytest.raises(IllegalTransition, match="order 4711 is on hold"), \
            acting_as(session, CERTIFIED):
        report(session, run_id, 10, 0)
    with pytest.raises(IllegalTransition, match="order 4711 is on hold"), \
            acting_as(session, CERTIFIED):
        complete_run(session, run_id, CERTIFIED)
    run = _run(session, run_id)
    assert (run.status, run.good_quantity) == ("running", 0)


def test_no_run_starts_inside_a_maintenance_window(session: Session,
                                                   floor: ShopFloor) -> None:
    set_order_status(session, "released")
    sign_on_directly(session, CERTIFIED, "PRESS-1")
    with acting_as(session, "mes-admin"):
        press = session.scalar(text("SELECT id FROM mes.equipment WHERE code = 'PRESS-1'"))
        now = dt.datetime.now(dt.UTC)
        session.add(MaintenanceWindow(external_id="PM-NOW", equipment_id=press,
                                      starts_at=now - dt.timedelta(hours=1),
                                      ends_at=now + dt.timedelta(hours=1)))
    with pytest.raises(RuleViolation, match="PRESS-1 is in maintenance window PM-NOW"), \
            acting_as(session, CERTIFIED):
        start_run(session, ORDER, STAMPING, "PRESS-1", CERTIFIED)
    with session.begin():
        assert session.scalar(select(func.count(OperationRun.id))) == 0


def test_operation_20_waits_for_10_to_produce(session: Session, floor: ShopFloor) -> None:
    set_order_status(session, "released")
    sign_on_directly(session, CERTIFIED, "PAINT-1")
    with pytest.raises(RuleViolation, match="operation 10 \\(Stamp\\) has produced nothing"), \
            acting_as(session, CERTIFIED):
        start_run(session, ORDER, PAINTING, "PAINT-1", CERTIFIED)
    with session.begin():
        assert session.scalar(select(func.count(OperationRun.id))) == 0
        assert session.scalar(select(WorkOrder.status)) == "released"


def test_an_order_with_an_open_ncr_does_not_complete(session: Session, run_id: int) -> None:
    add_lot(session, "L-1", run_id, 50)
    code = _open_ncr(session, run_id, "L-1")
    with session.begin():
        acting(session, "mes-admin")
        session.execute(text("UPDATE mes.operation_run SET status = 'completed', "
                             "ended_at = now()"))
    with pytest.raises(RuleViolation, match=f"nonconformance {code} is still open"), \
            acting_as(session, SUPERVISOR):
        transition(session, ORDER, "completed")
    with session.begin():
        assert session.scalar(select(WorkOrder.status)) == "in_progress"


# --- a 10,000-character id ------------------------------------------------------------------

def test_a_huge_id_is_refused_naming_the_field(session: Session, floor: ShopFloor,
                                               use_database: str,
                                               log_in: Callable[..., None]) -> None:
    log_in(CERTIFIED)
    result = CliRunner().invoke(app, ["lot", "receive", "X" * 10_000, "--material",
                                      "STEEL-COIL", "--quantity", "5", "--location", "WIP-L1"])
    assert result.exit_code == 1
    assert "lot code: 10000 characters, at most 64 allowed" in result.output
    assert "cannot reach the database" not in result.output
    with session.begin():
        assert session.scalar(select(func.count(MaterialLot.id))) == 0


def test_a_huge_erp_order_id_is_refused_naming_the_field(tmp_path: Path, db_url: str) -> None:
    path = tmp_path / "orders.csv"
    path.write_text("order_id,product,quantity\n" + "9" * 10_000 + ",BRACKET-A,10\n")
    with session_factory(db_url)() as opened, opened.begin():
        acting(opened, "mes-admin")
        with pytest.raises(Exception, match="order_id") as refused:
            import_orders(opened, path)
    assert "at most 64" in str(refused.value)


# --- two imports of the same new file at once -----------------------------------------------

@pytest.mark.slow
def test_two_simultaneous_imports_of_a_new_file(db_url: str) -> None:
    with session_factory(db_url)() as opened, opened.begin():
        acting(opened, "mes-admin")
        load_plant(opened, read_plant_file(SAMPLE_PLANT))
        load_products(opened, read_products_file(SAMPLES / "products.toml"))
    start = threading.Barrier(2)
    outcomes: list[object] = []

    def importer() -> None:
        try:
            with session_factory(db_url)() as opened, opened.begin():
                acting(opened, "4001")
                start.wait()
                outcomes.append(import_orders(opened, SAMPLES / "orders.csv").summary())
        except BaseException as error:  # shown by the assertion below
            outcomes.append(error)

    threads = [threading.Thread(target=importer) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(map(str, outcomes)) == ["0 created, 0 updated, 3 unchanged",
                                          "3 created, 0 updated, 0 unchanged"], outcomes
