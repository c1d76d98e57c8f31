"""Foundation: plant model, signals, calendars, materials, personnel, hypertables, roles.

Revision ID: 0001_foundation
Revises:
"""


from sql import run_sql_file

revision = "0001_foundation"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0001_foundation.up.sql")


def downgrade() -> None:
    run_sql_file("0001_foundation.down.sql")
