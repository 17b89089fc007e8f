"""Entity processing: upsert by key, change detection, and the sweep of what disappeared.

An entity is a Graph object with the sub-resources that describe it (a group's
direct members, a role's assignments, a user's MFA registration, the tenant's
Security Defaults). A sub-resource whose file was not read whole keeps its
previous value, so a partial sync never loses what was known.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import orjson
from sqlalchemy import Connection, bindparam, select, update

from mspbyte_dagster.lib.adapters.base import Integration
from mspbyte_dagster.lib.adapters.snapshot_files import Snapshot
from mspbyte_dagster.lib.store.bulk import bulk_insert
from mspbyte_dagster.lib.store.schema import entities


@dataclass(frozen=True)
class Record:
    entity_type: str
    external_id: str
    display_name: str | None
    data: dict


def content_hash(data: dict, leave_out: tuple[str, ...] = ()) -> str:
    """orjson, sorted keys: the standard library's encoder was most of the entities stage (migration 0017)."""
    kept = {key: value for key, value in data.items() if key not in leave_out}
    return hashlib.sha256(orjson.dumps(kept, option=orjson.OPT_SORT_KEYS)).hexdigest()


def entity_hashes(
    integration: Integration, entity_type: str, data: dict, hash_of: Callable[..., str] = content_hash
) -> tuple[str, str]:
    """(data_hash, seen_hash) of a record: without its integration's volatile fields (a change there is an
    update), and whole (a change only refreshes the row). `hash_of`: migration 0017 downgrades with it."""
    source = integration.entity_sources.get(entity_type)
    volatile = source.volatile if source else ()
    data_hash = hash_of(data, volatile)
    return data_hash, hash_of(data) if volatile else data_hash


def snapshot_records(snapshot: Snapshot) -> dict[str, list[Record]]:
    """The entities a snapshot holds, per type whose file is present (the integration declares which)."""
    integration = snapshot.integration
    records: dict[str, list[Record]] = {}
    for entity_type, source in integration.entity_sources.items():
        if source.file in snapshot.files:
            content = snapshot.files[source.file]
            objects = source.items(content) if source.items else content
            records[entity_type] = [
                Record(entity_type, obj[source.key], obj.get(source.display), obj) for obj in objects
            ]
    tenant = {k: v for k, v in snapshot.tenant.items() if k not in ("capturedAt", "sources")}
    records["tenant"] = [Record("tenant", snapshot.key, snapshot.tenant.get("name"), tenant)]
    for sub in integration.sub_resources:
        if snapshot.is_complete(sub.file) and sub.owner_type in records:
            owned = integration.owners(snapshot, sub.file)
            empty = [] if sub.listed else None
            unread = snapshot.unread(sub.file)
            for record in records[sub.owner_type]:
                if record.external_id not in unread:
                    record.data[sub.field] = owned.get(record.external_id, empty)
    return records


@dataclass
class EntityCounts:
    created: int = 0
    updated: int = 0
    refreshed: int = 0
    unchanged: int = 0
    deleted: int = 0
    restored: int = 0

    def as_json(self) -> dict:
        return dict(self.__dict__)


def _carry_over(
    conn: Connection, tenant: str, data_source_id: int, snapshot: Snapshot, records: dict[str, list[Record]]
) -> None:
    """Keep the stored value of sub-resources whose file was not read whole, or whose owner Graph left unread."""
    for sub in snapshot.integration.sub_resources:
        entity_type, field = sub.owner_type, sub.field
        complete = snapshot.is_complete(sub.file)
        if entity_type not in records or (complete and not snapshot.unread(sub.file)):
            continue
        stored = dict(
            conn.execute(
                select(entities.c.external_id, entities.c.data).where(
                    entities.c.tenant == tenant,
                    entities.c.data_source_id == data_source_id,
                    entities.c.entity_type == entity_type,
                )
            ).all()
        )
        for record in records[entity_type]:
            if field in record.data:
                continue  # read in this snapshot
            if field in stored.get(record.external_id, {}):
                record.data[field] = stored[record.external_id][field]


def process_entities(
    conn: Connection, tenant: str, data_source_id: int, snapshot: Snapshot, snapshot_id: int
) -> EntityCounts:
    """Upsert the snapshot's entities, then soft-delete what a complete file no longer holds."""
    at: datetime = snapshot.captured_at
    records = snapshot_records(snapshot)
    _carry_over(conn, tenant, data_source_id, snapshot, records)
    existing = {
        (row.entity_type, row.external_id): row
        for row in conn.execute(
            select(
                entities.c.id,
                entities.c.entity_type,
                entities.c.external_id,
                entities.c.data_hash,
                entities.c.seen_hash,
                entities.c.deleted_at,
            ).where(entities.c.tenant == tenant, entities.c.data_source_id == data_source_id)
        )
    }
    counts = EntityCounts()
    inserts, updates, seen = [], [], set()
    for entity_type, type_records in records.items():
        for record in type_records:
            key = (entity_type, record.external_id)
            seen.add(key)
            data_hash, seen_hash = entity_hashes(snapshot.integration, entity_type, record.data)
            values = {
                "display_name": record.display_name,
                "data_hash": data_hash,
                "seen_hash": seen_hash,
                "data": record.data,
                "last_seen_at": at,
                "snapshot_id": snapshot_id,
            }
            row = existing.get(key)
            if row is None:
                counts.created += 1
                inserts.append(
                    values
                    | {
                        "tenant": tenant,
                        "data_source_id": data_source_id,
                        "entity_type": entity_type,
                        "external_id": record.external_id,
                        "first_seen_at": at,
                        "updated_at": at,
                    }
                )
                continue
            if row.deleted_at is not None:
                counts.restored += 1
            elif row.data_hash != data_hash:
                counts.updated += 1
            elif row.seen_hash != seen_hash:
                counts.refreshed += 1
                updates.append(values | {"entity_id": row.id, "updated_at": None})
                continue
            else:
                counts.unchanged += 1
                continue
            updates.append(values | {"entity_id": row.id, "updated_at": at})
    _write(conn, tenant, inserts, updates)
    counts.deleted = _sweep(conn, tenant, snapshot, existing, seen, at)
    return counts


WRITTEN = ("display_name", "data_hash", "seen_hash", "data", "last_seen_at", "snapshot_id")


def _bulk_update(conn: Connection, tenant: str, rows: list[dict], columns: tuple[str, ...], **fixed) -> None:
    """One executemany UPDATE by id (bind names differ from column names, as SQLAlchemy requires)."""
    if not rows:
        return
    statement = (
        update(entities)
        .where(entities.c.tenant == tenant, entities.c.id == bindparam("entity_id"))
        .values({name: bindparam(f"new_{name}") for name in columns} | fixed)
    )
    conn.execute(statement, [{"entity_id": r["entity_id"]} | {f"new_{n}": r[n] for n in columns} for r in rows])


def _write(conn: Connection, tenant: str, inserts: list[dict], updates: list[dict]) -> None:
    bulk_insert(conn, entities, inserts)
    changed = [u for u in updates if u["updated_at"] is not None]
    _bulk_update(conn, tenant, changed, (*WRITTEN, "updated_at"), deleted_at=None)
    _bulk_update(conn, tenant, [u for u in updates if u["updated_at"] is None], WRITTEN)


def _sweep(conn: Connection, tenant: str, snapshot: Snapshot, existing: dict, seen: set, at: datetime) -> int:
    """Soft-delete live entities missing from a file that was read whole; other types delete nothing."""
    sources = snapshot.integration.entity_sources
    complete = {entity_type for entity_type, source in sources.items() if snapshot.is_complete(source.file)}
    gone = [
        {"entity_id": row.id}
        for key, row in existing.items()
        if key[0] in complete and row.deleted_at is None and key not in seen
    ]
    _bulk_update(conn, tenant, gone, (), deleted_at=at, updated_at=at)
    return len(gone)
