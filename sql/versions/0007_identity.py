"""Identity: credentials, login sessions, roles, sealed audit chain, integrity guards.

Revision ID: 0007_identity
Revises: 0006_derived
"""


from sql import run_sql_file

revision = "0007_identity"
down_revision = "0006_derived"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0007_identity.up.sql")


def downgrade() -> None:
    run_sql_file("0007_identity.down.sql")
