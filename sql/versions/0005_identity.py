"""Identity: credentials, login sessions, roles, sealed audit chain, integrity guards.

Revision ID: 0005_identity
Revises: 0004_collection_records
"""


from sql import run_sql_file

revision = "0005_identity"
down_revision = "0004_collection_records"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0005_identity.up.sql")


def downgrade() -> None:
    run_sql_file("0005_identity.down.sql")
