"""inbound sources: their bearer tokens, and the users and groups each masters

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sources",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("name_lower", sa.String(255), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_updated", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sources"),
        sa.UniqueConstraint("name_lower", name="uq_sources_name_lower"),
    )
    op.create_table(
        "source_tokens",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("source_id", sa.String(32), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("token_prefix", sa.String(8), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["sources.id"],
            name="fk_source_tokens_source_id_sources",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_source_tokens"),
        sa.UniqueConstraint("token_hash", name="uq_source_tokens_token_hash"),
    )
    op.create_index("ix_source_tokens_source_id", "source_tokens", ["source_id"])
    for table in ("users", "groups"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("source_id", sa.String(32), nullable=True))
            batch.add_column(sa.Column("source_document", sa.JSON(), nullable=True))
            batch.create_foreign_key(
                f"fk_{table}_source_id_sources",
                "sources",
                ["source_id"],
                ["id"],
                ondelete="SET NULL",
            )
            batch.create_index(f"ix_{table}_source_id", ["source_id"], unique=False)


def downgrade() -> None:
    for table in ("groups", "users"):
        with op.batch_alter_table(table) as batch:
            batch.drop_index(f"ix_{table}_source_id")
            batch.drop_constraint(f"fk_{table}_source_id_sources", type_="foreignkey")
            batch.drop_column("source_document")
            batch.drop_column("source_id")
    op.drop_index("ix_source_tokens_source_id", table_name="source_tokens")
    op.drop_table("source_tokens")
    op.drop_table("sources")
