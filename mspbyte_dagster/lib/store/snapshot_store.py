"""Tenant snapshots in the app database: each file compressed, so any machine can run or replay any pass."""

from __future__ import annotations

import hashlib
import zlib

from sqlalchemy import Connection, insert, select

from mspbyte_dagster.lib.store.schema import snapshot_files, snapshots

COMPRESSION_LEVEL = 6


class SnapshotUnreadable(LookupError):
    """A recorded snapshot whose files were lost (a folder gone before migration 0006 moved it in)."""


def file_rows(tenant: str, snapshot_id: int, raw: dict[str, bytes]) -> list[dict]:
    return [
        {
            "snapshot_id": snapshot_id,
            "tenant": tenant,
            "name": stem,
            "content": zlib.compress(content, COMPRESSION_LEVEL),
            "size": len(content),
            "sha256": hashlib.sha256(content).hexdigest(),
        }
        for stem, content in raw.items()
    ]


def store_files(conn: Connection, tenant: str, snapshot_id: int, raw: dict[str, bytes]) -> None:
    """The snapshot's files, byte for byte as validated, in the caller's transaction."""
    conn.execute(insert(snapshot_files), file_rows(tenant, snapshot_id, raw))


def load_files(conn: Connection, tenant: str, snapshot_id: int) -> tuple[str, dict[str, bytes]]:
    """A stored snapshot's files as they were validated: (where it comes from, file stem -> bytes)."""
    c = snapshots.c
    row = conn.execute(select(c.seq, c.unreadable).where(c.tenant == tenant, c.id == snapshot_id)).one()
    origin = f"tenant {tenant} snapshot {row.seq} (app database)"
    if row.unreadable:
        raise SnapshotUnreadable(f"{origin} is unreadable: {row.unreadable}")
    files = conn.execute(
        select(snapshot_files.c.name, snapshot_files.c.content).where(
            snapshot_files.c.tenant == tenant, snapshot_files.c.snapshot_id == snapshot_id
        )
    )
    return origin, {name: zlib.decompress(content) for name, content in files}
