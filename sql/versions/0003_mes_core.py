"""MES core: products, work orders and runs, lots and genealogy, quality, labor, documents,
maintenance windows, and the hash-chained audit log.

Revision ID: 0003_mes_core
Revises: 0002_collector_role
"""


from sql import run_sql_file

revision = "0003_mes_core"
down_revision = "0002_collector_role"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0003_mes_core.up.sql")


def downgrade() -> None:
    run_sql_file("0003_mes_core.down.sql")
