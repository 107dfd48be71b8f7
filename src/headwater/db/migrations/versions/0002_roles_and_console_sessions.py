"""roles for API tokens and console admins; server-side console sessions

Existing tokens and admins become SUPER_ADMIN (what they could do before), so nothing breaks.
The per-account lockout columns go: sign-in is throttled per client address and per username
in the serving process instead.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

GRANT_TABLES = ("api_tokens", "admins")


def upgrade() -> None:
    for table in GRANT_TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("role", sa.String(length=32), nullable=True))
            batch.add_column(sa.Column("app_ids", sa.JSON(), nullable=True))
            batch.add_column(sa.Column("group_ids", sa.JSON(), nullable=True))
        rows = sa.table(
            table,
            sa.column("role", sa.String),
            sa.column("app_ids", sa.JSON),
            sa.column("group_ids", sa.JSON),
        )
        op.execute(rows.update().values(role="SUPER_ADMIN", app_ids=[], group_ids=[]))
        with op.batch_alter_table(table) as batch:
            batch.alter_column("role", existing_type=sa.String(length=32), nullable=False)
            batch.alter_column("app_ids", existing_type=sa.JSON(), nullable=False)
            batch.alter_column("group_ids", existing_type=sa.JSON(), nullable=False)
    with op.batch_alter_table("admins") as batch:
        batch.drop_column("failed_attempts")
        batch.drop_column("locked_until")
    op.create_table(
        "console_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("admin_id", sa.String(length=32), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["admin_id"],
            ["admins.id"],
            name=op.f("fk_console_sessions_admin_id_admins"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_console_sessions")),
    )
    with op.batch_alter_table("console_sessions") as batch:
        batch.create_index(batch.f("ix_console_sessions_admin_id"), ["admin_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("console_sessions") as batch:
        batch.drop_index(batch.f("ix_console_sessions_admin_id"))
    op.drop_table("console_sessions")
    with op.batch_alter_table("admins") as batch:
        batch.add_column(
            sa.Column("failed_attempts", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True))
    for table in GRANT_TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("group_ids")
            batch.drop_column("app_ids")
            batch.drop_column("role")
