"""Refreshing a tenant's Sophos data source from Sophos Central (mode "api", `tenants add-source ...
sophos --param sophosTenantId=ID`): read its customer, store the snapshot, before the pass's transaction."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Engine, select

from mspbyte_dagster.lib.adapters.snapshot_files import encode_snapshot
from mspbyte_dagster.lib.adapters.sophos.client import SophosConnection
from mspbyte_dagster.lib.adapters.sophos.files import INTEGRATION
from mspbyte_dagster.lib.adapters.sophos.reader import read_customer
from mspbyte_dagster.lib.store import tenants as tenant_store
from mspbyte_dagster.lib.store.schema import data_sources, tenants

API_MODE = "api"


def refresh_sophos_snapshot(engine: Engine, tenant: str, *, connect: Callable[[], SophosConnection]) -> dict | None:
    """The tenant's Sophos customer read into a new current snapshot; its figures. None when the tenant has
    no Sophos data source read from the API (an imported one keeps its last folder)."""
    with engine.connect() as conn:
        row = conn.execute(
            select(tenants.c.name, data_sources.c.id, data_sources.c.params)
            .join(data_sources, data_sources.c.tenant == tenants.c.tenant)
            .where(
                tenants.c.tenant == tenant, data_sources.c.integration == INTEGRATION, data_sources.c.mode == API_MODE
            )
        ).first()
    if row is None:
        return None
    started = time.perf_counter()
    customer = row.params["sophosTenantId"]
    read = read_customer(connect(), customer, key=tenant, name=row.name, captured_at=datetime.now(UTC))
    files = dict(read.files)
    snapshot = encode_snapshot(f"Sophos Central (customer {customer})", files.pop("tenant"), files)
    with engine.begin() as conn:
        tenant_store.record_snapshot(conn, snapshot, row.id)
    return {f"sophos_{name}": value for name, value in read.stats.as_json().items()} | {
        "sophos_seconds": round(time.perf_counter() - started, 2)
    }
