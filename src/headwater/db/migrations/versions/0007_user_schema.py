"""the directory's user schema, and the groups an app's mapping reads

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "user_schemas",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("last_updated", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_schemas")),
    )
    with op.batch_alter_table("apps") as batch:
        batch.add_column(sa.Column("membership_reads", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("apps") as batch:
        batch.drop_column("membership_reads")
    op.drop_table("user_schemas")
