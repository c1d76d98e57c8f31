"""Collection records: collection gaps and counter discontinuities the collectors note.

Revision ID: 0004_collection_records
Revises: 0003_mes_core
"""


from sql import run_sql_file

revision = "0004_collection_records"
down_revision = "0003_mes_core"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0004_collection_records.up.sql")


def downgrade() -> None:
    run_sql_file("0004_collection_records.down.sql")
