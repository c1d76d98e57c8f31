"""Lot shipping: where a lot went to and came from, at the sites and in the central store.

Revision ID: 0012_lot_shipping
Revises: 0011_sites
"""


from sql import run_sql_file

revision = "0012_lot_shipping"
down_revision = "0011_sites"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0012_lot_shipping.up.sql")


def downgrade() -> None:
    run_sql_file("0012_lot_shipping.down.sql")
