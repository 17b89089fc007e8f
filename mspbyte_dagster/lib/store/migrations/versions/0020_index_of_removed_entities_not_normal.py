"""An index of the removed entities whose state is not yet normal: the alerts stage resets them each pass.

Finding them took a scan of every entity of the tenant: 8-11 ms at 10,000 users,
on every pass, for rows that are almost always none (docs/benchmarks.md,
2026-12-01, eighth session). A partial index holds only those rows.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

NAME = "ix_entities_removed_not_normal"
REMOVED_NOT_NORMAL = sa.text("deleted_at IS NOT NULL AND state <> 'normal'")


def upgrade() -> None:
    op.create_index(NAME, "entities", ["tenant"], postgresql_where=REMOVED_NOT_NORMAL, sqlite_where=REMOVED_NOT_NORMAL)


def downgrade() -> None:
    op.drop_index(NAME, "entities")
