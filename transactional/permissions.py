"""Who may do what: roles derived from personnel classes, and the permission each acting
service declares before it changes anything.

A personnel class carries a role (its `role` column, from the plant file; a class named
like a role has that role by default). A refusal names the person, the action and the roles
that would allow it. Authentication (who the acting person is) is `transactional.identity`.
"""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from transactional.errors import NotPermitted
from transactional.models import Person, PersonClassMembership, PersonnelClass
from transactional.people import person_by_badge

ROLES = ("operator", "quality", "supervisor", "planner", "maintenance", "administrator")
# The system account that stands for whoever holds the schema owner's credentials.
ADMINISTRATION = "mes-admin"
APPLICATION_ROLE = "mes_app"


class Action(StrEnum):
    """What a service does, in the words of a refusal ("... may not release an order")."""

    RELEASE_ORDER = "release an order"
    HOLD_ORDER = "hold an order"
    RESUME_ORDER = "resume an order"
    COMPLETE_ORDER = "complete or close an order"
    CANCEL_ORDER = "cancel an order"
    START_RUN = "start a run"
    REPORT_RUN = "report quantities on a run"
    COMPLETE_RUN = "complete a run"
    CORRECT_RUN = "correct a run's quantities"
    ABORT_RUN = "abort a run"
    RECORD_INSPECTION = "record an inspection"
    MOVE_MATERIAL = "receive, split, merge, move or consume material"
    HOLD_LOT = "put a lot on hold or in quarantine"
    RELEASE_HOLD = "release a lot from hold or quarantine"
    SCRAP_LOT = "scrap a lot"
    DISPOSITION = "disposition a nonconformance"
    DRAFT_INSTRUCTION = "draft a work instruction revision"
    PUBLISH_INSTRUCTION = "publish a work instruction revision"
    SIGN_ON_OTHERS = "sign someone else on or off"
    IMPORT_ERP = "import ERP files"
    EXPORT_ERP = "export actuals to ERP"
    CLASSIFY_DOWNTIME = "give a stop its reason"
    IMPORT_MAINTENANCE = "import maintenance windows"
    IMPORT_WORK_REQUEST_STATUS = "import work request statuses from the CMMS"
    CHANGE_PLANT = "change plant data"
    MANAGE_USERS = "manage passwords and lock-outs"


_FLOOR = frozenset({"operator", "supervisor"})
GRANTS: dict[Action, frozenset[str]] = {
    Action.RELEASE_ORDER: frozenset({"supervisor", "planner"}),
    Action.HOLD_ORDER: frozenset({"supervisor", "planner", "quality"}),
    Action.RESUME_ORDER: frozenset({"supervisor", "planner"}),
    Action.COMPLETE_ORDER: frozenset({"supervisor", "planner"}),
    Action.CANCEL_ORDER: frozenset({"supervisor", "planner"}),
    Action.START_RUN: _FLOOR,
    Action.REPORT_RUN: _FLOOR,
    Action.COMPLETE_RUN: _FLOOR,
    Action.CORRECT_RUN: frozenset({"supervisor"}),
    Action.ABORT_RUN: frozenset({"supervisor"}),
    Action.RECORD_INSPECTION: _FLOOR | {"quality"},
    Action.MOVE_MATERIAL: _FLOOR | {"planner", "quality"},
    Action.HOLD_LOT: _FLOOR | {"quality"},
    Action.RELEASE_HOLD: frozenset({"quality"}),
    Action.SCRAP_LOT: frozenset({"quality"}),
    Action.DISPOSITION: frozenset({"quality"}),
    Action.DRAFT_INSTRUCTION: frozenset({"supervisor", "quality"}),
    Action.PUBLISH_INSTRUCTION: frozenset({"supervisor", "quality"}),
    Action.SIGN_ON_OTHERS: frozenset({"supervisor"}),
    Action.IMPORT_ERP: frozenset({"planner", "administrator"}),
    Action.EXPORT_ERP: frozenset({"planner", "administrator"}),
    Action.CLASSIFY_DOWNTIME: _FLOOR | {"maintenance"},
    Action.IMPORT_MAINTENANCE: frozenset({"maintenance", "planner", "administrator"}),
    Action.IMPORT_WORK_REQUEST_STATUS: frozenset({"maintenance", "administrator"}),
    Action.CHANGE_PLANT: frozenset({"administrator"}),
    Action.MANAGE_USERS: frozenset({"administrator"}),
}
# What a session opened with a PIN may do: the shop floor's own actions, never a release,
# a disposition or administration.
PIN_ACTIONS = frozenset({Action.START_RUN, Action.REPORT_RUN, Action.COMPLETE_RUN,
                         Action.RECORD_INSPECTION, Action.MOVE_MATERIAL, Action.HOLD_LOT})


def acting_badge(session: Session) -> str:
    """The badge named as who acts in the current transaction (transactional.audit.acting)."""
    badge = session.scalar(text("SELECT current_setting('mes.actor', true)"))
    if not badge:
        raise NotPermitted("nobody is acting: log in first (mes login)")
    return str(badge)


def roles_of(session: Session, person: Person) -> frozenset[str]:
    """The roles of the person's personnel classes (a class without a role named like one
    has that one)."""
    rows = session.execute(
        select(PersonnelClass.role, func.lower(PersonnelClass.code))
        .join(PersonClassMembership,
              PersonClassMembership.personnel_class_id == PersonnelClass.id)
        .where(PersonClassMembership.person_id == person.id)).all()
    return frozenset(role or code for role, code in rows if (role or code) in ROLES)


def _administration(session: Session) -> bool:
    """Whether this connection acts with the owner's rights, not as the application role."""
    return bool(session.scalar(text("SELECT current_user")) != APPLICATION_ROLE)


def require(session: Session, action: Action) -> Person:
    """The acting person, if they may do `action`; NotPermitted naming them, the action
    and the roles that may, otherwise."""
    badge = acting_badge(session)
    person = person_by_badge(session, badge)
    if person.kind == "system":
        if badge == ADMINISTRATION and _administration(session):
            return person
        raise NotPermitted(f"{badge} ({person.name}) may not {action}: a system account "
                           "acts only for administration with the owner's credentials")
    roles = roles_of(session, person)
    allowed = GRANTS[action]
    if not roles & allowed:
        has = ", ".join(sorted(roles)) or "no role"
        raise NotPermitted(f"{badge} ({person.name}) may not {action}: it needs the role "
                           f"{' or '.join(sorted(allowed))} ({person.name} has {has})")
    method = session.scalar(text("SELECT current_setting('mes.login_method', true)"))
    if method == "pin" and action not in PIN_ACTIONS:
        raise NotPermitted(f"{badge} ({person.name}) may not {action} with a PIN login: "
                           "log in with the password (mes login)")
    return person


def allowed(session: Session, person: Person, action: Action) -> bool:
    """Whether the person's roles allow `action` (for showing what someone may do)."""
    return bool(roles_of(session, person) & GRANTS[action])
