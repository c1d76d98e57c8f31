"""Exchange: ERP actuals views and export bookkeeping, CMMS work requests, run signal
envelopes and process events (SPC, condition monitoring).

Revision ID: 0005_exchange
Revises: 0004_collection_records
"""


from sql import run_sql_file

revision = "0005_exchange"
down_revision = "0004_collection_records"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0005_exchange.up.sql")


def downgrade() -> None:
    run_sql_file("0005_exchange.down.sql")
