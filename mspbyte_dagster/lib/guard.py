"""The empty-sync guard: a broken or partial sync must not wipe a tenant's picture."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine

from mspbyte_dagster.lib.adapters.snapshot_files import Snapshot
from mspbyte_dagster.lib.errors import InputError
from mspbyte_dagster.lib.snapshots import load_snapshot
from mspbyte_dagster.lib.store import ledger
from mspbyte_dagster.lib.store import tenants as tenant_store

MIN_USERS_FOR_DROP_CHECK = 20


def guard_counts(snapshot: Snapshot) -> dict:
    """The figures the guard compares; None where the file was not read (nothing is deleted then)."""
    return {
        "users": len(snapshot.files["users"]) if "users" in snapshot.files else None,
        "enabled_policies": snapshot.enabled_policies() if "conditional_access_policies" in snapshot.files else None,
    }


def hold_reason(baseline: dict | None, current: dict) -> str | None:
    """Why the pass must be held (RULES "Empty-sync guard"), or None to let it through."""
    if not baseline:
        return None
    before, now = baseline.get("users"), current["users"]
    if before is not None and now is not None and before >= MIN_USERS_FOR_DROP_CHECK and now < before / 2:
        return f"users fell from {before} to {now} (below half of the previous successful sync)"
    before, now = baseline.get("enabled_policies"), current["enabled_policies"]
    if before and now == 0:
        return f"enabled Conditional Access policies fell from {before} to 0"
    return None


def accept_drop(engine: Engine, tenant: str, reason: str) -> dict:
    """An operator's word that the drop is real: the current snapshot becomes the guard's baseline."""
    with engine.begin() as conn:
        tenant_store.require_tenant(conn, tenant)
        current = tenant_store.current_snapshot(conn, tenant)
        if current is None:
            raise InputError(f"tenant {tenant!r} has no snapshot: there is no drop to accept")
        counts = guard_counts(load_snapshot(conn, tenant, current.snapshot_id))
        ledger.record_accepted_drop(conn, tenant, reason, current.snapshot_id, counts, datetime.now(UTC))
    return counts
