"""Entities without foreign keys: a tenant's first pass writes them by the thousand.

PostgreSQL checks a foreign key row by row. Writing a 10,000-user tenant's
entities with their tenant and data source checked took about 340 ms, 200 ms
without (docs/benchmarks.md, 2026-12-01, sixth session). Entities are written
only by a pass of their tenant, which holds the tenant's lease and has read its
row; nothing relied on the cascades: offboarding deletes every tenant table
itself, and data sources are never deleted otherwise.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-01
"""

from mspbyte_dagster.lib.store.foreign_keys import ForeignKeys, drop_foreign_keys, restore_foreign_keys

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

FOREIGN_KEYS: ForeignKeys = {
    "entities": {
        "fk_entities_tenant_tenants": ("tenants", ["tenant"], ["tenant"]),
        "fk_entities_data_source_id_data_sources": ("data_sources", ["data_source_id"], ["id"]),
    },
}


def upgrade() -> None:
    drop_foreign_keys(FOREIGN_KEYS)


def downgrade() -> None:
    restore_foreign_keys(FOREIGN_KEYS)
