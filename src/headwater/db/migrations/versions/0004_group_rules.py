"""group rules, and where a membership comes from (by hand, by which rules)

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("memberships") as batch:
        batch.add_column(
            sa.Column("manual", sa.Boolean(), nullable=False, server_default=sa.true())
        )
    op.create_table(
        "group_rules",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("expression", sa.Text(), nullable=False),
        sa.Column("group_ids", sa.JSON(), nullable=False),
        sa.Column("exclude_user_ids", sa.JSON(), nullable=False),
        sa.Column("exclude_group_ids", sa.JSON(), nullable=False),
        sa.Column("invalid_reason", sa.Text(), nullable=True),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("sweep_after", sa.String(32), nullable=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_updated", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_group_rules"),
    )
    op.create_index("ix_group_rules_status", "group_rules", ["status"])
    op.create_table(
        "group_rule_members",
        sa.Column("rule_id", sa.String(32), nullable=False),
        sa.Column("group_id", sa.String(32), nullable=False),
        sa.Column("user_id", sa.String(32), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["rule_id"],
            ["group_rules.id"],
            name="fk_group_rule_members_rule_id_group_rules",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["groups.id"],
            name="fk_group_rule_members_group_id_groups",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name="fk_group_rule_members_user_id_users",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("rule_id", "group_id", "user_id", name="pk_group_rule_members"),
    )
    op.create_index("ix_group_rule_members_user_id", "group_rule_members", ["user_id"])
    op.create_index(
        "ix_group_rule_members_group_id_user_id", "group_rule_members", ["group_id", "user_id"]
    )


def downgrade() -> None:
    op.drop_table("group_rule_members")
    op.drop_index("ix_group_rules_status", table_name="group_rules")
    op.drop_table("group_rules")
    with op.batch_alter_table("memberships") as batch:
        batch.drop_column("manual")
