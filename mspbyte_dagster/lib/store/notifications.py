"""Notification channels, routes and the outbox, as stored (lib/notify/ decides what they mean).

An outbox row is one message for one channel. It is written in the transaction
of the pass that made its events, claimed for a while by the delivery round
that sends it, then marked delivered, retried later or dead-lettered: a crashed
round's claims expire and its rows are sent again (at least once), a delivered
row never is.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, delete, func, insert, or_, select, update

from mspbyte_dagster.lib.errors import InputError
from mspbyte_dagster.lib.store.bulk import bulk_insert
from mspbyte_dagster.lib.store.schema import (
    alert_events,
    alerts,
    notification_channels,
    notification_outbox,
    notification_routes,
    pipeline_ledger,
)

OUTBOX_STATUSES = ("pending", "delivered", "dead")


class ChannelNotFound(InputError):
    def __init__(self, name: str):
        super().__init__(f"no notification channel {name!r}: `mspbyte notify channels list` shows them")


def add_channel(conn: Connection, name: str, kind: str, config: dict, secret: str | None, now: datetime) -> int:
    if conn.execute(select(notification_channels.c.id).where(notification_channels.c.name == name)).first():
        raise InputError(f"a notification channel named {name!r} exists: remove it first or choose another name")
    return conn.execute(
        insert(notification_channels)
        .values(name=name, kind=kind, config=config, secret=secret, created_at=now)
        .returning(notification_channels.c.id)
    ).scalar_one()


def channel(conn: Connection, name: str):
    row = conn.execute(select(notification_channels).where(notification_channels.c.name == name)).first()
    if row is None:
        raise ChannelNotFound(name)
    return row


def channels(conn: Connection) -> list:
    return list(conn.execute(select(notification_channels).order_by(notification_channels.c.name)))


def channels_by_id(conn: Connection, ids: set[int]) -> dict[int, object]:
    query = select(notification_channels).where(notification_channels.c.id.in_(sorted(ids)))
    return {row.id: row for row in conn.execute(query)}


def remove_channel(conn: Connection, name: str) -> None:
    """The channel; its routes and messages go with it (their foreign keys cascade)."""
    conn.execute(delete(notification_channels).where(notification_channels.c.id == channel(conn, name).id))


def add_route(conn: Connection, channel_id: int, now: datetime, **route) -> int:
    return conn.execute(
        insert(notification_routes)
        .values(channel_id=channel_id, created_at=now, **route)
        .returning(notification_routes.c.id)
    ).scalar_one()


def routes(conn: Connection, tenant: str | None = None) -> list:
    """Every route with its channel's name and kind; with a tenant, the routes that can name it."""
    r, c = notification_routes.c, notification_channels.c
    query = select(notification_routes, c.name.label("channel"), c.kind).join(
        notification_channels, c.id == r.channel_id
    )
    if tenant is not None:
        query = query.where(or_(r.tenant.is_(None), r.tenant == tenant))
    return list(conn.execute(query.order_by(r.id)))


def remove_route(conn: Connection, route_id: int) -> None:
    if not conn.execute(delete(notification_routes).where(notification_routes.c.id == route_id)).rowcount:
        raise InputError(f"no notification route {route_id}: `mspbyte notify routes list` shows them")


def newest_event_id(conn: Connection, tenant: str) -> int:
    c = alert_events.c
    return conn.execute(select(func.max(c.id)).where(c.tenant == tenant)).scalar() or 0


def events_since(conn: Connection, tenant: str, mark: int) -> list:
    """The tenant's alert events above `mark`, with what a message says of their alert."""
    e, a = alert_events.c, alerts.c
    query = (
        select(
            e.id.label("event_id"),
            e.action,
            e.severity,
            e.alert_id,
            a.alert_type,
            a.entity_type,
            a.entity_id,
            a.message,
        )
        .join(alerts, (a.id == e.alert_id) & (a.tenant == tenant))
        .where(e.tenant == tenant, e.id > mark)
        .order_by(e.id)
    )
    return list(conn.execute(query))


def severities_before(conn: Connection, tenant: str, alert_ids: list[int], mark: int) -> dict[int, str]:
    """Each alert's severity as of its newest event at or below `mark` (before this pass)."""
    e = alert_events.c
    query = (
        select(e.alert_id, e.severity)
        .where(e.tenant == tenant, e.alert_id.in_(alert_ids), e.id <= mark)
        .order_by(e.alert_id, e.id.desc())
    )
    found: dict[int, str] = {}
    for alert_id, severity in conn.execute(query):
        found.setdefault(alert_id, severity)
    return found


def previous_pass_status(conn: Connection, tenant: str, ledger_id: int) -> str | None:
    """How the tenant's pass before this one ended (passes that were skipped or still run aside)."""
    c = pipeline_ledger.c
    query = (
        select(c.status)
        .where(c.tenant == tenant, c.id < ledger_id, c.status.in_(("succeeded", "failed", "held")))
        .order_by(c.id.desc())
        .limit(1)
    )
    return conn.execute(query).scalar()


def enqueue(conn: Connection, rows: list[dict]) -> None:
    bulk_insert(conn, notification_outbox, rows)


def claim_due(conn: Connection, now: datetime, claimer: str, hold: timedelta, limit: int) -> list:
    """Pending rows that are due and not claimed by a live round, claimed by `claimer` until now + hold."""
    o = notification_outbox.c
    free = or_(o.claimed_until.is_(None), o.claimed_until <= now)
    due = select(o.id).where(o.status == "pending", o.due_at <= now, free).order_by(o.id).limit(limit)
    ids = list(conn.execute(due).scalars())
    if not ids:
        return []
    conn.execute(
        update(notification_outbox)
        .where(o.id.in_(ids), o.status == "pending", free)
        .values(claimed_by=claimer, claimed_until=now + hold)
    )
    return list(conn.execute(select(notification_outbox).where(o.claimed_by == claimer).order_by(o.id)))


def finish(conn: Connection, ids: list[int], claimer: str, **values) -> None:
    """Record a send's outcome on the rows this round claimed (a row another round took since is theirs)."""
    o = notification_outbox.c
    conn.execute(
        update(notification_outbox)
        .where(o.id.in_(ids), o.claimed_by == claimer)
        .values(claimed_by=None, claimed_until=None, **values)
    )


def due_count(conn: Connection, now: datetime) -> int:
    o = notification_outbox.c
    free = or_(o.claimed_until.is_(None), o.claimed_until <= now)
    return conn.execute(select(func.count()).where(o.status == "pending", o.due_at <= now, free)).scalar_one()


def outbox_rows(conn: Connection, status: str | None = None, limit: int = 200) -> list:
    if status is not None and status not in OUTBOX_STATUSES:
        raise InputError(f"unknown outbox status {status!r}: use one of {', '.join(OUTBOX_STATUSES)}")
    o, c = notification_outbox.c, notification_channels.c
    query = select(notification_outbox, c.name.label("channel")).join(notification_channels, c.id == o.channel_id)
    if status is not None:
        query = query.where(o.status == status)
    return list(conn.execute(query.order_by(o.id.desc()).limit(limit)))


def retry(conn: Connection, row_id: int, now: datetime) -> None:
    """A dead or pending row due again now, with a fresh delivery window; a delivered one is never resent."""
    o = notification_outbox.c
    row = conn.execute(select(o.status).where(o.id == row_id)).first()
    if row is None:
        raise InputError(f"no outbox row {row_id}: `mspbyte notify outbox list` shows them")
    if row.status == "delivered":
        raise InputError(f"outbox row {row_id} was delivered: it is never sent again")
    conn.execute(
        update(notification_outbox)
        .where(o.id == row_id)
        .values(status="pending", due_at=now, queued_at=now, attempts=0, finished_at=None, claimed_until=None)
    )


def prune_outbox(conn: Connection, tenant: str, before: datetime) -> int:
    """Delivered and dead rows finished before `before` (pending ones always stay)."""
    o = notification_outbox.c
    return conn.execute(
        delete(notification_outbox).where(
            o.tenant == tenant, o.status.in_(("delivered", "dead")), o.finished_at < before
        )
    ).rowcount
