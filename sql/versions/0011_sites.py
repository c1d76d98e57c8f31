"""Sites: the forwarded-row marks and outbox of a site, and the central store of many sites.

Revision ID: 0011_sites
Revises: 0010_message_lost_gaps
"""


from sql import run_sql_file

revision = "0011_sites"
down_revision = "0010_message_lost_gaps"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0011_sites.up.sql")


def downgrade() -> None:
    run_sql_file("0011_sites.down.sql")
