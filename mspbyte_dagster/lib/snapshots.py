"""Tenant snapshots as a pass reads them: the stored files, validated again on the way out, so what
a pass reads is what the contract allows whatever wrote the database."""

from __future__ import annotations

from sqlalchemy import Connection

from mspbyte_dagster.lib.adapters.snapshot_files import Snapshot, parse_snapshot
from mspbyte_dagster.lib.store.snapshot_store import load_files


def load_snapshot(conn: Connection, tenant: str, snapshot_id: int) -> Snapshot:
    origin, raw = load_files(conn, tenant, snapshot_id)
    return parse_snapshot(raw, origin)
