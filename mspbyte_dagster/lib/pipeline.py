"""One tenant's pass: the selected stages in order."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine

from mspbyte_dagster.lib.adapters.snapshot_files import Snapshot, read_snapshot
from mspbyte_dagster.lib.store import tenants as tenant_store

STAGES = ("m365_snapshot",)


class NoSnapshotError(LookupError):
    def __init__(self, tenant: str):
        super().__init__(f"tenant {tenant!r} has no snapshot yet: import one with `mspbyte tenants import DIR`")


@dataclass
class TenantPass:
    """What one pass did for one tenant: per stage, the figures shown in the UI."""

    tenant: str
    stages: dict[str, dict] = field(default_factory=dict)


def snapshot_stage(engine: Engine, tenant: str) -> tuple[Snapshot, dict]:
    """Read the tenant's current snapshot from the store, with its counts per file."""
    with engine.connect() as conn:
        tenant_store.require_tenant(conn, tenant)
        current = tenant_store.current_snapshot(conn, tenant)
    if current is None:
        raise NoSnapshotError(tenant)
    snapshot = read_snapshot(Path(current.path))
    figures = {
        "snapshot": current.seq,
        "captured_at": snapshot.tenant["capturedAt"],
        "counts": snapshot.counts(),
        "missing_files": snapshot.missing(),
        "incomplete_sources": snapshot.incomplete(),
    }
    return snapshot, figures


def run_tenant_pass(engine: Engine, tenant: str, stages: tuple[str, ...] = STAGES) -> TenantPass:
    result = TenantPass(tenant)
    if "m365_snapshot" in stages:
        _snapshot, result.stages["m365_snapshot"] = snapshot_stage(engine, tenant)
    return result
