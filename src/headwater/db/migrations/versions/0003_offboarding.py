"""offboarding deadline: when a deprovision began, and stale memberships

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("app_user_links") as batch:
        batch.add_column(
            sa.Column("deprovision_started", sa.DateTime(timezone=True), nullable=True)
        )
    with op.batch_alter_table("push_members") as batch:
        batch.add_column(sa.Column("stale_since", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("stale_error", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("push_members") as batch:
        batch.drop_column("stale_error")
        batch.drop_column("stale_since")
    with op.batch_alter_table("app_user_links") as batch:
        batch.drop_column("deprovision_started")
