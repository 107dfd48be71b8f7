"""claim index: reconcile keys indexed in the order a claim takes them

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A claim orders by (not_before, kind DESC) and stops at its limit; with an index on
    # not_before alone, the keys of one bulk enqueue (all due at once) were sorted whole by
    # every claim.
    op.create_index("ix_reconcile_keys_due", "reconcile_keys", ["not_before", sa.text("kind DESC")])
    op.drop_index("ix_reconcile_keys_not_before", table_name="reconcile_keys")


def downgrade() -> None:
    op.create_index("ix_reconcile_keys_not_before", "reconcile_keys", ["not_before"])
    op.drop_index("ix_reconcile_keys_due", table_name="reconcile_keys")
