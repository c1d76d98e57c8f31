"""A shop floor to execute work on: the sample plant, a bracket with a stamping and a
painting operation, its work instruction, inspection plan and certification, order 4711.

Rows are made directly through the models, independent of the product loader.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from tests.conftest import SAMPLE_PLANT
from transactional.audit import acting
from transactional.identity import set_password
from transactional.models import (
    BomItem,
    Certification,
    Credential,
    Document,
    DocumentRevision,
    InspectionPlan,
    LaborSession,
    LotMovement,
    MaterialDefinition,
    MaterialLot,
    Person,
    PersonCertification,
    ProductDefinition,
    RoutingOperation,
    StorageLocation,
    WorkOrder,
)
from transactional.plant import load_plant
from transactional.plant_file import read_plant_file

ORDER = "4711"
STAMPING = "10"
PAINTING = "20"
HOLE = "hole diameter"
FLATNESS = "flatness"
CERTIFIED = "1001"
EXPIRED = "1002"
QUALITY = "2001"
SUPERVISOR = "3001"


@dataclass(frozen=True)
class ShopFloor:
    stamping_id: int
    painting_id: int
    document_id: int
    revision_id: int
    certification_id: int
    expired_on: dt.date


@contextmanager
def acting_as(session: Session, badge: str) -> Iterator[None]:
    """One transaction, as the CLI runs one, with `badge` as the acting person."""
    with session.begin():
        acting(session, badge)
        yield


def today(session: Session) -> dt.date:
    value: dt.date = session.execute(text("SELECT current_date")).scalar_one()
    return value


def person_id(session: Session, badge: str) -> int:
    return session.scalars(select(Person.id).where(Person.badge == badge)).one()


def material_id(session: Session, code: str) -> int:
    return session.scalars(
        select(MaterialDefinition.id).where(MaterialDefinition.code == code)).one()


def build(session: Session) -> ShopFloor:
    """Load everything in one committed transaction, acting as the administration account."""
    with session.begin():
        acting(session, "mes-admin")
        load_plant(session, read_plant_file(SAMPLE_PLANT))
        certification = Certification(code="PRESS-OPERATOR", name="Press operator")
        document = Document(code="WI-PRESS", title="Stamping brackets on a press")
        session.add_all([certification, document])
        session.flush()
        revision = DocumentRevision(document_id=document.id, revision=1, status="released",
                                    content="Rev 1: load coil, check die, stamp.",
                                    released_at=dt.datetime.now(dt.UTC),
                                    released_by=person_id(session, SUPERVISOR))
        product = ProductDefinition(code="BRK-A", name="Bracket A",
                                    material_id=material_id(session, "BRACKET-A"))
        session.add_all([revision, product])
        session.flush()
        stamping = RoutingOperation(
            product_id=product.id, sequence=10, code=STAMPING, name="Stamp",
            work_center_type="STAMPING", standard_seconds_per_unit=2.0, setup_seconds=600,
            output_material_id=material_id(session, "BRACKET-RAW"),
            required_certification_id=certification.id, document_id=document.id)
        painting = RoutingOperation(
            product_id=product.id, sequence=20, code=PAINTING, name="Paint",
            work_center_type="FINISHING", standard_seconds_per_unit=3.0)
        session.add_all([stamping, painting])
        session.flush()
        session.add_all([
            BomItem(operation_id=stamping.id, material_id=material_id(session, "STEEL-COIL"),
                    quantity_per_unit=0.4),
            InspectionPlan(operation_id=stamping.id, characteristic=HOLE, nominal=10.0,
                           lower_spec=9.9, upper_spec=10.1, unit="mm", sample_size=2),
            InspectionPlan(operation_id=stamping.id, characteristic=FLATNESS, nominal=0.0,
                           lower_spec=0.0, upper_spec=0.2, unit="mm", sample_size=1),
            WorkOrder(code=ORDER, product_id=product.id, quantity=100),
            StorageLocation(code="WIP-L1", name="Work in progress, line 1"),
        ])
        now = today(session)
        expired_on = now - dt.timedelta(days=30)
        session.add_all([
            PersonCertification(person_id=person_id(session, CERTIFIED),
                                certification_id=certification.id,
                                valid_from=now - dt.timedelta(days=365),
                                valid_until=now + dt.timedelta(days=365)),
            PersonCertification(person_id=person_id(session, EXPIRED),
                                certification_id=certification.id,
                                valid_from=now - dt.timedelta(days=400),
                                valid_until=expired_on),
        ])
        session.flush()
        return ShopFloor(stamping.id, painting.id, document.id, revision.id,
                         certification.id, expired_on)


def set_order_status(session: Session, status: str) -> None:
    with session.begin():
        acting(session, "mes-admin")
        session.execute(text("UPDATE mes.work_order SET status = :s WHERE code = :c"),
                        {"s": status, "c": ORDER})


def sign_on_directly(session: Session, badge: str, machine_code: str) -> None:
    with session.begin():
        acting(session, "mes-admin")
        machine = session.execute(text("SELECT id FROM mes.equipment WHERE code = :c"),
                                  {"c": machine_code}).scalar_one()
        session.add(LaborSession(person_id=person_id(session, badge), equipment_id=machine))


def add_lot(session: Session, code: str, run_id: int | None, quantity: float = 0,
            material: str = "BRACKET-RAW") -> int:
    """A lot at WIP-L1, as produced by the run if one is given; its quantity comes from a
    movement, as the database keeps it."""
    with session.begin():
        acting(session, "mes-admin")
        location = session.scalars(
            select(StorageLocation.id).where(StorageLocation.code == "WIP-L1")).one()
        lot = MaterialLot(code=code, material_id=material_id(session, material),
                          location_id=location, produced_by_run_id=run_id)
        session.add(lot)
        session.flush()
        if quantity:
            session.add(LotMovement(lot_id=lot.id, kind="produce" if run_id else "receive",
                                    quantity=quantity, location_id=location, run_id=run_id))
            session.flush()
        return lot.id


PASSWORD = "correct horse battery"


def give_password(session: Session, badge: str) -> None:
    """Set `badge`'s password (PASSWORD) in a committed transaction of its own, as
    administration does, unless it has one."""
    with Session(session.get_bind()) as admin, admin.begin():
        person = admin.scalars(select(Person).where(Person.badge == badge)).one()
        if admin.get(Credential, person.id) is None:
            acting(admin, "mes-admin")
            set_password(admin, badge, PASSWORD)


def stamping_run(session: Session) -> int:
    """Operation 10 of order 4711 running on PRESS-1, operator 1001: its id."""
    from transactional.orders import start_run

    set_order_status(session, "released")
    sign_on_directly(session, CERTIFIED, "PRESS-1")
    with acting_as(session, CERTIFIED):
        return start_run(session, ORDER, STAMPING, "PRESS-1", CERTIFIED).id


def fresh_lot(session: Session, code: str) -> MaterialLot:
    """The lot as the database holds it now."""
    with session.begin():
        return session.scalars(select(MaterialLot).where(MaterialLot.code == code)
                               .execution_options(populate_existing=True)).one()
