"""Labor: signing on and off at machines, and the hours booked against a run."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from tests.transactional.shop_floor import (
    CERTIFIED,
    EXPIRED,
    QUALITY,
    SUPERVISOR,
    ShopFloor,
    acting_as,
    person_id,
)
from transactional.errors import NotFound, NotPermitted, RuleViolation
from transactional.labor import labor_hours, sign_off, sign_on
from transactional.models import AuditLog, Equipment, LaborSession


def open_sessions(session: Session) -> list[tuple[str, str]]:
    with session.begin():
        return [(badge, machine) for badge, machine in session.execute(text(
            "SELECT p.badge, e.code FROM mes.labor_session l "
            "JOIN mes.person p ON p.id = l.person_id "
            "JOIN mes.equipment e ON e.id = l.equipment_id "
            "WHERE l.signed_off_at IS NULL ORDER BY p.badge"))]


def test_sign_on_and_off(session: Session, floor: ShopFloor) -> None:
    with acting_as(session, CERTIFIED):
        opened = sign_on(session, CERTIFIED, "PRESS-1")
    assert opened.signed_off_at is None
    assert open_sessions(session) == [(CERTIFIED, "PRESS-1")]

    with acting_as(session, CERTIFIED):
        closed = sign_off(session, CERTIFIED)
    assert closed.id == opened.id
    assert closed.signed_off_at is not None and closed.signed_off_at >= closed.signed_on_at
    assert open_sessions(session) == []

    # Signed off, the operator may sign on elsewhere.
    with acting_as(session, CERTIFIED):
        sign_on(session, CERTIFIED, "PRESS-2")
    assert open_sessions(session) == [(CERTIFIED, "PRESS-2")]


def test_signing_on_elsewhere_while_signed_on_is_refused(
        session: Session, floor: ShopFloor) -> None:
    with acting_as(session, CERTIFIED):
        sign_on(session, CERTIFIED, "PRESS-1")

    with pytest.raises(RuleViolation, match=(
            r"1001 is already signed on at PRESS-1 since .*: sign off there first")), \
            acting_as(session, CERTIFIED):
        sign_on(session, CERTIFIED, "PRESS-2")
    with pytest.raises(RuleViolation, match="already signed on at PRESS-1"), \
            acting_as(session, CERTIFIED):
        sign_on(session, CERTIFIED, "PRESS-1")
    assert open_sessions(session) == [(CERTIFIED, "PRESS-1")]


def test_several_people_may_work_one_machine(session: Session, floor: ShopFloor) -> None:
    for badge in (CERTIFIED, EXPIRED):
        with acting_as(session, badge):
            sign_on(session, badge, "PRESS-1")
    assert open_sessions(session) == [(CERTIFIED, "PRESS-1"), (EXPIRED, "PRESS-1")]


def test_what_cannot_be_signed_on_or_off(session: Session, floor: ShopFloor) -> None:
    with pytest.raises(RuleViolation, match="1001 is not signed on anywhere"), \
            acting_as(session, CERTIFIED):
        sign_off(session, CERTIFIED)
    with pytest.raises(NotFound, match="no person with badge 9999"), \
            acting_as(session, SUPERVISOR):
        sign_on(session, "9999", "PRESS-1")
    with pytest.raises(NotFound, match="no machine PRESS-9"), acting_as(session, CERTIFIED):
        sign_on(session, CERTIFIED, "PRESS-9")
    with pytest.raises(RuleViolation, match="L1 is a work center, not a machine"), \
            acting_as(session, CERTIFIED):
        sign_on(session, CERTIFIED, "L1")
    with acting_as(session, "mes-admin"):
        session.execute(text("UPDATE mes.person SET active = false WHERE badge = '1002'"))
    with pytest.raises(NotPermitted, match=r"badge 1002 .* is not active"), \
            acting_as(session, EXPIRED):
        sign_on(session, EXPIRED, "PRESS-1")
    assert open_sessions(session) == []


def test_labor_is_audited_under_the_badge(session: Session, floor: ShopFloor) -> None:
    with acting_as(session, CERTIFIED):
        sign_on(session, CERTIFIED, "PRESS-1")
    with acting_as(session, CERTIFIED):
        sign_off(session, CERTIFIED)
    with session.begin():
        rows = session.execute(select(AuditLog.action, AuditLog.actor).where(
            AuditLog.table_name == "labor_session").order_by(AuditLog.id)).all()
    assert [tuple(r) for r in rows] == [("insert", CERTIFIED), ("update", CERTIFIED)]


def test_labor_hours_are_the_overlap_with_the_run_against_standard_time(
        session: Session, floor: ShopFloor) -> None:
    """The run went from 08:00 to 10:00 on PRESS-1 and made 1500 good brackets."""
    with acting_as(session, "mes-admin"):
        ids = {badge: person_id(session, badge)
               for badge in (CERTIFIED, EXPIRED, SUPERVISOR, QUALITY)}
        machines = {code: machine_id for code, machine_id in session.execute(
            select(Equipment.code, Equipment.id).where(Equipment.code.in_(["PRESS-1",
                                                                           "PRESS-2"])))}
        run_id = session.execute(text(
            "INSERT INTO mes.operation_run (work_order_id, operation_id, equipment_id, "
            "operator_id, status, planned_quantity, good_quantity, started_at, ended_at) "
            "VALUES ((SELECT id FROM mes.work_order), :op, :machine, :operator, 'completed', "
            "100, 1500, '2026-03-02 08:00Z', '2026-03-02 10:00Z') RETURNING id"),
            {"op": floor.stamping_id, "machine": machines["PRESS-1"],
             "operator": ids[CERTIFIED]}).scalar_one()

        def at(hh_mm: str) -> dt.datetime:
            return dt.datetime.fromisoformat(f"2026-03-02T{hh_mm}:00+00:00")

        def worked(badge: str, machine: str, on: str, off: str | None) -> None:
            session.add(LaborSession(person_id=ids[badge], equipment_id=machines[machine],
                                     signed_on_at=at(on), signed_off_at=at(off) if off else None))

        worked(CERTIFIED, "PRESS-1", "07:00", "09:00")   # 1 h of the run
        worked(EXPIRED, "PRESS-1", "09:30", None)        # still signed on: 0.5 h of the run
        worked(SUPERVISOR, "PRESS-1", "06:00", "07:59")  # before the run: nothing
        worked(QUALITY, "PRESS-2", "08:00", "10:00")     # another machine: nothing
        worked(CERTIFIED, "PRESS-1", "09:45", "09:45")   # signed on and straight off
        session.flush()

    with session.begin():
        hours = labor_hours(session, run_id)

    assert hours.actual_hours == pytest.approx(1.5)
    # 2.0 s x 1500 + 600 s setup = 3600 s.
    assert hours.standard_hours == pytest.approx(1.0)
    assert hours.people == 2
    assert hours.efficiency == pytest.approx(1.0 / 1.5)


def test_a_run_nobody_worked_on_has_no_efficiency(session: Session, floor: ShopFloor) -> None:
    with acting_as(session, "mes-admin"):
        run_id = session.execute(text(
            "INSERT INTO mes.operation_run (work_order_id, operation_id, equipment_id, "
            "operator_id, planned_quantity) VALUES ((SELECT id FROM mes.work_order), :op, "
            "(SELECT id FROM mes.equipment WHERE code = 'PRESS-1'), :operator, 100) "
            "RETURNING id"),
            {"op": floor.stamping_id, "operator": person_id(session, CERTIFIED)}).scalar_one()
    with session.begin():
        hours = labor_hours(session, run_id)
    assert (hours.actual_hours, hours.people, hours.efficiency) == (0, 0, None)
    assert hours.standard_hours == pytest.approx(600 / 3600)
    with pytest.raises(NotFound, match="no operation run 999"), session.begin():
        labor_hours(session, 999)
