"""Derived tables (machine time, downtime events, KPIs, count reconciliation), fault code
mapping and operators' downtime classifications.

Revision ID: 0006_derived
Revises: 0005_exchange
"""


from sql import run_sql_file

revision = "0006_derived"
down_revision = "0005_exchange"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0006_derived.up.sql")


def downgrade() -> None:
    run_sql_file("0006_derived.down.sql")
