"""Collector role: the schema owner may act as mes_ingest, as `mes collect` does.

Revision ID: 0002_collector_role
Revises: 0001_foundation
"""


from sql import run_sql_file

revision = "0002_collector_role"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0002_collector_role.up.sql")


def downgrade() -> None:
    # Membership is cluster-wide, like the roles themselves, which downgrades keep: other
    # databases of the cluster may rely on it.
    pass
