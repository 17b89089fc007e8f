"""Rules evaluated in each analysis pass, so `alerts` can run alone and resolve correctly.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rule_evaluations",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("ledger_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("analysis_type", sa.String(length=16), nullable=False),
        sa.Column("alert_type", sa.String(length=48), nullable=False),
        sa.Column("evaluated", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("skipped", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant"], ["tenants.tenant"], name=op.f("fk_rule_evaluations_tenant_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rule_evaluations")),
    )
    op.create_index(op.f("ix_rule_evaluations_tenant_alert_type"), "rule_evaluations", ["tenant", "alert_type"])


def downgrade() -> None:
    op.drop_index(op.f("ix_rule_evaluations_tenant_alert_type"), table_name="rule_evaluations")
    op.drop_table("rule_evaluations")
