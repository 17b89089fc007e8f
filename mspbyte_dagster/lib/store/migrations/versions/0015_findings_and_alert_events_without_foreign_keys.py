"""Findings and alert events without foreign keys: a pass writes them by the thousand.

PostgreSQL checks a foreign key row by row. On a 10,000-user tenant's first
pass, checking the tenant and data source of each finding, and the tenant and
alert of each alert event, took about 80 ms of its 0.9 s (docs/benchmarks.md,
2026-12-01, fifth session). Findings are rewritten whole by every pass; an
event is written in the pass that reads or inserts its alert. Nothing relied on
their cascades: offboarding deletes every tenant table itself, and alerts are
never deleted otherwise. Alerts keep theirs.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01
"""

from mspbyte_dagster.lib.store.foreign_keys import ForeignKeys, drop_foreign_keys, restore_foreign_keys

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

FOREIGN_KEYS: ForeignKeys = {
    "findings": {
        "fk_findings_tenant_tenants": ("tenants", ["tenant"], ["tenant"]),
        "fk_findings_data_source_id_data_sources": ("data_sources", ["data_source_id"], ["id"]),
    },
    "alert_events": {
        "fk_alert_events_tenant_tenants": ("tenants", ["tenant"], ["tenant"]),
        "fk_alert_events_alert_id_alerts": ("alerts", ["alert_id"], ["id"]),
    },
}


def upgrade() -> None:
    drop_foreign_keys(FOREIGN_KEYS)


def downgrade() -> None:
    restore_foreign_keys(FOREIGN_KEYS)
