"""SQLAlchemy 2.0 typed models of the transactional tables (schema `mes`).

The schema itself is defined by the migrations in `sql/`; these models mirror it, and a test
proves that they agree. Relationships are left out until a service needs one.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar, Literal, get_args

from sqlalchemy import (
    ARRAY,
    CheckConstraint,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    Interval,
    MetaData,
    SmallInteger,
    Text,
    Time,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import DOUBLE_PRECISION, TIMESTAMP
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

EquipmentLevel = Literal["enterprise", "site", "area", "work_center", "work_unit"]
StateCategory = Literal["running", "setup", "idle", "planned_stop", "unplanned_stop", "offline"]
SignalKind = Literal["state", "good_count", "reject_count", "process_value"]
MaterialKind = Literal["raw", "intermediate", "product", "consumable"]

EQUIPMENT_LEVELS: tuple[EquipmentLevel, ...] = get_args(EquipmentLevel)
PARENT_LEVEL: dict[EquipmentLevel, EquipmentLevel | None] = {
    "enterprise": None,
    "site": "enterprise",
    "area": "site",
    "work_center": "area",
    "work_unit": "work_center",
}


class Base(DeclarativeBase):
    metadata = MetaData(schema="mes", naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        str: Text(),
        float: DOUBLE_PRECISION(),
        dt.datetime: TIMESTAMP(timezone=True),
        dt.time: Time(),
        dt.timedelta: Interval(),
    }


def _id() -> Mapped[int]:
    return mapped_column(Identity(always=False), primary_key=True)


class ShiftCalendar(Base):
    __tablename__ = "shift_calendar"

    id: Mapped[int] = _id()
    code: Mapped[str] = mapped_column(unique=True)
    name: Mapped[str]
    timezone: Mapped[str]


class DowntimeReason(Base):
    __tablename__ = "downtime_reason"
    __table_args__ = (CheckConstraint("parent_id IS DISTINCT FROM id", name="not_own_parent"),)

    id: Mapped[int] = _id()
    code: Mapped[str] = mapped_column(unique=True)
    name: Mapped[str]
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("mes.downtime_reason.id"))
    planned: Mapped[bool]


class Shift(Base):
    __tablename__ = "shift"
    __table_args__ = (UniqueConstraint("shift_calendar_id", "code"),)

    id: Mapped[int] = _id()
    shift_calendar_id: Mapped[int] = mapped_column(
        ForeignKey("mes.shift_calendar.id", ondelete="CASCADE"))
    code: Mapped[str]
    name: Mapped[str]
    start_time: Mapped[dt.time]
    duration: Mapped[dt.timedelta]
    weekdays: Mapped[list[int]] = mapped_column(ARRAY(SmallInteger))


class ShiftBreak(Base):
    __tablename__ = "shift_break"
    __table_args__ = (UniqueConstraint("shift_id", "name"),)

    id: Mapped[int] = _id()
    shift_id: Mapped[int] = mapped_column(ForeignKey("mes.shift.id", ondelete="CASCADE"))
    name: Mapped[str]
    start_offset: Mapped[dt.timedelta]
    duration: Mapped[dt.timedelta]
    downtime_reason_id: Mapped[int | None] = mapped_column(ForeignKey("mes.downtime_reason.id"))


class StateModel(Base):
    __tablename__ = "state_model"

    id: Mapped[int] = _id()
    code: Mapped[str] = mapped_column(unique=True)
    name: Mapped[str]


class StateModelState(Base):
    __tablename__ = "state_model_state"

    state_model_id: Mapped[int] = mapped_column(
        ForeignKey("mes.state_model.id", ondelete="CASCADE"), primary_key=True)
    state_code: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    name: Mapped[str]
    category: Mapped[StateCategory] = mapped_column(Text)


class Equipment(Base):
    """One node of the ISA-95 equipment hierarchy, from enterprise down to machine."""

    __tablename__ = "equipment"
    __table_args__ = (
        UniqueConstraint("id", "level", name="uq_equipment_id_level"),
        ForeignKeyConstraint(["parent_id", "parent_level"],
                             ["mes.equipment.id", "mes.equipment.level"],
                             name="fk_equipment_parent"),
        Index(None, "parent_id"),
    )

    id: Mapped[int] = _id()
    code: Mapped[str] = mapped_column(unique=True)
    name: Mapped[str]
    level: Mapped[EquipmentLevel] = mapped_column(Text)
    parent_id: Mapped[int | None]
    parent_level: Mapped[EquipmentLevel | None] = mapped_column(Text)
    work_center_type: Mapped[str | None]
    shift_calendar_id: Mapped[int | None] = mapped_column(ForeignKey("mes.shift_calendar.id"))
    state_model_id: Mapped[int | None] = mapped_column(ForeignKey("mes.state_model.id"))


class MaterialDefinition(Base):
    __tablename__ = "material_definition"

    id: Mapped[int] = _id()
    code: Mapped[str] = mapped_column(unique=True)
    name: Mapped[str]
    kind: Mapped[MaterialKind] = mapped_column(Text)
    unit: Mapped[str]


class IdealCycleTime(Base):
    """Seconds per unit of a material on a machine, at the machine's nameplate speed."""

    __tablename__ = "ideal_cycle_time"
    __table_args__ = (
        ForeignKeyConstraint(["equipment_id", "equipment_level"],
                             ["mes.equipment.id", "mes.equipment.level"],
                             ondelete="CASCADE", name="fk_ideal_cycle_time_equipment"),
    )

    equipment_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    # Always 'work_unit': lets the foreign key refuse a cycle time on a line or a site.
    equipment_level: Mapped[str] = mapped_column(server_default=text("'work_unit'"))
    material_id: Mapped[int] = mapped_column(ForeignKey("mes.material_definition.id"),
                                             primary_key=True)
    seconds: Mapped[float]


class Signal(Base):
    __tablename__ = "signal"
    __table_args__ = (
        Index("uq_signal_equipment_kind", "equipment_id", "kind", unique=True,
              postgresql_where=text("kind <> 'process_value'")),
    )

    id: Mapped[int] = _id()
    code: Mapped[str] = mapped_column(unique=True)
    name: Mapped[str]
    equipment_id: Mapped[int] = mapped_column(ForeignKey("mes.equipment.id"))
    kind: Mapped[SignalKind] = mapped_column(Text)
    unit: Mapped[str | None]
    low_limit: Mapped[float | None]
    high_limit: Mapped[float | None]


class PlannedStop(Base):
    __tablename__ = "planned_stop"

    id: Mapped[int] = _id()
    shift_calendar_id: Mapped[int | None] = mapped_column(
        ForeignKey("mes.shift_calendar.id", ondelete="CASCADE"))
    equipment_id: Mapped[int | None] = mapped_column(
        ForeignKey("mes.equipment.id", ondelete="CASCADE"))
    starts_at: Mapped[dt.datetime]
    ends_at: Mapped[dt.datetime]
    downtime_reason_id: Mapped[int] = mapped_column(ForeignKey("mes.downtime_reason.id"))
    note: Mapped[str | None]


class Person(Base):
    __tablename__ = "person"

    id: Mapped[int] = _id()
    badge: Mapped[str] = mapped_column(unique=True)
    name: Mapped[str]
    active: Mapped[bool] = mapped_column(server_default=text("true"))


class PersonnelClass(Base):
    __tablename__ = "personnel_class"

    id: Mapped[int] = _id()
    code: Mapped[str] = mapped_column(unique=True)
    name: Mapped[str]


class PersonClassMembership(Base):
    __tablename__ = "person_class_membership"

    person_id: Mapped[int] = mapped_column(ForeignKey("mes.person.id", ondelete="CASCADE"),
                                           primary_key=True)
    personnel_class_id: Mapped[int] = mapped_column(
        ForeignKey("mes.personnel_class.id", ondelete="CASCADE"), primary_key=True)


class SampleQuality(Base):
    """Reference list of the codes in the time-series `quality` columns."""

    __tablename__ = "sample_quality"

    code: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(unique=True)
    category: Mapped[str]

