"""app imports: what an app already holds, matched to directory users; unmanaged accounts

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "app_imports",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("app_id", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("rules", sa.String(255), nullable=False),
        sa.Column("auto_confirm", sa.Boolean(), nullable=False),
        sa.Column("requested_by", sa.String(64), nullable=True),
        sa.Column("accounts_total", sa.Integer(), nullable=True),
        sa.Column("accounts_read", sa.Integer(), nullable=False),
        sa.Column("groups_read", sa.Integer(), nullable=False),
        sa.Column("next_index", sa.Integer(), nullable=False),
        sa.Column("matched", sa.Integer(), nullable=False),
        sa.Column("unmatched", sa.Integer(), nullable=False),
        sa.Column("conflicts", sa.Integer(), nullable=False),
        sa.Column("linked", sa.Integer(), nullable=False),
        sa.Column("confirmed", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created", Timestamp, nullable=False),
        sa.Column("started", Timestamp, nullable=True),
        sa.Column("finished", Timestamp, nullable=True),
        sa.Column("last_updated", Timestamp, nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name="fk_app_imports_app_id_apps", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_app_imports"),
    )
    op.create_index("ix_app_imports_app_id", "app_imports", ["app_id"])
    op.create_table(
        "app_import_accounts",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("import_id", sa.String(32), nullable=False),
        sa.Column("external_id", sa.String(255), nullable=False),
        sa.Column("user_name", sa.String(255), nullable=False),
        sa.Column("email", sa.String(255), nullable=True),
        sa.Column("account_external_id", sa.String(255), nullable=True),
        sa.Column("employee_number", sa.String(255), nullable=True),
        sa.Column("display_name", sa.String(255), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=True),
        sa.Column("user_id", sa.String(32), nullable=True),
        sa.Column("rule", sa.String(32), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("candidates", sa.JSON(), nullable=True),
        sa.Column("link_requested", sa.Boolean(), nullable=False),
        sa.Column("confirmed", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["import_id"],
            ["app_imports.id"],
            name="fk_app_import_accounts_import_id_app_imports",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name="fk_app_import_accounts_user_id_users",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_app_import_accounts"),
        sa.UniqueConstraint(
            "import_id", "external_id", name="uq_app_import_accounts_import_id_external_id"
        ),
    )
    op.create_index(
        "ix_app_import_accounts_import_id_outcome",
        "app_import_accounts",
        ["import_id", "outcome"],
    )
    op.create_table(
        "app_import_groups",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("import_id", sa.String(32), nullable=False),
        sa.Column("external_id", sa.String(255), nullable=False),
        sa.Column("display_name", sa.String(255), nullable=False),
        sa.Column("mapping_id", sa.String(32), nullable=True),
        sa.ForeignKeyConstraint(
            ["import_id"],
            ["app_imports.id"],
            name="fk_app_import_groups_import_id_app_imports",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["mapping_id"],
            ["push_mappings.id"],
            name="fk_app_import_groups_mapping_id_push_mappings",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_app_import_groups"),
        sa.UniqueConstraint(
            "import_id", "external_id", name="uq_app_import_groups_import_id_external_id"
        ),
    )
    op.create_table(
        "unmanaged_accounts",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("app_id", sa.String(32), nullable=False),
        sa.Column("external_id", sa.String(255), nullable=False),
        sa.Column("user_name", sa.String(255), nullable=False),
        sa.Column("email", sa.String(255), nullable=True),
        sa.Column("display_name", sa.String(255), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("decision", sa.String(16), nullable=True),
        sa.Column("user_id", sa.String(32), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("first_seen", Timestamp, nullable=False),
        sa.Column("last_seen", Timestamp, nullable=False),
        sa.Column("last_updated", Timestamp, nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name="fk_unmanaged_accounts_app_id_apps", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name="fk_unmanaged_accounts_user_id_users",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_unmanaged_accounts"),
        sa.UniqueConstraint(
            "app_id", "external_id", name="uq_unmanaged_accounts_app_id_external_id"
        ),
    )


def downgrade() -> None:
    op.drop_table("unmanaged_accounts")
    op.drop_table("app_import_groups")
    op.drop_index("ix_app_import_accounts_import_id_outcome", table_name="app_import_accounts")
    op.drop_table("app_import_accounts")
    op.drop_index("ix_app_imports_app_id", table_name="app_imports")
    op.drop_table("app_imports")
