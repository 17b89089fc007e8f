"""Offboarding: a customer who leaves takes every row of theirs along, in one transaction.

Every table with a `tenant` column is emptied of the tenant (children first), under the tenant's
lease so no pass runs meanwhile. The figures its passes and alerts added to the Prometheus counters
stay (lib/store/metric_totals.py): counters never go down, and they name no tenant.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import Connection, Engine, delete, func, select

from mspbyte_dagster.lib.store import metric_totals
from mspbyte_dagster.lib.store.lease import tenant_lease
from mspbyte_dagster.lib.store.schema import alert_events, metadata, pipeline_ledger
from mspbyte_dagster.lib.store.tenants import require_tenant

# Children before parents, so foreign keys hold at every statement.
TENANT_TABLES = tuple(table for table in reversed(metadata.sorted_tables) if "tenant" in table.c)


def tenant_rows(conn: Connection, tenant: str) -> dict[str, int]:
    """Rows of the tenant per table: what `remove_tenant` deletes."""
    require_tenant(conn, tenant)
    return {
        table.name: conn.execute(select(func.count()).select_from(table).where(table.c.tenant == tenant)).scalar_one()
        for table in TENANT_TABLES
    }


def remove_tenant(
    engine: Engine, tenant: str, forget_elsewhere: Callable[[], None] | None = None, lease_wait_seconds: float = 10.0
) -> dict[str, int]:
    """Delete everything of the tenant; returns the rows deleted per table. Raises LeaseUnavailable
    while one of its passes runs (nothing is deleted then). `forget_elsewhere` (flag overrides kept in
    Redis) runs under the lease before the transaction: if it fails, nothing is deleted."""
    with tenant_lease(engine, tenant, lease_wait_seconds, timedelta(minutes=10)):
        if forget_elsewhere is not None:
            forget_elsewhere()
        with engine.begin() as conn:
            deleted = _delete_rows(conn, tenant)
    return deleted


def _delete_rows(conn: Connection, tenant: str) -> dict[str, int]:
    deleted = tenant_rows(conn, tenant)
    metric_totals.retire(conn, "ledger", pipeline_ledger.c.tenant == tenant)
    metric_totals.retire(conn, "alert_events", alert_events.c.tenant == tenant)
    for table in TENANT_TABLES:
        conn.execute(delete(table).where(table.c.tenant == tenant))
    return deleted
