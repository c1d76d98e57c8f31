"""SQLAlchemy 2.0 typed models of the transactional tables (schema `mes`).

The schema itself is defined by the migrations in `sql/`; these models mirror it, and a test
proves that they agree. Relationships are left out until a service needs one.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar, Literal

from sqlalchemy import (
    ARRAY,
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    Interval,
    LargeBinary,
    MetaData,
    SmallInteger,
    Text,
    Time,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import DOUBLE_PRECISION, JSONB, TIMESTAMP
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from transactional.vocabulary import (
    EquipmentLevel,
    MaterialKind,
    SignalKind,
    StateCategory,
)

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}



class Base(DeclarativeBase):
    metadata = MetaData(schema="mes", naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        str: Text(),
        float: DOUBLE_PRECISION(),
        dt.datetime: TIMESTAMP(timezone=True),
        dt.time: Time(),
        dt.date: Date(),
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
    # 'system': an automated actor (administration, the login service); cannot log in.
    kind: Mapped[str] = mapped_column(server_default=text("'human'"))


class PersonnelClass(Base):
    __tablename__ = "personnel_class"

    id: Mapped[int] = _id()
    code: Mapped[str] = mapped_column(unique=True)
    name: Mapped[str]
    # The role its members act in (transactional.permissions); NULL: none.
    role: Mapped[str | None]


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



# --- MES core (migration 0003) ---------------------------------------------------------

WorkOrderStatus = Literal["created", "released", "in_progress", "on_hold", "completed",
                          "closed", "cancelled"]
RunStatus = Literal["running", "completed", "aborted"]
LotStatus = Literal["available", "on_hold", "quarantined", "consumed", "scrapped", "shipped"]
MovementKind = Literal["receive", "produce", "consume", "split_out", "split_in", "merge_out",
                       "merge_in", "move_out", "move_in", "scrap", "adjust", "ship_out"]
GenealogyKind = Literal["consumed", "split", "merge"]
RevisionStatus = Literal["draft", "released", "superseded"]
Decision = Literal["use_as_is", "rework", "scrap"]
NOW = text("now()")


def _big_id() -> Mapped[int]:
    return mapped_column(BigInteger, Identity(always=False), primary_key=True)


class Certification(Base):
    __tablename__ = "certification"

    id: Mapped[int] = _id()
    code: Mapped[str] = mapped_column(unique=True)
    name: Mapped[str]


class PersonCertification(Base):
    __tablename__ = "person_certification"
    __table_args__ = (CheckConstraint("valid_until IS NULL OR valid_until >= valid_from",
                                      name="valid_span"),)

    person_id: Mapped[int] = mapped_column(ForeignKey("mes.person.id", ondelete="CASCADE"),
                                           primary_key=True)
    certification_id: Mapped[int] = mapped_column(ForeignKey("mes.certification.id"),
                                                  primary_key=True)
    valid_from: Mapped[dt.date]
    valid_until: Mapped[dt.date | None]


class Document(Base):
    __tablename__ = "document"

    id: Mapped[int] = _id()
    code: Mapped[str] = mapped_column(unique=True)
    title: Mapped[str]


class DocumentRevision(Base):
    __tablename__ = "document_revision"
    __table_args__ = (
        UniqueConstraint("document_id", "revision"),
        Index("uq_document_revision_one_released", "document_id", unique=True,
              postgresql_where=text("status = 'released'")),
    )

    id: Mapped[int] = _id()
    document_id: Mapped[int] = mapped_column(ForeignKey("mes.document.id"))
    revision: Mapped[int]
    status: Mapped[RevisionStatus] = mapped_column(Text, server_default=text("'draft'"))
    content: Mapped[str]
    created_at: Mapped[dt.datetime] = mapped_column(server_default=NOW)
    released_at: Mapped[dt.datetime | None]
    released_by: Mapped[int | None] = mapped_column(ForeignKey("mes.person.id"))


class ProductDefinition(Base):
    __tablename__ = "product_definition"

    id: Mapped[int] = _id()
    code: Mapped[str] = mapped_column(unique=True)
    name: Mapped[str]
    material_id: Mapped[int] = mapped_column(ForeignKey("mes.material_definition.id"))


class RoutingOperation(Base):
    __tablename__ = "routing_operation"
    __table_args__ = (UniqueConstraint("product_id", "sequence"),
                      UniqueConstraint("product_id", "code"))

    id: Mapped[int] = _id()
    product_id: Mapped[int] = mapped_column(
        ForeignKey("mes.product_definition.id", ondelete="CASCADE"))
    sequence: Mapped[int]
    code: Mapped[str]
    name: Mapped[str]
    work_center_type: Mapped[str]
    standard_seconds_per_unit: Mapped[float]
    setup_seconds: Mapped[float] = mapped_column(server_default=text("0"))
    setup_family: Mapped[str | None]
    output_material_id: Mapped[int | None] = mapped_column(
        ForeignKey("mes.material_definition.id"))
    required_certification_id: Mapped[int | None] = mapped_column(
        ForeignKey("mes.certification.id"))
    document_id: Mapped[int | None] = mapped_column(ForeignKey("mes.document.id"))


class BomItem(Base):
    __tablename__ = "bom_item"
    __table_args__ = (UniqueConstraint("operation_id", "material_id"),)

    id: Mapped[int] = _id()
    operation_id: Mapped[int] = mapped_column(
        ForeignKey("mes.routing_operation.id", ondelete="CASCADE"))
    material_id: Mapped[int] = mapped_column(ForeignKey("mes.material_definition.id"))
    quantity_per_unit: Mapped[float]


class InspectionPlan(Base):
    __tablename__ = "inspection_plan"
    __table_args__ = (UniqueConstraint("operation_id", "characteristic"),)

    id: Mapped[int] = _id()
    operation_id: Mapped[int] = mapped_column(
        ForeignKey("mes.routing_operation.id", ondelete="CASCADE"))
    characteristic: Mapped[str]
    nominal: Mapped[float]
    lower_spec: Mapped[float]
    upper_spec: Mapped[float]
    unit: Mapped[str | None]
    sample_size: Mapped[int] = mapped_column(server_default=text("1"))


class WorkOrder(Base):
    __tablename__ = "work_order"
    __table_args__ = (Index(None, "status"),)

    id: Mapped[int] = _id()
    code: Mapped[str] = mapped_column(unique=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("mes.product_definition.id"))
    quantity: Mapped[float]
    status: Mapped[WorkOrderStatus] = mapped_column(Text, server_default=text("'created'"))
    priority: Mapped[int] = mapped_column(server_default=text("0"))
    due_at: Mapped[dt.datetime | None]
    planned_start: Mapped[dt.datetime | None]
    source: Mapped[str | None]
    source_digest: Mapped[str | None]
    version: Mapped[int] = mapped_column(server_default=text("1"))
    created_at: Mapped[dt.datetime] = mapped_column(server_default=NOW)
    updated_at: Mapped[dt.datetime] = mapped_column(server_default=NOW)


class OperationRun(Base):
    __tablename__ = "operation_run"
    __table_args__ = (
        Index(None, "work_order_id"),
        Index(None, "equipment_id", "started_at"),
        Index("uq_operation_run_one_running_per_machine", "equipment_id", unique=True,
              postgresql_where=text("status = 'running'")),
    )

    id: Mapped[int] = _id()
    work_order_id: Mapped[int] = mapped_column(ForeignKey("mes.work_order.id"))
    operation_id: Mapped[int] = mapped_column(ForeignKey("mes.routing_operation.id"))
    equipment_id: Mapped[int] = mapped_column(ForeignKey("mes.equipment.id"))
    operator_id: Mapped[int] = mapped_column(ForeignKey("mes.person.id"))
    status: Mapped[RunStatus] = mapped_column(Text, server_default=text("'running'"))
    planned_quantity: Mapped[float]
    good_quantity: Mapped[float] = mapped_column(server_default=text("0"))
    scrap_quantity: Mapped[float] = mapped_column(server_default=text("0"))
    started_at: Mapped[dt.datetime] = mapped_column(server_default=NOW)
    ended_at: Mapped[dt.datetime | None]
    document_revision_id: Mapped[int | None] = mapped_column(
        ForeignKey("mes.document_revision.id"))
    version: Mapped[int] = mapped_column(server_default=text("1"))
    abort_reason: Mapped[str | None]


class RunCorrection(Base):
    """A supervisor's correction of a run's reported quantities, with the reason."""

    __tablename__ = "run_correction"

    id: Mapped[int] = _id()
    run_id: Mapped[int] = mapped_column(ForeignKey("mes.operation_run.id"))
    at: Mapped[dt.datetime] = mapped_column(server_default=NOW)
    person_id: Mapped[int] = mapped_column(ForeignKey("mes.person.id"))
    good_before: Mapped[float]
    scrap_before: Mapped[float]
    good_after: Mapped[float]
    scrap_after: Mapped[float]
    reason: Mapped[str]


class StorageLocation(Base):
    __tablename__ = "storage_location"

    id: Mapped[int] = _id()
    code: Mapped[str] = mapped_column(unique=True)
    name: Mapped[str]


class MaterialLot(Base):
    __tablename__ = "material_lot"
    __table_args__ = (Index(None, "material_id", "status"), Index(None, "produced_by_run_id"))

    id: Mapped[int] = _id()
    code: Mapped[str] = mapped_column(unique=True)
    material_id: Mapped[int] = mapped_column(ForeignKey("mes.material_definition.id"))
    status: Mapped[LotStatus] = mapped_column(Text, server_default=text("'available'"))
    # Kept equal to the sum of the lot's movements by a trigger; never set it directly.
    quantity: Mapped[float] = mapped_column(server_default=text("0"))
    location_id: Mapped[int] = mapped_column(ForeignKey("mes.storage_location.id"))
    produced_by_run_id: Mapped[int | None] = mapped_column(ForeignKey("mes.operation_run.id"))
    created_at: Mapped[dt.datetime] = mapped_column(server_default=NOW)
    version: Mapped[int] = mapped_column(server_default=text("1"))
    # Another site's code: where the lot came from (received with the same code), and
    # where it went (its status is then `shipped`).
    origin_site: Mapped[str | None]
    shipped_to_site: Mapped[str | None]


class LotMovement(Base):
    """Append-only (a trigger refuses changes); each row changes its lot's quantity."""

    __tablename__ = "lot_movement"
    __table_args__ = (Index(None, "lot_id"),)

    id: Mapped[int] = _big_id()
    lot_id: Mapped[int] = mapped_column(ForeignKey("mes.material_lot.id"))
    at: Mapped[dt.datetime] = mapped_column(server_default=NOW)
    kind: Mapped[MovementKind] = mapped_column(Text)
    quantity: Mapped[float]
    location_id: Mapped[int] = mapped_column(ForeignKey("mes.storage_location.id"))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("mes.operation_run.id"))
    person_id: Mapped[int | None] = mapped_column(ForeignKey("mes.person.id"))


class GenealogyLink(Base):
    __tablename__ = "genealogy_link"
    __table_args__ = (UniqueConstraint("parent_lot_id", "child_lot_id"),
                      Index(None, "child_lot_id"))

    id: Mapped[int] = _big_id()
    parent_lot_id: Mapped[int] = mapped_column(ForeignKey("mes.material_lot.id"))
    child_lot_id: Mapped[int] = mapped_column(ForeignKey("mes.material_lot.id"))
    kind: Mapped[GenealogyKind] = mapped_column(Text)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("mes.operation_run.id"))
    quantity: Mapped[float | None]


class InspectionResult(Base):
    __tablename__ = "inspection_result"
    __table_args__ = (UniqueConstraint("run_id", "plan_id", "sample_number"),)

    id: Mapped[int] = _id()
    run_id: Mapped[int] = mapped_column(ForeignKey("mes.operation_run.id"))
    plan_id: Mapped[int] = mapped_column(ForeignKey("mes.inspection_plan.id"))
    sample_number: Mapped[int]
    measured: Mapped[float]
    within_spec: Mapped[bool]
    lot_id: Mapped[int | None] = mapped_column(ForeignKey("mes.material_lot.id"))
    recorded_by: Mapped[int] = mapped_column(ForeignKey("mes.person.id"))
    recorded_at: Mapped[dt.datetime] = mapped_column(server_default=NOW)


class ElectronicSignature(Base):
    __tablename__ = "electronic_signature"

    id: Mapped[int] = _id()
    person_id: Mapped[int] = mapped_column(ForeignKey("mes.person.id"))
    signed_at: Mapped[dt.datetime] = mapped_column(server_default=NOW)
    meaning: Mapped[str]
    record_table: Mapped[str]
    record_id: Mapped[int]
    record_sha256: Mapped[str]
    printed_name: Mapped[str]


class Nonconformance(Base):
    __tablename__ = "nonconformance"

    id: Mapped[int] = _id()
    code: Mapped[str] = mapped_column(unique=True)
    status: Mapped[str] = mapped_column(server_default=text("'open'"))
    opened_at: Mapped[dt.datetime] = mapped_column(server_default=NOW)
    inspection_result_id: Mapped[int] = mapped_column(ForeignKey("mes.inspection_result.id"))
    run_id: Mapped[int] = mapped_column(ForeignKey("mes.operation_run.id"))
    work_order_id: Mapped[int] = mapped_column(ForeignKey("mes.work_order.id"))
    equipment_id: Mapped[int] = mapped_column(ForeignKey("mes.equipment.id"))
    operator_id: Mapped[int] = mapped_column(ForeignKey("mes.person.id"))
    lot_id: Mapped[int | None] = mapped_column(ForeignKey("mes.material_lot.id"))
    characteristic: Mapped[str]
    measured: Mapped[float]
    lower_spec: Mapped[float]
    upper_spec: Mapped[float]


class Disposition(Base):
    __tablename__ = "disposition"

    id: Mapped[int] = _id()
    nonconformance_id: Mapped[int] = mapped_column(ForeignKey("mes.nonconformance.id"),
                                                   unique=True)
    decision: Mapped[Decision] = mapped_column(Text)
    comment: Mapped[str | None]
    signature_id: Mapped[int] = mapped_column(ForeignKey("mes.electronic_signature.id"),
                                              unique=True)


class LaborSession(Base):
    __tablename__ = "labor_session"
    __table_args__ = (Index("uq_labor_session_one_open_per_person", "person_id", unique=True,
                            postgresql_where=text("signed_off_at IS NULL")),)

    id: Mapped[int] = _id()
    person_id: Mapped[int] = mapped_column(ForeignKey("mes.person.id"))
    equipment_id: Mapped[int] = mapped_column(ForeignKey("mes.equipment.id"))
    signed_on_at: Mapped[dt.datetime] = mapped_column(server_default=NOW)
    signed_off_at: Mapped[dt.datetime | None]


class MaintenanceWindow(Base):
    __tablename__ = "maintenance_window"
    __table_args__ = (Index(None, "equipment_id", "starts_at"),)

    id: Mapped[int] = _id()
    external_id: Mapped[str] = mapped_column(unique=True)
    equipment_id: Mapped[int] = mapped_column(ForeignKey("mes.equipment.id"))
    starts_at: Mapped[dt.datetime]
    ends_at: Mapped[dt.datetime]
    reason: Mapped[str | None]


class FaultCodeReason(Base):
    """What a machine's fault code means, per state model (the plant file's `fault_codes`)."""

    __tablename__ = "fault_code_reason"

    state_model_id: Mapped[int] = mapped_column(
        ForeignKey("mes.state_model.id", ondelete="CASCADE"), primary_key=True)
    fault_code: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    downtime_reason_id: Mapped[int] = mapped_column(ForeignKey("mes.downtime_reason.id"))


class DowntimeClassification(Base):
    """An operator's reason for a stop: the machine and the moment the stop began."""

    __tablename__ = "downtime_classification"
    __table_args__ = (UniqueConstraint("equipment_id", "started_at"),)

    id: Mapped[int] = _id()
    equipment_id: Mapped[int] = mapped_column(ForeignKey("mes.equipment.id"))
    started_at: Mapped[dt.datetime]
    downtime_reason_id: Mapped[int] = mapped_column(ForeignKey("mes.downtime_reason.id"))
    person_id: Mapped[int] = mapped_column(ForeignKey("mes.person.id"))
    classified_at: Mapped[dt.datetime] = mapped_column(server_default=NOW)
    note: Mapped[str | None]


class AuditLog(Base):
    """Append-only, written by a trigger on the audited tables; see `mes audit verify`."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_record", "table_name", "record_id"),
        Index("ix_audit_log_unsealed", "id", postgresql_where=text("chain_position IS NULL")),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    at: Mapped[dt.datetime]
    actor: Mapped[str]
    table_name: Mapped[str]
    record_id: Mapped[str]
    action: Mapped[str]
    before: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # Set by the sealer (mes.audit_seal) once the record has committed.
    previous_hash: Mapped[bytes | None] = mapped_column(LargeBinary)
    hash: Mapped[bytes | None] = mapped_column(LargeBinary)
    chain_position: Mapped[int | None] = mapped_column(BigInteger, unique=True)


class AuditChain(Base):
    __tablename__ = "audit_chain"

    singleton: Mapped[bool] = mapped_column(primary_key=True, server_default=text("true"))
    last_id: Mapped[int | None] = mapped_column(BigInteger)
    last_hash: Mapped[bytes] = mapped_column(LargeBinary)
    records: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))


# --- Exchange (migration 0005) ---------------------------------------------------------

ExportChange = Literal["new", "change", "repeat"]
WorkRequestCause = Literal["long_stop", "repeated_faults", "low_mtbf", "process_limit",
                           "nonconformance"]
WorkRequestStatus = Literal["open", "acknowledged", "in_progress", "closed", "cancelled"]
ProcessEventKind = Literal["spc", "condition"]


class ErpExport(Base):
    """One export of actuals to ERP (a file or an outbox drop)."""

    __tablename__ = "erp_export"

    id: Mapped[int] = _id()
    exported_at: Mapped[dt.datetime] = mapped_column(server_default=NOW)
    target: Mapped[str]
    since: Mapped[dt.datetime | None]
    records: Mapped[int]


class ErpExportRecord(Base):
    """The actuals of one operation of one order as one export sent them."""

    __tablename__ = "erp_export_record"
    __table_args__ = (UniqueConstraint("export_id", "work_order_id", "operation_id"),
                      Index(None, "work_order_id", "operation_id"))

    id: Mapped[int] = _big_id()
    export_id: Mapped[int] = mapped_column(ForeignKey("mes.erp_export.id"))
    work_order_id: Mapped[int] = mapped_column(ForeignKey("mes.work_order.id"))
    operation_id: Mapped[int] = mapped_column(ForeignKey("mes.routing_operation.id"))
    order_version: Mapped[int]
    digest: Mapped[str]
    change: Mapped[ExportChange] = mapped_column(Text)
    acknowledged_at: Mapped[dt.datetime | None]


class WorkRequest(Base):
    """A request to the maintenance system; one not closed per machine and cause."""

    __tablename__ = "work_request"
    __table_args__ = (Index("uq_work_request_one_open", "equipment_id", "cause", unique=True,
                            postgresql_where=text("status NOT IN ('closed', 'cancelled')")),
                      Index(None, "equipment_id", "cause"))

    id: Mapped[int] = _id()
    code: Mapped[str] = mapped_column(unique=True)
    equipment_id: Mapped[int] = mapped_column(ForeignKey("mes.equipment.id"))
    cause: Mapped[WorkRequestCause] = mapped_column(Text)
    status: Mapped[WorkRequestStatus] = mapped_column(Text, server_default=text("'open'"))
    priority: Mapped[int]
    event_at: Mapped[dt.datetime]
    opened_at: Mapped[dt.datetime] = mapped_column(server_default=NOW)
    closed_at: Mapped[dt.datetime | None]
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    external_id: Mapped[str | None]
    sent_at: Mapped[dt.datetime | None]
    send_attempts: Mapped[int] = mapped_column(server_default=text("0"))
    last_error: Mapped[str | None]
    occurrences: Mapped[int] = mapped_column(server_default=text("1"))
    last_event_at: Mapped[dt.datetime]


class WorkRequestTrigger(Base):
    """Thresholds of the work request triggers for the plant, a state model or a machine;
    NULL inherits from the wider scope (and switches a trigger off at the plant)."""

    __tablename__ = "work_request_trigger"

    id: Mapped[int] = _id()
    equipment_id: Mapped[int | None] = mapped_column(
        ForeignKey("mes.equipment.id", ondelete="CASCADE"), unique=True)
    state_model_id: Mapped[int | None] = mapped_column(
        ForeignKey("mes.state_model.id", ondelete="CASCADE"), unique=True)
    long_stop_seconds: Mapped[float | None]
    fault_count: Mapped[int | None]
    fault_window_seconds: Mapped[float | None]
    mtbf_below_seconds: Mapped[float | None]
    out_of_limits_seconds: Mapped[float | None]
    nonconformance: Mapped[bool | None]
    signal_window_seconds: Mapped[float | None]


class ConditionRule(Base):
    """Condition monitoring of one process value: rate of change, deviation from a rolling
    baseline (its limits are the signal's own)."""

    __tablename__ = "condition_rule"

    signal_id: Mapped[int] = mapped_column(ForeignKey("mes.signal.id", ondelete="CASCADE"),
                                           primary_key=True)
    max_rate_per_minute: Mapped[float | None]
    baseline_minutes: Mapped[float | None]
    max_deviation: Mapped[float | None]


class RunSignalEnvelope(Base):
    """Min, max, mean and time out of limits of one process value over one run."""

    __tablename__ = "run_signal_envelope"
    __table_args__ = (Index("ix_run_signal_envelope_exposed", "signal_id", "run_id",
                            postgresql_where=text("samples_out_of_limits > 0")),)

    run_id: Mapped[int] = mapped_column(
        ForeignKey("mes.operation_run.id", ondelete="CASCADE"), primary_key=True)
    signal_id: Mapped[int] = mapped_column(
        ForeignKey("mes.signal.id", ondelete="CASCADE"), primary_key=True)
    samples: Mapped[int]
    min_value: Mapped[float | None]
    max_value: Mapped[float | None]
    mean_value: Mapped[float | None]
    samples_out_of_limits: Mapped[int]
    seconds_out_of_limits: Mapped[float]
    bad_quality_seconds: Mapped[float]
    low_limit: Mapped[float | None]
    high_limit: Mapped[float | None]
    computed_at: Mapped[dt.datetime] = mapped_column(server_default=NOW)


class ProcessEvent(Base):
    """An SPC rule violation or a condition-monitoring event, with its production context."""

    __tablename__ = "process_event"
    __table_args__ = (UniqueConstraint("kind", "subject", "rule", "at"), Index(None, "at"))

    id: Mapped[int] = _big_id()
    kind: Mapped[ProcessEventKind] = mapped_column(Text)
    subject: Mapped[str]
    signal_id: Mapped[int | None] = mapped_column(
        ForeignKey("mes.signal.id", ondelete="CASCADE"))
    inspection_plan_id: Mapped[int | None] = mapped_column(
        ForeignKey("mes.inspection_plan.id", ondelete="CASCADE"))
    rule: Mapped[str]
    at: Mapped[dt.datetime]
    value: Mapped[float | None]
    detail: Mapped[str]
    run_id: Mapped[int | None] = mapped_column(ForeignKey("mes.operation_run.id"))
    work_order_id: Mapped[int | None] = mapped_column(ForeignKey("mes.work_order.id"))
    lot_id: Mapped[int | None] = mapped_column(ForeignKey("mes.material_lot.id"))
    detected_at: Mapped[dt.datetime] = mapped_column(server_default=NOW)


class Credential(Base):
    """A person's password and optional PIN as Argon2 hashes; see transactional.identity."""

    __tablename__ = "credential"

    person_id: Mapped[int] = mapped_column(ForeignKey("mes.person.id", ondelete="CASCADE"),
                                           primary_key=True)
    password_hash: Mapped[str]
    pin_hash: Mapped[str | None]
    changed_at: Mapped[dt.datetime] = mapped_column(server_default=NOW)
    failed_attempts: Mapped[int] = mapped_column(server_default=text("0"))
    locked_until: Mapped[dt.datetime | None]


class LoginSession(Base):
    __tablename__ = "login_session"

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=False), primary_key=True)
    token_sha256: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("mes.person.id"))
    method: Mapped[str]
    started_at: Mapped[dt.datetime] = mapped_column(server_default=NOW)
    last_seen_at: Mapped[dt.datetime] = mapped_column(server_default=NOW)
    idle_timeout: Mapped[dt.timedelta]
    expires_at: Mapped[dt.datetime]
    ended_at: Mapped[dt.datetime | None]
    end_reason: Mapped[str | None]


class AuthEvent(Base):
    """Logins, failures, lock-outs, password changes: no secret is ever stored here."""

    __tablename__ = "auth_event"
    __table_args__ = (Index(None, "badge", "at"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=False), primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(server_default=NOW)
    badge: Mapped[str]
    person_id: Mapped[int | None] = mapped_column(ForeignKey("mes.person.id"))
    event: Mapped[str]
    detail: Mapped[str | None]
