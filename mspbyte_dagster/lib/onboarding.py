"""Registering tenants: from snapshot folders (import) today, from Graph later."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, Engine

from mspbyte_dagster.lib.adapters.base import Integration
from mspbyte_dagster.lib.adapters.registry import DEFAULT
from mspbyte_dagster.lib.adapters.snapshot_files import Snapshot, SnapshotError, read_snapshot
from mspbyte_dagster.lib.errors import InputError
from mspbyte_dagster.lib.store import tenants as tenant_store


@dataclass(frozen=True)
class ImportedSnapshot:
    tenant: str
    name: str
    seq: int
    snapshot_id: int
    origin: str
    counts: dict[str, int]

    def as_json(self) -> dict:
        return {
            "tenant": self.tenant,
            "name": self.name,
            "snapshot": self.seq,
            "origin": self.origin,
            "counts": self.counts,
        }


def read_all(folders: list[Path]) -> list[Snapshot]:
    """Validate every folder before anything is written: one bad folder stops the whole import."""
    snapshots, errors = [], []
    for folder in folders:
        try:
            snapshots.append(read_snapshot(folder))
        except SnapshotError as error:
            errors.append(error)
    if errors:
        raise ImportRejected(errors)
    keys = [(s.key, s.integration.name) for s in snapshots]
    doubles = sorted({f"{key} ({name})" for key, name in keys if keys.count((key, name)) > 1})
    if doubles:
        raise InputError(f"tenant(s) {', '.join(doubles)} appear in more than one folder of this import")
    # a tenant's Microsoft 365 folder first: it registers the tenant the others join
    return sorted(snapshots, key=lambda s: s.integration is not DEFAULT)


class ImportRejected(InputError):
    def __init__(self, errors: list[SnapshotError]):
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors) + "\nnothing was imported")


def import_snapshot(conn: Connection, snapshot: Snapshot) -> ImportedSnapshot:
    """Store the snapshot's validated bytes and make it the current snapshot of the tenant's data source
    of its integration (the caller's transaction). A Microsoft 365 snapshot registers its tenant; another
    integration's joins a registered one."""
    integration = snapshot.integration
    if integration is DEFAULT:
        azure_id = snapshot.tenant["azureTenantId"]
        tenant_store.check_azure_binding(conn, snapshot.key, azure_id, snapshot.origin)
        tenant_store.upsert_tenant(conn, snapshot.key, snapshot.tenant["name"], azure_id)
        source_id = tenant_store.ensure_m365_source(conn, snapshot.key, "files", azure_id)
    else:
        source_id = _joined_source(conn, snapshot)
    snapshot_id, seq = tenant_store.record_snapshot(conn, snapshot, source_id)
    return ImportedSnapshot(snapshot.key, snapshot.tenant["name"], seq, snapshot_id, snapshot.origin, snapshot.counts())


def _joined_source(conn: Connection, snapshot: Snapshot) -> int:
    """The data source of a registered tenant that a non-Microsoft 365 snapshot belongs to; its binding
    (the customer's id in the source system) is fixed once known."""
    integration, origin = snapshot.integration, snapshot.origin
    try:
        tenant_store.require_tenant(conn, snapshot.key)
    except tenant_store.UnknownTenantError:
        raise InputError(
            f"{origin}: tenant {snapshot.key!r} is not registered: a {integration.name} snapshot joins a tenant "
            "registered by a Microsoft 365 import (`mspbyte tenants import`) or `mspbyte tenants add`"
        ) from None
    return bind_source(conn, snapshot.key, integration, snapshot.tenant.get(integration.binding), "files", origin)


def bind_source(
    conn: Connection, tenant: str, integration: Integration, customer: str | None, mode: str, origin: str
) -> int:
    """The tenant's data source of an integration, bound to its customer in the source system (the value
    of the integration's binding): fixed once known, so one customer's data never lands under another tenant."""
    params = {integration.binding: customer} if integration.binding and customer else {}
    known = tenant_store.source_params(conn, tenant, integration.name) or {}
    for name, value in params.items():
        if known.get(name) not in (None, value):
            raise InputError(
                f"{origin}: tenant {tenant!r}'s {integration.name} data source is {name} {known[name]}, "
                f"not {value}: refused, nothing was changed"
            )
    return tenant_store.ensure_source(conn, tenant, integration.name, integration.source_id, mode, params)


def import_folders(engine: Engine, folders: list[Path]) -> list[ImportedSnapshot]:
    """One import, one transaction: every folder or none, of exactly the bytes validated."""
    snapshots = read_all(folders)
    with engine.begin() as conn:
        return [import_snapshot(conn, snapshot) for snapshot in snapshots]
