"""Work requests to the CMMS: trigger thresholds, condition rules, repeated events.

Revision ID: 0008_work_requests
Revises: 0007_identity
"""


from sql import run_sql_file

revision = "0008_work_requests"
down_revision = "0007_identity"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0008_work_requests.up.sql")


def downgrade() -> None:
    run_sql_file("0008_work_requests.down.sql")
