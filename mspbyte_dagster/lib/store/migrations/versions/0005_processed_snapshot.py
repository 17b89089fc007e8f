"""The snapshot the entities were last processed from, so a later stage run alone describes
the data it reads (inputs read, capturedAt) rather than a newer snapshot not yet processed.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("data_sources") as batch:
        batch.add_column(sa.Column("processed_snapshot_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite")))


def downgrade() -> None:
    with op.batch_alter_table("data_sources") as batch:
        batch.drop_column("processed_snapshot_id")
