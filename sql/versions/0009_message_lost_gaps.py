"""Collection gaps of lost messages: a Sparkplug B edge node's sequence numbers skipped.

Revision ID: 0009_message_lost_gaps
Revises: 0008_work_requests
"""


from sql import run_sql_file

revision = "0009_message_lost_gaps"
down_revision = "0008_work_requests"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0009_message_lost_gaps.up.sql")


def downgrade() -> None:
    run_sql_file("0009_message_lost_gaps.down.sql")
