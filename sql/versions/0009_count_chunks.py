"""Day chunks for the 1 Hz production counts.

Revision ID: 0009_count_chunks
Revises: 0008_work_requests
"""


from sql import run_sql_file

revision = "0009_count_chunks"
down_revision = "0008_work_requests"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0009_count_chunks.up.sql")


def downgrade() -> None:
    run_sql_file("0009_count_chunks.down.sql")
