"""A pass's alert writes: its plan carried out in a bounded number of statements, whatever the alert
count (lib/alerts.py plans; this module only writes)."""

from __future__ import annotations

from collections.abc import Iterable
from operator import attrgetter, itemgetter

from sqlalchemy import ARRAY, BigInteger, Connection, String, any_, bindparam, cast, func, select, text, update

from mspbyte_dagster.lib.store.bulk import bulk_insert
from mspbyte_dagster.lib.store.schema import REMOVED_NOT_NORMAL, alert_events, alerts, entities

Fingerprint = tuple[str, str, str, str]  # alert type, entity type, entity id, sku id
FINGERPRINT = ("alert_type", "entity_type", "entity_id", "sku_id")
fingerprint_of = attrgetter(*FINGERPRINT)  # a stored alert's
new_fingerprint = itemgetter(*FINGERPRINT)  # a planned new alert's
# alerts.id's sequence named as a constant: looked up per row (pg_get_serial_sequence), 4,740 ids took 14-24 ms, not 3
NEW_ALERT_IDS = text("SELECT nextval('alerts_id_seq'::regclass) FROM generate_series(1, :count)")


def tenant_alerts(conn: Connection, tenant: str) -> list:
    """Every alert of the tenant, with the columns planning reads (all of them took twice as long: 4,740
    alerts, 57 ms against 31 ms, mostly their times converted)."""
    c = alerts.c
    planned = (c.status, c.severity, c.details, c.suppressed_until, c.times_reopened, c.last_seen_at)
    return list(conn.execute(select(c.id, *(c[name] for name in FINGERPRINT), *planned).where(c.tenant == tenant)))


def insert_alerts(conn: Connection, tenant: str, creates: list[dict]) -> dict[Fingerprint, int]:
    """New alerts, and their ids by fingerprint. On PostgreSQL their ids are drawn from the table's sequence
    first, in one statement, and copied with the rows: reading the tenant's alerts back after the COPY took
    35 ms of a 10,000-user pass, however few were new. SQLite reads them back."""
    if not creates:
        return {}
    if conn.dialect.name != "postgresql":
        bulk_insert(conn, alerts, creates)
        c = alerts.c
        query = select(c.id, *(c[name] for name in FINGERPRINT)).where(c.tenant == tenant)
        return {fingerprint_of(row): row.id for row in conn.execute(query)}
    ids = conn.execute(NEW_ALERT_IDS, {"count": len(creates)}).scalars().all()
    bulk_insert(conn, alerts, ({"id": id_} | create for id_, create in zip(ids, creates, strict=True)))
    return dict(zip(map(new_fingerprint, creates), ids, strict=True))


def alert_columns(change: dict) -> dict:
    return {k: v for k, v in change.items() if k != "alert_id"}


def update_alerts(conn: Connection, tenant: str, changes: list[dict]) -> None:
    """One UPDATE per set of changed columns: on PostgreSQL a single statement over the ids when its rows
    all take the same values (every alert an hourly pass sees again takes the same last_seen_at: 4,700
    rows, 195 ms as an executemany), else an executemany."""
    by_columns: dict[tuple[str, ...], list[tuple[int, dict]]] = {}
    for change in changes:
        values = alert_columns(change)
        by_columns.setdefault(tuple(sorted(values)), []).append((change["alert_id"], values))
    for columns, same in by_columns.items():
        shared = same[0][1]
        if conn.dialect.name == "postgresql" and all(values == shared for _, values in same):
            ids = cast([alert_id for alert_id, _ in same], ARRAY(BigInteger))
            conn.execute(update(alerts).where(alerts.c.tenant == tenant, alerts.c.id == any_(ids)).values(shared))
            continue
        statement = (
            update(alerts)
            .where(alerts.c.tenant == tenant, alerts.c.id == bindparam("alert_id"))
            .values({name: bindparam(f"new_{name}") for name in columns})
        )
        rows = [{"alert_id": alert_id} | {f"new_{k}": v for k, v in values.items()} for alert_id, values in same]
        conn.execute(statement, rows)


def insert_events(conn: Connection, rows: Iterable[dict]) -> None:
    bulk_insert(conn, alert_events, rows)


def set_entity_states(conn: Connection, tenant: str, moved: list[dict]) -> None:
    """Entity states ({row_id, new_state}) that the pass's alerts moved, in one statement: on PostgreSQL
    an UPDATE joined to the two columns as arrays (an executemany of 4,700 rows took 160 ms of it)."""
    if not moved:
        return
    if conn.dialect.name != "postgresql":
        conn.execute(
            update(entities)
            .where(entities.c.tenant == tenant, entities.c.id == bindparam("row_id"))
            .values(state=bindparam("new_state")),
            moved,
        )
        return
    rows = (
        func.unnest(
            cast([m["row_id"] for m in moved], ARRAY(BigInteger)), cast([m["new_state"] for m in moved], ARRAY(String))
        )
        .table_valued("row_id", "new_state")
        .render_derived(name="moved")
    )
    conn.execute(
        update(entities)
        .where(entities.c.tenant == tenant, entities.c.id == rows.c.row_id)
        .values(state=rows.c.new_state)
    )


def reset_removed_states(conn: Connection, tenant: str) -> None:
    """Entities removed by the sweep have no active alert left (theirs resolve as entity_removed). The
    condition is the partial index's word for word, so any plan the server caches for it takes the index
    (a scan of the tenant's entities otherwise)."""
    conn.execute(update(entities).where(entities.c.tenant == tenant, text(REMOVED_NOT_NORMAL)).values(state="normal"))


def duplicate_open_fingerprints(conn: Connection, tenant: str) -> list[str]:
    """Fingerprints held by more than one open alert (the unique index should make this impossible)."""
    c = alerts.c
    query = (
        select(c.alert_type, c.entity_type, c.entity_id, c.sku_id)
        .where(c.tenant == tenant, c.status != "resolved")
        .group_by(c.alert_type, c.entity_type, c.entity_id, c.sku_id)
        .having(func.count() > 1)
    )
    return [":".join(row) for row in conn.execute(query)]
