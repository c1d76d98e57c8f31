"""Collection gaps of lost messages: a Sparkplug B edge node's sequence numbers skipped.

Revision ID: 0010_message_lost_gaps
Revises: 0009_count_chunks
"""


from sql import run_sql_file

revision = "0010_message_lost_gaps"
down_revision = "0009_count_chunks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0010_message_lost_gaps.up.sql")


def downgrade() -> None:
    run_sql_file("0010_message_lost_gaps.down.sql")
