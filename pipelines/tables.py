"""SQLAlchemy Core tables of the derived schema (`derived`), written by the pipelines.

The migration `sql/0006_derived.up.sql` defines them; these mirror it for the
model/database agreement test and for their names and column types. Rows are written with
ADBC bulk ingest from Polars frames, not through these objects.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Double,
    Identity,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import TIMESTAMP

metadata = MetaData(schema="derived")


def _ts(name: str, nullable: bool = False) -> Column[object]:
    return Column(name, TIMESTAMP(timezone=True), nullable=nullable)


machine_time = Table(
    "machine_time", metadata,
    Column("equipment_id", Integer, nullable=False),
    _ts("starts_at"),
    _ts("ends_at"),
    Column("seconds", Double, nullable=False),
    Column("category", Text, nullable=False),
    Column("planned_kind", Text),
    Column("state", Integer),
    Column("reason_code", Integer),
    Column("downtime_reason_id", Integer),
    _ts("event_started_at", nullable=True),
    _ts("hour_start"),
    Column("shift_id", Integer),
    _ts("shift_started_at", nullable=True),
    Column("operation_run_id", Integer),
    Column("material_id", Integer),
    PrimaryKeyConstraint("equipment_id", "starts_at", name="pk_machine_time"),
    CheckConstraint("category IN ('planned', 'running', 'setup', 'idle', 'planned_stop', "
                    "'unplanned_stop', 'offline', 'unknown')", name="ck_machine_time_category"),
    CheckConstraint("(category = 'planned') = (planned_kind IS NOT NULL) AND (planned_kind IS "
                    "NULL OR planned_kind IN ('no_shift', 'break', 'planned_stop', "
                    "'maintenance'))", name="ck_machine_time_planned_kind"),
    CheckConstraint("ends_at > starts_at", name="ck_machine_time_span"),
    Index("ix_machine_time_starts_at", "starts_at"),
)

downtime_event = Table(
    "downtime_event", metadata,
    Column("id", BigInteger, Identity(always=False), nullable=False),
    Column("equipment_id", Integer, nullable=False),
    _ts("started_at"),
    _ts("ended_at", nullable=True),
    Column("duration_seconds", Double, nullable=False),
    Column("state", Integer, nullable=False),
    Column("category", Text, nullable=False),
    Column("reason_code", Integer),
    Column("downtime_reason_id", Integer),
    Column("reason_source", Text, nullable=False),
    Column("planned", Boolean, nullable=False),
    Column("micro_stop", Boolean, nullable=False),
    Column("operation_run_id", Integer),
    Column("work_order_id", Integer),
    Column("lot_codes", Text),
    PrimaryKeyConstraint("id", name="pk_downtime_event"),
    UniqueConstraint("equipment_id", "started_at",
                     name="uq_downtime_event_equipment_id_started_at"),
    CheckConstraint("reason_source IN ('operator', 'fault_code', 'unclassified')",
                    name="ck_downtime_event_reason_source"),
    CheckConstraint("duration_seconds >= 0", name="ck_downtime_event_duration"),
    Index("ix_downtime_event_started_at", "started_at"),
)

kpi = Table(
    "kpi", metadata,
    Column("equipment_id", Integer, nullable=False),
    Column("scope", Text, nullable=False),
    Column("period", Text, nullable=False),
    _ts("period_start"),
    _ts("period_end"),
    Column("shift_id", Integer),
    _ts("shift_started_at", nullable=True),
    Column("planned_busy_seconds", Double, nullable=False),
    Column("actual_production_seconds", Double, nullable=False),
    Column("setup_seconds", Double, nullable=False),
    Column("unknown_seconds", Double, nullable=False),
    Column("produced_quantity", BigInteger, nullable=False),
    Column("good_quantity", BigInteger, nullable=False),
    Column("scrap_quantity", BigInteger, nullable=False),
    Column("ideal_production_seconds", Double),
    Column("missing_ideal_cycle_time", Boolean, nullable=False),
    Column("failure_count", Integer, nullable=False),
    Column("failure_seconds", Double, nullable=False),
    *(Column(name, Double) for name in (
        "availability", "performance", "quality", "oee", "scrap_ratio", "first_pass_yield",
        "throughput_per_hour", "setup_ratio", "mtbf_seconds", "mttr_seconds")),
    PrimaryKeyConstraint("equipment_id", "period", "period_start", name="pk_kpi"),
    CheckConstraint("scope IN ('machine', 'line', 'site')", name="ck_kpi_scope"),
    CheckConstraint("period IN ('hour', 'shift', 'day')", name="ck_kpi_period"),
    CheckConstraint("period_end > period_start", name="ck_kpi_span"),
    Index("ix_kpi_period_start", "period_start"),
)

count_reconciliation = Table(
    "count_reconciliation", metadata,
    Column("operation_run_id", Integer, nullable=False),
    Column("equipment_id", Integer, nullable=False),
    _ts("started_at"),
    _ts("ended_at", nullable=True),
    Column("machine_good", BigInteger, nullable=False),
    Column("machine_reject", BigInteger, nullable=False),
    Column("reported_good", Double, nullable=False),
    Column("reported_scrap", Double, nullable=False),
    Column("good_difference", Double, nullable=False),
    Column("scrap_difference", Double, nullable=False),
    Column("within_tolerance", Boolean, nullable=False),
    PrimaryKeyConstraint("operation_run_id", name="pk_count_reconciliation"),
    Index("ix_count_reconciliation_started_at", "started_at"),
)
