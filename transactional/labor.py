"""Labor: who is signed on at which machine, and the hours booked against an operation run.

It also owns looking up the people and machines that the execution services act on. It
does not decide what a person may do at a machine (certifications): that is `orders`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from transactional.errors import NotFound, RuleViolation
from transactional.lookup import by_code
from transactional.models import (
    Equipment,
    LaborSession,
    OperationRun,
    Person,
    PersonClassMembership,
    PersonnelClass,
    RoutingOperation,
)
from transactional.people import person_by_badge as person_by_badge
from transactional.permissions import Action, acting_badge, require


def in_class(session: Session, person: Person, class_code: str) -> bool:
    """Whether the person is a member of the personnel class (OPERATOR, QUALITY...)."""
    member = session.scalar(
        select(PersonClassMembership.person_id)
        .join(PersonnelClass, PersonnelClass.id == PersonClassMembership.personnel_class_id)
        .where(PersonClassMembership.person_id == person.id, PersonnelClass.code == class_code))
    return member is not None


def machine_by_code(session: Session, code: str) -> Equipment:
    """The machine (an ISA-95 work unit) named `code`."""
    machine = by_code(session, Equipment, code, what="machine")
    if machine.level != "work_unit":
        raise RuleViolation(f"{code} is a {machine.level.replace('_', ' ')}, not a machine")
    return machine


def open_session(session: Session, person_id: int) -> LaborSession | None:
    """The person's labor session that is not signed off yet, if any."""
    return session.scalars(
        select(LaborSession)
        .where(LaborSession.person_id == person_id, LaborSession.signed_off_at.is_(None))
        .execution_options(populate_existing=True)).one_or_none()


def is_signed_on(session: Session, person_id: int, machine_id: int) -> bool:
    current = open_session(session, person_id)
    return current is not None and current.equipment_id == machine_id


def _equipment_code(session: Session, equipment_id: int) -> str:
    return session.scalars(select(Equipment.code).where(Equipment.id == equipment_id)).one()


def _require_self_or_supervisor(session: Session, badge: str) -> None:
    """People sign themselves on and off; someone else needs SIGN_ON_OTHERS."""
    if acting_badge(session) != badge:
        require(session, Action.SIGN_ON_OTHERS)


def sign_on(session: Session, badge: str, machine_code: str) -> LaborSession:
    """Open a labor session for the person at the machine; one open session per person."""
    _require_self_or_supervisor(session, badge)
    person = person_by_badge(session, badge)
    machine = machine_by_code(session, machine_code)
    current = open_session(session, person.id)
    if current is not None:
        where = _equipment_code(session, current.equipment_id)
        raise RuleViolation(
            f"{badge} is already signed on at {where} since "
            f"{current.signed_on_at:%Y-%m-%d %H:%M}: sign off there first")
    labor = LaborSession(person_id=person.id, equipment_id=machine.id)
    try:
        # A savepoint: losing the race on the one-open-session index leaves the caller's
        # transaction usable, and the person gets the same message as above.
        with session.begin_nested():
            session.add(labor)
    except IntegrityError as error:
        if "uq_labor_session_one_open_per_person" not in str(error.orig):
            raise
        raise RuleViolation(f"{badge} was signed on elsewhere at the same moment: "
                            "sign off there first") from None
    session.refresh(labor)
    return labor


def sign_off(session: Session, badge: str) -> LaborSession:
    """Close the person's open labor session."""
    _require_self_or_supervisor(session, badge)
    person = person_by_badge(session, badge)
    current = session.scalars(
        select(LaborSession)
        .where(LaborSession.person_id == person.id, LaborSession.signed_off_at.is_(None))
        .with_for_update(key_share=True).execution_options(populate_existing=True)
    ).one_or_none()
    if current is None:
        raise RuleViolation(f"{badge} is not signed on anywhere")
    current.signed_off_at = session.scalar(select(func.now()))
    session.flush()
    return current


@dataclass(frozen=True)
class LaborHours:
    """Hours people were signed on at a run's machine while it ran, against the standard."""

    run_id: int
    actual_hours: float
    standard_hours: float
    people: int

    @property
    def efficiency(self) -> float | None:
        """Standard over actual hours (1.0: as planned); None with no hours booked."""
        return self.standard_hours / self.actual_hours if self.actual_hours > 0 else None


def labor_hours(session: Session, run_id: int) -> LaborHours:
    """The overlap of every labor session at the run's machine with the run's span (open
    sessions and a running run count up to now), and the standard time for the good
    quantity reported: standard seconds per unit x good + setup seconds."""
    run = session.get(OperationRun, run_id, populate_existing=True)
    if run is None:
        raise NotFound(f"no operation run {run_id}")
    operation = session.get_one(RoutingOperation, run.operation_id)
    now: dt.datetime = session.execute(select(func.now())).scalar_one()
    run_end = run.ended_at or now
    overlaps = session.execute(
        select(LaborSession.person_id, LaborSession.signed_on_at, LaborSession.signed_off_at)
        .where(LaborSession.equipment_id == run.equipment_id,
               LaborSession.signed_on_at < run_end,
               (LaborSession.signed_off_at.is_(None))
               | (LaborSession.signed_off_at > run.started_at))).all()
    seconds = 0.0
    people: set[int] = set()
    for person_id, on, off in overlaps:
        span = (min(off or now, run_end) - max(on, run.started_at)).total_seconds()
        if span > 0:
            seconds += span
            people.add(person_id)
    standard = (operation.standard_seconds_per_unit * run.good_quantity
                + operation.setup_seconds)
    return LaborHours(run_id, seconds / 3600, standard / 3600, len(people))
