"""Graph-backed tenants: registering one, and fetching its new snapshot before each pass.

The Graph read runs with no database transaction open (under throttling it can
take minutes); the snapshot is then stored in the app database with its
quarantined records, in one short transaction, so a run can be replayed from
it like an imported one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlencode

from sqlalchemy import Connection, Engine, insert, select

from mspbyte_dagster.lib.adapters.microsoft365.client import GraphConnection
from mspbyte_dagster.lib.adapters.microsoft365.reader import QuarantinedRecord, read_tenant
from mspbyte_dagster.lib.adapters.snapshot_files import Snapshot, encode_snapshot
from mspbyte_dagster.lib.errors import InputError
from mspbyte_dagster.lib.model import MICROSOFT365, TENANT_KEY_PATTERN, azure_tenant_guid, is_tenant_key
from mspbyte_dagster.lib.store import tenants as tenant_store
from mspbyte_dagster.lib.store.schema import data_sources, quarantined_records, tenants

GRAPH_MODE = "graph"


@dataclass(frozen=True)
class GraphSource:
    """A tenant's Microsoft 365 data source when it is read from Graph."""

    tenant: str
    name: str
    data_source_id: int
    azure_tenant_id: str


@dataclass(frozen=True)
class GraphTenant:
    """A tenant registered for Graph, with the URL its administrator opens to consent to the MSP's app."""

    tenant: str
    name: str
    azure_tenant_id: str
    consent_url: str

    def as_json(self) -> dict:
        return {
            "tenant": self.tenant,
            "name": self.name,
            "azure_tenant_id": self.azure_tenant_id,
            "mode": GRAPH_MODE,
            "consent_url": self.consent_url,
        }


def consent_url(authority_host: str, azure_tenant_id: str, client_id: str, redirect_uri: str | None = None) -> str:
    """Without `redirect_uri` Entra refuses the consent (AADSTS500113) unless the app registration has one."""
    query = {"client_id": client_id} | ({"redirect_uri": redirect_uri} if redirect_uri else {})
    return f"{authority_host.rstrip('/')}/{azure_tenant_id}/adminconsent?{urlencode(query)}"


def add_graph_tenant(
    engine: Engine,
    tenant: str,
    name: str,
    azure_tenant_id: str,
    *,
    client_id: str,
    authority_host: str,
    consent_redirect_uri: str | None = None,
) -> GraphTenant:
    """Register a tenant read from Graph (or switch an imported one to Graph)."""
    if not is_tenant_key(tenant):
        raise InputError(f"tenant key {tenant!r} does not match {TENANT_KEY_PATTERN}")
    if not name.strip():
        raise InputError("the tenant's name must not be empty")
    azure = azure_tenant_guid(azure_tenant_id)
    with engine.begin() as conn:
        tenant_store.check_azure_binding(conn, tenant, azure, "tenants add", exclusive=True)
        tenant_store.upsert_tenant(conn, tenant, name, azure)
        tenant_store.ensure_m365_source(conn, tenant, GRAPH_MODE, azure)
    return GraphTenant(tenant, name, azure, consent_url(authority_host, azure, client_id, consent_redirect_uri))


def graph_source(conn: Connection, tenant: str) -> GraphSource | None:
    """The tenant's Microsoft 365 data source when its mode is "graph"; None for a files-mode tenant."""
    row = conn.execute(
        select(tenants.c.name, data_sources.c.id, data_sources.c.azure_tenant_id)
        .join(data_sources, data_sources.c.tenant == tenants.c.tenant)
        .where(
            tenants.c.tenant == tenant,
            data_sources.c.integration == MICROSOFT365,
            data_sources.c.mode == GRAPH_MODE,
        )
    ).first()
    return GraphSource(tenant, row.name, row.id, row.azure_tenant_id) if row else None


def refresh_graph_snapshot(
    engine: Engine,
    tenant: str,
    *,
    connect: Callable[[], GraphConnection],
    captured_at: datetime | None = None,
    batch_members: bool = True,
) -> dict | None:
    """Read a graph-mode tenant and make the result its current snapshot; returns the figures of the read.

    None for a files-mode tenant (its current snapshot is the last imported one).
    `captured_at` defaults to the start of the read.
    """
    with engine.connect() as conn:
        source = graph_source(conn, tenant)
    if source is None:
        return None
    started = time.perf_counter()
    captured = (captured_at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    client = connect().tenant(tenant, source.azure_tenant_id)
    read = read_tenant(client, batch_members=batch_members)
    document = {"id": tenant, "name": source.name, "azureTenantId": source.azure_tenant_id, "capturedAt": captured}
    if read.sources:
        document["sources"] = read.sources
    snapshot = encode_snapshot(f"Microsoft Graph (tenant {source.azure_tenant_id})", document, read.files)
    _store_snapshot(engine, source, snapshot, read.quarantined)
    figures = {f"graph_{name}": value for name, value in client.stats.as_json().items()}
    return figures | {
        "graph_tokens": client.tokens.fetched,
        "graph_seconds": round(time.perf_counter() - started, 2),
        "quarantined_records": len(read.quarantined),
    }


def _store_snapshot(
    engine: Engine, source: GraphSource, snapshot: Snapshot, quarantined: list[QuarantinedRecord]
) -> None:
    """Store the snapshot with its quarantine in one transaction: both or neither."""
    with engine.begin() as conn:
        snapshot_id, _seq = tenant_store.record_snapshot(conn, snapshot, source.data_source_id)
        if quarantined:
            now = datetime.now(UTC)
            conn.execute(
                insert(quarantined_records),
                [
                    {
                        "tenant": source.tenant,
                        "data_source_id": source.data_source_id,
                        "snapshot_id": snapshot_id,
                        "source_file": record.source_file,
                        "record_index": record.record_index,
                        "reason": record.reason,
                        "raw": record.raw,
                        "quarantined_at": now,
                    }
                    for record in quarantined
                ],
            )
