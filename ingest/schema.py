"""SQLAlchemy Core tables of the time-series hypertables (schema `ts`).

The migrations in `sql/` define these tables and make them hypertables; this module mirrors
their columns for queries and for the model/database agreement test. Bulk writes go
through binary COPY, not through these objects.
"""

from __future__ import annotations

from sqlalchemy import (
    CheckConstraint,
    Column,
    Double,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    Table,
    text,
)
from sqlalchemy.dialects.postgresql import TIMESTAMP

metadata = MetaData(schema="ts")

# The hypertables whose raw chunks retention may drop.
RAW_HYPERTABLES = ("ts.process_value", "ts.equipment_state", "ts.production_count")

process_value = Table(
    "process_value", metadata,
    Column("ts", TIMESTAMP(timezone=True), nullable=False),
    Column("signal_id", Integer, nullable=False),
    Column("value", Double),
    Column("quality", SmallInteger, nullable=False, server_default=text("0")),
    PrimaryKeyConstraint("signal_id", "ts", name="pk_process_value"),
)

equipment_state = Table(
    "equipment_state", metadata,
    Column("ts", TIMESTAMP(timezone=True), nullable=False),
    Column("equipment_id", Integer, nullable=False),
    Column("state", Integer, nullable=False),
    Column("reason_code", Integer),
    PrimaryKeyConstraint("equipment_id", "ts", name="pk_equipment_state"),
)

production_count = Table(
    "production_count", metadata,
    Column("ts", TIMESTAMP(timezone=True), nullable=False),
    Column("equipment_id", Integer, nullable=False),
    Column("good", Integer, nullable=False, server_default=text("0")),
    Column("reject", Integer, nullable=False, server_default=text("0")),
    PrimaryKeyConstraint("equipment_id", "ts", name="pk_production_count"),
    CheckConstraint("good >= 0 AND reject >= 0", name="ck_production_count_non_negative"),
)
