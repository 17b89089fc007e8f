"""The empty-sync guard: a broken or partial sync must not wipe a tenant's picture."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine

from mspbyte_dagster.lib.errors import InputError
from mspbyte_dagster.lib.snapshots import load_snapshot
from mspbyte_dagster.lib.store import ledger
from mspbyte_dagster.lib.store import tenants as tenant_store


def accept_drop(engine: Engine, tenant: str, reason: str) -> dict:
    """An operator's word that the drop is real: the current snapshot becomes the guard's baseline."""
    with engine.begin() as conn:
        tenant_store.require_tenant(conn, tenant)
        current = tenant_store.current_snapshot(conn, tenant)
        if current is None:
            raise InputError(f"tenant {tenant!r} has no snapshot: there is no drop to accept")
        snapshot = load_snapshot(conn, tenant, current.snapshot_id)
        counts = snapshot.integration.guard_counts(snapshot)
        ledger.record_accepted_drop(conn, tenant, reason, current.snapshot_id, counts, datetime.now(UTC))
    return counts
