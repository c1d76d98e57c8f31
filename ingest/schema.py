"""SQLAlchemy Core tables of the time-series hypertables (schema `ts`).

The migrations in `sql/` define these tables and make them hypertables; this module mirrors
their columns for queries and for the model/database agreement test. Bulk writes go
through binary COPY, not through these objects.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Double,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import TIMESTAMP
from sqlalchemy.dialects.postgresql.base import ischema_names
from sqlalchemy.types import UserDefinedType


class Xid8(UserDefinedType[int]):
    """PostgreSQL's 64-bit transaction id: which transaction stored a row (for forwarding)."""

    cache_ok = True

    def get_col_spec(self, **kw: object) -> str:
        return "xid8"


# So that reflecting the migrated tables (the model/database agreement test) knows the type.
ischema_names.setdefault("xid8", Xid8)


def _stored_by() -> Column[int]:
    # Filled by the database in the transaction that stores the row; the site forwarder
    # reads rows by it (sql/0011_sites.up.sql).
    return Column("xid", Xid8, nullable=False, server_default=text("pg_current_xact_id()"))

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
    _stored_by(),
    Index("ix_process_value_xid", "xid"),
)

equipment_state = Table(
    "equipment_state", metadata,
    Column("ts", TIMESTAMP(timezone=True), nullable=False),
    Column("equipment_id", Integer, nullable=False),
    Column("state", Integer, nullable=False),
    Column("reason_code", Integer),
    PrimaryKeyConstraint("equipment_id", "ts", name="pk_equipment_state"),
    _stored_by(),
    Index("ix_equipment_state_xid", "xid"),
)

production_count = Table(
    "production_count", metadata,
    Column("ts", TIMESTAMP(timezone=True), nullable=False),
    Column("equipment_id", Integer, nullable=False),
    Column("good", Integer, nullable=False, server_default=text("0")),
    Column("reject", Integer, nullable=False, server_default=text("0")),
    PrimaryKeyConstraint("equipment_id", "ts", name="pk_production_count"),
    _stored_by(),
    Index("ix_production_count_xid", "xid"),
    CheckConstraint("good >= 0 AND reject >= 0", name="ck_production_count_non_negative"),
)

# The plant tables the collection records point at, as far as the foreign keys need them.
Table("equipment", metadata, Column("id", Integer, primary_key=True), schema="mes")
Table("signal", metadata, Column("id", Integer, primary_key=True), schema="mes")

COLLECTION_GAP_CAUSES = ("source_lost", "collector_stopped", "collector_crashed",
                         "spool_overflow", "message_lost")

collection_gap = Table(
    "collection_gap", metadata,
    Column("id", BigInteger, Identity(always=False), nullable=False),
    Column("equipment_id", Integer, nullable=False),
    Column("source", Text, nullable=False),
    Column("gap_start", TIMESTAMP(timezone=True), nullable=False),
    Column("gap_end", TIMESTAMP(timezone=True)),
    Column("cause", Text, nullable=False),
    PrimaryKeyConstraint("id", name="pk_collection_gap"),
    ForeignKeyConstraint(["equipment_id"], ["mes.equipment.id"],
                         name="fk_collection_gap_equipment_id_equipment"),
    CheckConstraint("cause IN ('source_lost', 'collector_stopped', 'collector_crashed', "
                    "'spool_overflow', 'message_lost')", name="ck_collection_gap_cause"),
    CheckConstraint("gap_end IS NULL OR gap_end >= gap_start", name="ck_collection_gap_order"),
    Index("ix_collection_gap_equipment_id_gap_start", "equipment_id", "gap_start"),
    Index("uq_collection_gap_open", "equipment_id", "source", unique=True,
          postgresql_where=text("gap_end IS NULL")),
)

counter_discontinuity = Table(
    "counter_discontinuity", metadata,
    Column("id", BigInteger, Identity(always=False), nullable=False),
    Column("ts", TIMESTAMP(timezone=True), nullable=False),
    Column("signal_id", Integer, nullable=False),
    Column("old_value", BigInteger, nullable=False),
    Column("new_value", BigInteger, nullable=False),
    Column("decision", Text, nullable=False),
    Column("counted", BigInteger, nullable=False),
    PrimaryKeyConstraint("id", name="pk_counter_discontinuity"),
    ForeignKeyConstraint(["signal_id"], ["mes.signal.id"],
                         name="fk_counter_discontinuity_signal_id_signal"),
    CheckConstraint("decision IN ('rollover', 'reset', 'rebase')",
                    name="ck_counter_discontinuity_decision"),
    CheckConstraint("counted >= 0", name="ck_counter_discontinuity_counted"),
    Index("uq_counter_discontinuity_signal_id_ts", "signal_id", "ts", unique=True),
)

unknown_state = Table(
    "unknown_state", metadata,
    Column("ts", TIMESTAMP(timezone=True), nullable=False),
    Column("equipment_id", Integer, nullable=False),
    Column("state", Integer, nullable=False),
    PrimaryKeyConstraint("equipment_id", "ts", name="pk_unknown_state"),
    ForeignKeyConstraint(["equipment_id"], ["mes.equipment.id"],
                         name="fk_unknown_state_equipment_id_equipment"),
)
