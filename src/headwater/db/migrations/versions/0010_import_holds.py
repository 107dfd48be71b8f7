"""import holds: CSV import rows held by the mass-change guard, kept for an admin's decision

Revision ID: 0010_import_holds
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "import_holds",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("user_id", sa.String(32), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("row", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("match", sa.String(32), nullable=False),
        sa.Column("source", sa.String(100), nullable=True),
        sa.Column("created", Timestamp, nullable=False),
        sa.Column("created_by", sa.JSON(), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("decided_at", Timestamp, nullable=True),
        sa.Column("decided_by", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_import_holds_user_id_users", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_import_holds"),
    )
    op.create_index("ix_import_holds_user_id", "import_holds", ["user_id"])
    op.create_index("ix_import_holds_decision_id", "import_holds", ["decision", "id"])


def downgrade() -> None:
    op.drop_index("ix_import_holds_decision_id", table_name="import_holds")
    op.drop_index("ix_import_holds_user_id", table_name="import_holds")
    op.drop_table("import_holds")
