"""attribute mappings per app: the changed properties and the app user schema

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("apps") as batch:
        batch.add_column(sa.Column("attribute_mapping", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("user_schema", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("apps") as batch:
        batch.drop_column("user_schema")
        batch.drop_column("attribute_mapping")
