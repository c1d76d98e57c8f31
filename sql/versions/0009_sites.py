"""Sites: the forwarded-row marks and outbox of a site, and the central store of many sites.

Revision ID: 0009_sites
Revises: 0008_work_requests
"""


from sql import run_sql_file

revision = "0009_sites"
down_revision = "0008_work_requests"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0009_sites.up.sql")


def downgrade() -> None:
    run_sql_file("0009_sites.down.sql")
