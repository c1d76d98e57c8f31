"""Derived tables (machine time, downtime events, KPIs, count reconciliation), fault code
mapping and operators' downtime classifications.

Revision ID: 0005_derived
Revises: 0004_collection_records
"""


from sql import run_sql_file

revision = "0005_derived"
down_revision = "0004_collection_records"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0005_derived.up.sql")


def downgrade() -> None:
    run_sql_file("0005_derived.down.sql")
