"""Work orders and operation runs: the order's state machine, who may start a run where,
which work instruction was served, quantities, the inspection gate, actuals."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from mes.cli import app
from tests.conftest import PASSWORD
from tests.transactional.shop_floor import (
    CERTIFIED,
    EXPIRED,
    FLATNESS,
    HOLE,
    ORDER,
    PAINTING,
    STAMPING,
    SUPERVISOR,
    ShopFloor,
    acting_as,
    add_lot,
    person_id,
    set_order_status,
    sign_on_directly,
)
from transactional.documents import release
from transactional.errors import (
    ConcurrentChange,
    IllegalTransition,
    NotFound,
    NotPermitted,
    RuleViolation,
)
from transactional.labor import sign_off, sign_on
from transactional.lots import consume
from transactional.models import (
    AuditLog,
    DocumentRevision,
    GenealogyLink,
    MaterialDefinition,
    MaterialLot,
    Nonconformance,
    OperationRun,
    Person,
    WorkOrder,
)
from transactional.orders import (
    TRANSITIONS,
    WORK_ORDER_STATUSES,
    complete_run,
    report,
    run_performance,
    start_run,
    transition,
)
from transactional.quality import record_inspection


def order(session: Session) -> WorkOrder:
    with session.begin():
        return session.scalars(select(WorkOrder).where(WorkOrder.code == ORDER)
                               .execution_options(populate_existing=True)).one()


def started(session: Session, badge: str = CERTIFIED, machine: str = "PRESS-1") -> int:
    """Order 4711 released, the operator signed on, operation 10 started: the run's id."""
    if order(session).status == "created":
        with acting_as(session, SUPERVISOR):
            transition(session, ORDER, "released")
    sign_on_directly(session, badge, machine)
    with acting_as(session, badge):
        return start_run(session, ORDER, STAMPING, machine, badge).id


def all_samples(session: Session, run_id: int, badge: str = CERTIFIED) -> None:
    with acting_as(session, badge):
        record_inspection(session, run_id, HOLE, 1, 10.0, badge)
        record_inspection(session, run_id, HOLE, 2, 10.02, badge)
        record_inspection(session, run_id, FLATNESS, 1, 0.1, badge)


# --- the order's state machine ----------------------------------------------------------

ALLOWED = {(source, target) for source, targets in TRANSITIONS.items() for target in targets}
ILLEGAL = [pair for pair in itertools.product(WORK_ORDER_STATUSES, repeat=2)
           if pair not in ALLOWED]


def test_the_allowed_moves_are_exactly_those_of_the_order_life_cycle() -> None:
    life_cycle = {
        ("created", "released"), ("released", "in_progress"), ("in_progress", "on_hold"),
        ("on_hold", "in_progress"), ("in_progress", "completed"), ("completed", "closed"),
        ("created", "cancelled"), ("released", "cancelled"), ("on_hold", "cancelled")}
    assert life_cycle == ALLOWED
    assert len(ILLEGAL) == 40


def test_an_order_goes_through_its_life_and_each_move_bumps_its_version(
        session: Session, floor: ShopFloor) -> None:
    first = order(session)
    assert (first.status, first.version) == ("created", 1)
    created_at_version_1 = first.updated_at
    with acting_as(session, SUPERVISOR):
        released = transition(session, ORDER, "released", expected_version=1)
    assert (released.status, released.version) == ("released", 2)
    assert released.updated_at > created_at_version_1

    run_id = started(session)
    assert (order(session).status, order(session).version) == ("in_progress", 3)

    with acting_as(session, SUPERVISOR):
        transition(session, ORDER, "on_hold")
    with acting_as(session, SUPERVISOR):
        transition(session, ORDER, "in_progress")
    all_samples(session, run_id)
    with acting_as(session, CERTIFIED):
        complete_run(session, run_id, CERTIFIED)
    with acting_as(session, SUPERVISOR):
        transition(session, ORDER, "completed")
    with acting_as(session, SUPERVISOR):
        closed = transition(session, ORDER, "closed")
    assert (closed.status, closed.version) == ("closed", 7)


@pytest.mark.parametrize(("source", "target"), ILLEGAL, ids=[f"{a}->{b}" for a, b in ILLEGAL])
def test_every_other_move_is_refused_naming_from_and_to(
        session: Session, floor: ShopFloor, source: str, target: str) -> None:
    set_order_status(session, source)

    with pytest.raises(IllegalTransition) as refused, acting_as(session, SUPERVISOR):
        transition(session, ORDER, target)

    assert str(refused.value) == f"order {ORDER} cannot go from {source} to {target}"
    after = order(session)
    assert (after.status, after.version) == (source, 1)


def test_an_unknown_status_or_order_is_refused(session: Session, floor: ShopFloor) -> None:
    with pytest.raises(RuleViolation, match="'started' is not a work order status"), \
            acting_as(session, SUPERVISOR):
        transition(session, ORDER, "started")
    with pytest.raises(NotFound, match="no work order 999"), acting_as(session, SUPERVISOR):
        transition(session, "999", "released")


def test_a_stale_expected_version_is_refused(session: Session, floor: ShopFloor) -> None:
    with acting_as(session, SUPERVISOR):
        transition(session, ORDER, "released", expected_version=1)

    with pytest.raises(ConcurrentChange, match="version 2, you saw 1"), \
            acting_as(session, SUPERVISOR):
        transition(session, ORDER, "cancelled", expected_version=1)
    assert order(session).status == "released"


def test_an_order_cannot_complete_or_be_cancelled_while_a_run_runs(
        session: Session, floor: ShopFloor) -> None:
    run_id = started(session)
    with pytest.raises(RuleViolation, match=f"run {run_id} is still running on PRESS-1"), \
            acting_as(session, SUPERVISOR):
        transition(session, ORDER, "completed")
    assert order(session).status == "in_progress"


# --- starting a run -----------------------------------------------------------------------

def test_the_first_run_start_moves_the_order_in_progress_and_records_what_was_served(
        session: Session, floor: ShopFloor) -> None:
    run_id = started(session)

    with session.begin():
        run = session.get_one(OperationRun, run_id)
        assert run.status == "running"
        assert run.planned_quantity == 100
        assert run.document_revision_id == floor.revision_id
        assert run.operation_id == floor.stamping_id
    assert order(session).status == "in_progress"


def test_the_run_keeps_the_revision_served_at_its_start(
        session: Session, floor: ShopFloor) -> None:
    first = started(session)
    with acting_as(session, SUPERVISOR):
        session.add(DocumentRevision(document_id=floor.document_id, revision=2,
                                     content="Rev 2: also deburr the edge."))
    with acting_as(session, SUPERVISOR):
        revision_2 = release(session, "WI-PRESS", 2, SUPERVISOR).id
    # A second run on the other press, by the same operator after moving there.
    with acting_as(session, CERTIFIED):
        sign_off(session, CERTIFIED)
        sign_on(session, CERTIFIED, "PRESS-2")
    with acting_as(session, CERTIFIED):
        later = start_run(session, ORDER, STAMPING, "PRESS-2", CERTIFIED).id

    with session.begin():
        assert session.get_one(OperationRun, first).document_revision_id == floor.revision_id
        assert session.get_one(OperationRun, later).document_revision_id == revision_2


@pytest.mark.parametrize("status", ["created", "on_hold", "completed", "closed", "cancelled"])
def test_no_run_starts_on_an_order_that_is_not_released_or_in_progress(
        session: Session, floor: ShopFloor, status: str) -> None:
    set_order_status(session, status)
    sign_on_directly(session, CERTIFIED, "PRESS-1")

    with pytest.raises(IllegalTransition, match=f"order {ORDER} is {status}"), \
            acting_as(session, CERTIFIED):
        start_run(session, ORDER, STAMPING, "PRESS-1", CERTIFIED)
    with session.begin():
        assert session.scalars(select(OperationRun)).all() == []


def test_a_machine_of_the_wrong_type_or_no_machine_is_refused(
        session: Session, floor: ShopFloor) -> None:
    set_order_status(session, "released")
    sign_on_directly(session, CERTIFIED, "PAINT-1")
    with pytest.raises(RuleViolation, match=(
            "operation 10 of order 4711 needs a STAMPING machine; PAINT-1 is FINISHING")), \
            acting_as(session, CERTIFIED):
        start_run(session, ORDER, STAMPING, "PAINT-1", CERTIFIED)
    with pytest.raises(RuleViolation, match="L1 is a work center, not a machine"), \
            acting_as(session, CERTIFIED):
        start_run(session, ORDER, STAMPING, "L1", CERTIFIED)
    with pytest.raises(NotFound, match="order 4711 has no operation 30"), \
            acting_as(session, CERTIFIED):
        start_run(session, ORDER, "30", "PRESS-1", CERTIFIED)
    # The painting operation needs no certification or instruction, but stamping has to
    # have made something first.
    with pytest.raises(RuleViolation, match="operation 20 of order 4711 cannot start: "
                       "operation 10 \\(Stamp\\) has produced nothing yet"), \
            acting_as(session, CERTIFIED):
        start_run(session, ORDER, PAINTING, "PAINT-1", CERTIFIED)


def test_an_operator_who_is_not_signed_on_at_the_machine_is_refused(
        session: Session, floor: ShopFloor) -> None:
    set_order_status(session, "released")
    with pytest.raises(NotPermitted, match="operator 1001 is not signed on at PRESS-1"), \
            acting_as(session, CERTIFIED):
        start_run(session, ORDER, STAMPING, "PRESS-1", CERTIFIED)

    sign_on_directly(session, CERTIFIED, "PRESS-2")
    with pytest.raises(NotPermitted, match="operator 1001 is not signed on at PRESS-1"), \
            acting_as(session, CERTIFIED):
        start_run(session, ORDER, STAMPING, "PRESS-1", CERTIFIED)


def test_an_operator_without_the_certification_is_refused(
        session: Session, floor: ShopFloor) -> None:
    set_order_status(session, "released")
    sign_on_directly(session, SUPERVISOR, "PRESS-1")

    with pytest.raises(NotPermitted) as refused, acting_as(session, SUPERVISOR):
        start_run(session, ORDER, STAMPING, "PRESS-1", SUPERVISOR)

    assert str(refused.value) == "operator 3001 is not certified PRESS-OPERATOR"


def test_an_expired_certification_is_refused_with_its_date(
        session: Session, floor: ShopFloor) -> None:
    set_order_status(session, "released")
    sign_on_directly(session, EXPIRED, "PRESS-1")

    with pytest.raises(NotPermitted) as refused, acting_as(session, EXPIRED):
        start_run(session, ORDER, STAMPING, "PRESS-1", EXPIRED)

    assert str(refused.value) == (f"operator 1002 is not certified PRESS-OPERATOR "
                                  f"(expired {floor.expired_on:%Y-%m-%d})")


def test_a_certification_not_yet_valid_is_refused_and_one_valid_today_allowed(
        session: Session, floor: ShopFloor) -> None:
    set_order_status(session, "released")
    sign_on_directly(session, EXPIRED, "PRESS-1")
    with acting_as(session, "mes-admin"):
        session.execute(text(
            "UPDATE mes.person_certification SET valid_from = current_date + 1, "
            "valid_until = NULL WHERE person_id = (SELECT id FROM mes.person "
            "WHERE badge = '1002')"))
    with pytest.raises(NotPermitted, match=r"PRESS-OPERATOR \(valid from "), \
            acting_as(session, EXPIRED):
        start_run(session, ORDER, STAMPING, "PRESS-1", EXPIRED)

    # Valid from today, until today: both ends count.
    with acting_as(session, "mes-admin"):
        session.execute(text(
            "UPDATE mes.person_certification SET valid_from = current_date, "
            "valid_until = current_date WHERE person_id = (SELECT id FROM mes.person "
            "WHERE badge = '1002')"))
    with acting_as(session, EXPIRED):
        run = start_run(session, ORDER, STAMPING, "PRESS-1", EXPIRED)
    assert run.status == "running"


def test_a_run_without_a_released_work_instruction_is_refused(
        session: Session, floor: ShopFloor) -> None:
    set_order_status(session, "released")
    sign_on_directly(session, CERTIFIED, "PRESS-1")
    with acting_as(session, "mes-admin"):
        session.execute(text("UPDATE mes.document_revision SET status = 'superseded'"))

    with pytest.raises(RuleViolation, match=(
            "operation 10 of order 4711 cannot start: its work instruction WI-PRESS has no "
            "released revision")), acting_as(session, CERTIFIED):
        start_run(session, ORDER, STAMPING, "PRESS-1", CERTIFIED)


def test_a_busy_machine_takes_no_second_run(session: Session, floor: ShopFloor) -> None:
    run_id = started(session)
    with pytest.raises(RuleViolation, match=f"PRESS-1 is busy with run {run_id}"), \
            acting_as(session, CERTIFIED):
        start_run(session, ORDER, STAMPING, "PRESS-1", CERTIFIED)


# --- quantities, the inspection gate, actuals ---------------------------------------------

def test_reports_add_up_and_stop_when_the_run_is_complete(
        session: Session, floor: ShopFloor) -> None:
    run_id = started(session)
    with acting_as(session, CERTIFIED):
        report(session, run_id, 40, 2)
    with acting_as(session, CERTIFIED):
        run = report(session, run_id, 55, 1)
    assert (run.good_quantity, run.scrap_quantity) == (95, 3)
    with pytest.raises(RuleViolation, match="cannot be negative"), acting_as(session, CERTIFIED):
        report(session, run_id, -1, 0)

    all_samples(session, run_id)
    with acting_as(session, CERTIFIED):
        complete_run(session, run_id, CERTIFIED)
    with pytest.raises(IllegalTransition, match=f"run {run_id} is completed"), \
            acting_as(session, CERTIFIED):
        report(session, run_id, 1, 0)


def test_a_run_cannot_complete_before_its_inspections_have_their_samples(
        session: Session, floor: ShopFloor) -> None:
    run_id = started(session)
    with acting_as(session, CERTIFIED):
        record_inspection(session, run_id, HOLE, 1, 10.0, CERTIFIED)

    with pytest.raises(RuleViolation) as refused, acting_as(session, CERTIFIED):
        complete_run(session, run_id, CERTIFIED)
    assert str(refused.value) == (
        "operation 10 of order 4711 cannot complete: 'flatness' needs 1 sample, 0 recorded; "
        "'hole diameter' needs 2 samples, 1 recorded")

    with acting_as(session, CERTIFIED):
        record_inspection(session, run_id, HOLE, 2, 10.05, CERTIFIED)
    with pytest.raises(RuleViolation) as refused, acting_as(session, CERTIFIED):
        complete_run(session, run_id, CERTIFIED)
    assert str(refused.value) == ("operation 10 of order 4711 cannot complete: 'flatness' "
                                  "needs 1 sample, 0 recorded")

    with acting_as(session, CERTIFIED):
        record_inspection(session, run_id, FLATNESS, 1, 0.05, CERTIFIED)
    with acting_as(session, CERTIFIED):
        run = complete_run(session, run_id, CERTIFIED)
    assert run.status == "completed"
    assert run.ended_at is not None


def test_actuals_against_plan_and_standard(session: Session, floor: ShopFloor) -> None:
    run_id = started(session)
    with acting_as(session, CERTIFIED):
        report(session, run_id, 80, 5)
    all_samples(session, run_id)
    with acting_as(session, CERTIFIED):
        complete_run(session, run_id, CERTIFIED)
    # 80 good in 200 s: 2.5 s each against a standard of 2.0 s.
    with acting_as(session, "mes-admin"):
        session.execute(text("UPDATE mes.operation_run SET started_at = ended_at - "
                             "interval '200 seconds' WHERE id = :id"), {"id": run_id})
    with session.begin():
        actual = run_performance(session, run_id)

    assert actual.planned_quantity == 100
    assert (actual.good_quantity, actual.scrap_quantity, actual.actual_quantity) == (80, 5, 85)
    assert actual.quantity_deviation_pct == pytest.approx(-20.0)
    assert actual.elapsed_seconds == pytest.approx(200.0)
    assert actual.actual_cycle_seconds == pytest.approx(2.5)
    assert actual.standard_cycle_seconds == 2.0
    assert actual.cycle_deviation_pct == pytest.approx(25.0)


def test_a_run_with_nothing_good_has_no_cycle_time(session: Session, floor: ShopFloor) -> None:
    run_id = started(session)
    with session.begin():
        actual = run_performance(session, run_id)
    assert actual.actual_cycle_seconds is None
    assert actual.cycle_deviation_pct is None
    assert actual.quantity_deviation_pct == -100.0


def test_orders_and_runs_are_audited_under_the_acting_badge(
        session: Session, floor: ShopFloor) -> None:
    run_id = started(session)
    with acting_as(session, CERTIFIED):
        report(session, run_id, 10, 0)

    with session.begin():
        rows = session.execute(
            select(AuditLog.table_name, AuditLog.action, AuditLog.actor, AuditLog.after)
            .where(AuditLog.table_name.in_(["work_order", "operation_run"]),
                   AuditLog.actor != "mes-admin")
            .order_by(AuditLog.id)).all()
    assert [(r.table_name, r.action, r.actor) for r in rows] == [
        ("work_order", "update", SUPERVISOR),          # released
        ("operation_run", "insert", CERTIFIED),        # run started
        ("work_order", "update", CERTIFIED),           # in progress by the first run
        ("operation_run", "update", CERTIFIED),        # 10 good reported
    ]
    assert rows[0].after["status"] == "released"
    assert rows[2].after["status"] == "in_progress"
    assert rows[3].after["good_quantity"] == 10


def test_granting_a_certification_is_audited_under_the_person_and_certification(
        session: Session, floor: ShopFloor) -> None:
    with session.begin():
        keys = session.scalars(
            select(AuditLog.record_id).where(AuditLog.table_name == "person_certification")
            .order_by(AuditLog.id)).all()
        people = {badge: person_id for badge, person_id in session.execute(
            select(Person.badge, Person.id).where(Person.badge.in_([CERTIFIED, EXPIRED])))}
    assert keys == [f"{people[CERTIFIED]},{floor.certification_id}",
                    f"{people[EXPIRED]},{floor.certification_id}"]


# --- the run's output lot -----------------------------------------------------------------

def test_completing_with_an_output_lot_makes_it_from_the_lots_consumed(
        session: Session, floor: ShopFloor) -> None:
    coil = add_lot(session, "COIL-7", None, 500, material="STEEL-COIL")
    run_id = started(session)
    with acting_as(session, CERTIFIED):
        consume(session, "COIL-7", 40, run_id, person_id(session, CERTIFIED))
        report(session, run_id, 98, 2)
    all_samples(session, run_id)

    with acting_as(session, CERTIFIED):
        complete_run(session, run_id, CERTIFIED, output_lot_code="BRK-0001",
                     output_location_code="WIP-L1")

    with session.begin():
        made = session.scalars(select(MaterialLot).where(MaterialLot.code == "BRK-0001")).one()
        raw = session.scalars(select(MaterialDefinition.id)
                              .where(MaterialDefinition.code == "BRACKET-RAW")).one()
        links = session.execute(select(GenealogyLink.parent_lot_id, GenealogyLink.run_id)
                                .where(GenealogyLink.child_lot_id == made.id)).all()
    assert (made.quantity, made.material_id, made.status, made.produced_by_run_id) == (
        98, raw, "available", run_id)
    assert [tuple(link) for link in links] == [(coil, run_id)]


def test_an_output_lot_made_after_a_result_out_of_spec_goes_on_hold(
        session: Session, floor: ShopFloor) -> None:
    run_id = started(session)
    with acting_as(session, CERTIFIED):
        report(session, run_id, 50, 0)
        opened = record_inspection(session, run_id, HOLE, 1, 10.4, CERTIFIED).nonconformances
        record_inspection(session, run_id, HOLE, 2, 10.0, CERTIFIED)
        record_inspection(session, run_id, FLATNESS, 1, 0.1, CERTIFIED)
    assert [n.lot_id for n in opened] == [None]

    with acting_as(session, CERTIFIED):
        complete_run(session, run_id, CERTIFIED, output_lot_code="BRK-0002",
                     output_location_code="WIP-L1")

    with session.begin():
        made = session.scalars(select(MaterialLot).where(MaterialLot.code == "BRK-0002")).one()
        ncr = session.scalars(select(Nonconformance).where(Nonconformance.code == opened[0].code)
                              .execution_options(populate_existing=True)).one()
    assert made.status == "on_hold"
    assert ncr.lot_id == made.id


def test_an_output_lot_needs_a_location(session: Session, floor: ShopFloor) -> None:
    run_id = started(session)
    all_samples(session, run_id)
    with pytest.raises(RuleViolation, match="give the storage location of output lot BRK-1"), \
            acting_as(session, CERTIFIED):
        complete_run(session, run_id, CERTIFIED, output_lot_code="BRK-1")
    with session.begin():
        assert session.get_one(OperationRun, run_id).status == "running"


# --- the command line ---------------------------------------------------------------------

@pytest.mark.slow
def test_a_shift_on_the_command_line(session: Session, floor: ShopFloor, use_database: str,
                                     tmp_path: Path, log_in: Callable[..., None]) -> None:
    """Each person logs in at the terminal and acts as themselves; nobody types another's
    badge to act as them any more."""
    runner = CliRunner()

    def mes(*args: str, fails: bool = False, password: str | None = None) -> str:
        given = None if password is None else password + "\n"
        result = runner.invoke(app, list(args), input=given)
        assert result.exit_code == (1 if fails else 0), result.output
        return result.output

    assert "nobody is logged in" in mes("order", "release", "4711", fails=True)
    log_in("1001")
    assert "1001 signed on at PRESS-1" in mes("labor", "on", "1001", "PRESS-1")
    assert "1001 (Ana Lopez) may not release an order: it needs the role planner or " \
           "supervisor" in mes("order", "release", "4711", fails=True)
    log_in("3001")
    assert "order 4711: released (version 2)" in mes("order", "release", "4711")
    assert "cannot go from released to closed" in mes("order", "close", "4711", fails=True)
    log_in("1001")
    started = mes("run", "start", "4711", "10", "PRESS-1")
    assert "run 1 started: operation 10 of order 4711 on PRESS-1, operator 1001" in started
    assert "Rev 1: load coil, check die, stamp." in started
    assert "run 1: 50 good, 1 scrap of 100 planned" in mes(
        "run", "report", "1", "--good", "50", "--scrap", "1")
    assert "'hole diameter' needs 2 samples, 0 recorded" in mes(
        "run", "complete", "1", fails=True)

    flagged = mes("inspect", "1", "hole diameter", "1", "10.3")
    code = re.search(r"OUT OF SPEC: (NCR-\d{6}): 'hole diameter' measured 10.3, spec "
                     r"9.9..10.1; order 4711 on PRESS-1, operator 1001", flagged)
    assert code is not None, flagged
    assert "within spec" in mes("inspect", "1", "hole diameter", "2", "10.0")
    mes("inspect", "1", "flatness", "1", "0.1")
    assert "may not disposition a nonconformance" in mes(
        "ncr", "disposition", code[1], "use-as-is", "--meaning", "fine", "--password-stdin",
        fails=True, password=PASSWORD)
    log_in("2001")
    assert "signing needs your password" in mes(
        "ncr", "disposition", code[1], "use-as-is", "--meaning", "approved for use as is",
        "--password-stdin", fails=True, password="")
    signed = mes("ncr", "disposition", code[1], "use-as-is", "--meaning",
                 "approved for use as is", "--password-stdin", password=PASSWORD)
    assert f"{code[1]}: use_as_is, signature 1 signed by Chen Wei (2001) at " in signed
    assert "meaning: 'approved for use as is'" in signed
    assert f"matches {code[1]} as signed" in mes("ncr", "verify", code[1])
    assert "signed by Chen Wei (2001)" in mes("ncr", "show", code[1])

    log_in("1001")
    mes("lot", "receive", "COIL-9", "--material", "STEEL-COIL", "--quantity", "100",
        "--location", "WIP-L1")
    assert "run 1: 20 taken from lot COIL-9, 80 left (available)" in mes(
        "run", "consume", "1", "COIL-9", "20")
    assert "wanted" in mes("run", "consume", "1", "COIL-9", "200", fails=True)
    completed = mes("run", "complete", "1", "--lot", "BRK-1", "--location", "WIP-L1")
    assert "run 1 (completed): 50 good, 1 scrap of 100 planned (-50.0 %)" in completed
    assert "output lot BRK-1" in completed
    assert "1001 signed off after" in mes("labor", "off", "1001")
    assert "consumed 20 kg in run 1 <- COIL-9" in mes("trace", "BRK-1", "--backward")

    log_in("3001")
    instruction = tmp_path / "wi-press-2.txt"
    instruction.write_text("Rev 2: deburr the edge as well.")
    assert "WI-PRESS revision 2: draft" in mes("doc", "add", "WI-PRESS", str(instruction))
    assert "WI-PRESS revision 2: released" in mes("doc", "release", "WI-PRESS", "2")
    assert "Rev 2: deburr" in mes("doc", "show", "WI-PRESS")
    assert "logged out" in mes("logout")
    assert "nobody is logged in" in mes("order", "hold", "4711", fails=True)

    with session.begin():
        actors = set(session.scalars(select(AuditLog.actor).where(
            AuditLog.actor.not_in(("mes-admin", "mes-login")))))
    assert actors == {"1001", "2001", "3001"}
