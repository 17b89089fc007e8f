"""Tenants, their data sources and their snapshots in the app database."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy import Connection, func, insert, select, update

from mspbyte_dagster.lib.errors import InputError
from mspbyte_dagster.lib.model import M365_DATA_SOURCE, MICROSOFT365
from mspbyte_dagster.lib.store.schema import data_sources, snapshots, tenant_changes, tenants
from mspbyte_dagster.lib.store.snapshot_store import store_files


class StorableSnapshot(Protocol):
    """What the store keeps of a validated snapshot (lib/adapters/snapshot_files.Snapshot is one)."""

    key: str
    origin: str
    captured_at: datetime
    sources: dict
    raw: dict[str, bytes]

    def counts(self) -> dict[str, int]: ...


class UnknownTenantError(LookupError):
    def __init__(self, tenant: str):
        super().__init__(
            f"unknown tenant {tenant!r}: `mspbyte tenants list` shows the registered ones (a partition added "
            "in the Dagster UI is no tenant: register it with `mspbyte tenants import` or `mspbyte tenants add`)"
        )
        self.tenant = tenant


@dataclass(frozen=True)
class CurrentSnapshot:
    tenant: str
    data_source_id: int
    snapshot_id: int
    seq: int
    captured_at: datetime


def now() -> datetime:
    return datetime.now(UTC)


def upsert_tenant(conn: Connection, tenant: str, name: str, azure_tenant_id: str | None) -> None:
    exists = conn.execute(select(tenants.c.tenant).where(tenants.c.tenant == tenant)).first()
    if exists:
        conn.execute(
            update(tenants).where(tenants.c.tenant == tenant).values(name=name, azure_tenant_id=azure_tenant_id)
        )
    else:
        conn.execute(
            insert(tenants).values(tenant=tenant, name=name, azure_tenant_id=azure_tenant_id, created_at=now())
        )


def ensure_m365_source(conn: Connection, tenant: str, mode: str, azure_tenant_id: str | None) -> int:
    """The tenant's one Microsoft 365 data source (`m365`), created on first use."""
    return ensure_source(conn, tenant, MICROSOFT365, M365_DATA_SOURCE, mode, azure_tenant_id=azure_tenant_id)


def ensure_source(
    conn: Connection,
    tenant: str,
    integration: str,
    source_id: str,
    mode: str,
    params: dict | None = None,
    azure_tenant_id: str | None = None,
) -> int:
    """The tenant's one data source of an integration, created on first use, its mode and binding updated."""
    row = conn.execute(
        select(data_sources.c.id).where(data_sources.c.tenant == tenant, data_sources.c.integration == integration)
    ).first()
    values = {"mode": mode, "azure_tenant_id": azure_tenant_id} | ({"params": params} if params else {})
    if row:
        conn.execute(
            update(data_sources).where(data_sources.c.tenant == tenant, data_sources.c.id == row.id).values(values)
        )
        return row.id
    return conn.execute(
        insert(data_sources)
        .values(tenant=tenant, source_id=source_id, integration=integration, created_at=now(), **values)
        .returning(data_sources.c.id)
    ).scalar_one()


def source_params(conn: Connection, tenant: str, integration: str) -> dict | None:
    """The parameters of the tenant's data source of an integration (None: it has none)."""
    c = data_sources.c
    row = conn.execute(select(c.params).where(c.tenant == tenant, c.integration == integration)).first()
    return None if row is None else (row.params or {})


def next_snapshot_seq(conn: Connection, tenant: str) -> int:
    latest = conn.execute(select(func.max(snapshots.c.seq)).where(snapshots.c.tenant == tenant)).scalar()
    return (latest or 0) + 1


def record_snapshot(conn: Connection, snapshot: StorableSnapshot, data_source_id: int) -> tuple[int, int]:
    """Store a snapshot's files as validated and make it the data source's current one: (id, seq)."""
    seq = next_snapshot_seq(conn, snapshot.key)
    snapshot_id = conn.execute(
        insert(snapshots)
        .values(
            tenant=snapshot.key,
            data_source_id=data_source_id,
            seq=seq,
            captured_at=snapshot.captured_at,
            origin=snapshot.origin,
            imported_at=now(),
            counts=snapshot.counts(),
            sources=snapshot.sources,
        )
        .returning(snapshots.c.id)
    ).scalar_one()
    conn.execute(
        update(data_sources)
        .where(data_sources.c.tenant == snapshot.key, data_sources.c.id == data_source_id)
        .values(current_snapshot_id=snapshot_id)
    )
    store_files(conn, snapshot.key, snapshot_id, snapshot.raw)
    return snapshot_id, seq


def current_snapshot(conn: Connection, tenant: str, integration: str = MICROSOFT365) -> CurrentSnapshot | None:
    row = conn.execute(
        select(
            data_sources.c.id,
            snapshots.c.id.label("snapshot_id"),
            snapshots.c.seq,
            snapshots.c.captured_at,
        )
        .join(snapshots, (snapshots.c.id == data_sources.c.current_snapshot_id) & (snapshots.c.tenant == tenant))
        .where(data_sources.c.tenant == tenant, data_sources.c.integration == integration)
    ).first()
    if row is None:
        return None
    return CurrentSnapshot(tenant, row.id, row.snapshot_id, row.seq, row.captured_at)


def tenant_keys(conn: Connection) -> list[str]:
    """Every registered tenant, in registration order (the partition order)."""
    return list(conn.execute(select(tenants.c.tenant).order_by(tenants.c.created_at, tenants.c.tenant)).scalars())


def azure_tenant_id(conn: Connection, tenant: str) -> str | None:
    """The Azure tenant a registered tenant is bound to (None: unknown tenant, or not known yet)."""
    return conn.execute(select(tenants.c.azure_tenant_id).where(tenants.c.tenant == tenant)).scalar()


class AzureTenantMismatch(InputError):
    """Data of one customer's Azure tenant offered under another tenant's key."""


def check_azure_binding(conn: Connection, tenant: str, azure_id: str, origin: str, exclusive: bool = False) -> None:
    """A tenant's Azure tenant is fixed once known (and, `exclusive`, is no other tenant's): refuse the rest."""
    known = azure_tenant_id(conn, tenant)
    if known is not None and known.lower() != azure_id.lower():
        raise AzureTenantMismatch(
            f"{origin}: tenant {tenant!r} is Azure tenant {known}, not {azure_id}: refused, nothing was changed "
            f"(a customer that really moved: `mspbyte tenants set-azure-id {tenant} {azure_id} --reason ...`)"
        )
    if not exclusive:
        return
    other = conn.execute(
        select(tenants.c.tenant).where(
            func.lower(tenants.c.azure_tenant_id) == azure_id.lower(), tenants.c.tenant != tenant
        )
    ).scalar()
    if other is not None:
        raise AzureTenantMismatch(
            f"{origin}: Azure tenant {azure_id} is already tenant {other!r}, not {tenant!r}: refused"
        )


def set_azure_tenant_id(conn: Connection, tenant: str, new_id: str, reason: str) -> str | None:
    """Move a tenant to another Azure tenant (a customer that really moved), kept with the reason;
    returns the old id."""
    require_tenant(conn, tenant)
    old = azure_tenant_id(conn, tenant)
    conn.execute(
        insert(tenant_changes).values(
            tenant=tenant,
            at=now(),
            change="azure_tenant_id",
            details={"from": old, "to": new_id},
            reason=reason,
        )
    )
    conn.execute(update(tenants).where(tenants.c.tenant == tenant).values(azure_tenant_id=new_id))
    conn.execute(
        update(data_sources)
        .where(data_sources.c.tenant == tenant, data_sources.c.integration == MICROSOFT365)
        .values(azure_tenant_id=new_id)
    )
    return old


def require_tenant(conn: Connection, tenant: str) -> None:
    if conn.execute(select(tenants.c.tenant).where(tenants.c.tenant == tenant)).first() is None:
        raise UnknownTenantError(tenant)


def list_tenants(conn: Connection) -> list[dict]:
    """Tenants with their data sources and current snapshot, as `tenants list --json` prints them."""
    sources: dict[str, list[dict]] = {}
    rows = conn.execute(
        select(data_sources, snapshots.c.seq, snapshots.c.captured_at)
        .outerjoin(snapshots, snapshots.c.id == data_sources.c.current_snapshot_id)
        .order_by(data_sources.c.id)
    )
    for row in rows:
        sources.setdefault(row.tenant, []).append(
            {
                "id": row.source_id,
                "integration": row.integration,
                "mode": row.mode,
                "current_snapshot": row.seq,
                "captured_at": row.captured_at.isoformat().replace("+00:00", "Z") if row.captured_at else None,
            }
        )
    result = []
    for row in conn.execute(select(tenants).order_by(tenants.c.created_at, tenants.c.tenant)):
        own = sources.get(row.tenant, [])
        m365 = next((s for s in own if s["integration"] == MICROSOFT365), {})
        result.append(
            {
                "tenant": row.tenant,
                "name": row.name,
                "azure_tenant_id": row.azure_tenant_id,
                "data_sources": own,
                "current_snapshot": m365.get("current_snapshot"),
                "captured_at": m365.get("captured_at"),
            }
        )
    return result


THRESHOLDS = {"stale_days": (1, 3650), "unused_license_threshold": (1, 1_000_000), "endpoint_stale_days": (1, 3650)}


def thresholds(conn: Connection, tenant: str) -> dict[str, int]:
    require_tenant(conn, tenant)
    row = conn.execute(select(*(tenants.c[name] for name in THRESHOLDS)).where(tenants.c.tenant == tenant)).one()
    return dict(row._mapping)


def set_threshold(conn: Connection, tenant: str, name: str, value: int) -> dict[str, int]:
    """Per-tenant rule thresholds, with the RULES defaults until changed."""
    if name not in THRESHOLDS:
        raise InputError(f"unknown threshold {name!r}: use one of {', '.join(THRESHOLDS)}")
    low, high = THRESHOLDS[name]
    if not low <= value <= high:
        raise InputError(f"{name}={value} is out of range ({low}..{high})")
    require_tenant(conn, tenant)
    conn.execute(update(tenants).where(tenants.c.tenant == tenant).values({name: value}))
    return thresholds(conn, tenant)


def mark_processed(conn: Connection, tenant: str, data_source_id: int, snapshot_id: int) -> None:
    """The entities now reflect this snapshot: later stages describe their inputs from it."""
    conn.execute(
        update(data_sources)
        .where(data_sources.c.tenant == tenant, data_sources.c.id == data_source_id)
        .values(processed_snapshot_id=snapshot_id)
    )
