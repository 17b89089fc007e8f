"""Alerts without a foreign key: a tenant's first pass writes them by the thousand.

PostgreSQL checks a foreign key row by row. Copying a 10,000-user tenant's
4,740 new alerts took 78-106 ms with their tenant checked, 40-60 ms without
(docs/benchmarks.md, 2026-12-01, eighth session). Alerts are inserted only by a
pass of their tenant, which holds the tenant's lease and has read its row;
nothing relied on the cascade: offboarding deletes every tenant table itself.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-01
"""

from mspbyte_dagster.lib.store.foreign_keys import ForeignKeys, drop_foreign_keys, restore_foreign_keys

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

FOREIGN_KEYS: ForeignKeys = {
    "alerts": {"fk_alerts_tenant_tenants": ("tenants", ["tenant"], ["tenant"])},
}


def upgrade() -> None:
    drop_foreign_keys(FOREIGN_KEYS)


def downgrade() -> None:
    restore_foreign_keys(FOREIGN_KEYS)
