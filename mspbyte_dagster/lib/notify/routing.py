"""Which events of a pass reach which channel: the outbox rows, written in the pass's transaction.

A route names a channel, optionally one tenant, a lowest severity, alert types
and the events it announces. All a pass announces to one channel goes in one
message (one card or mail per tenant and pass); a digest route's events wait
for the end of its window, when the delivery round merges every row due then
into one message. An event that two routes send to one channel is sent once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection

from mspbyte_dagster.lib.adapters.microsoft365.analysis.unified import ALERT_TYPES
from mspbyte_dagster.lib.adapters.registry import INTEGRATIONS
from mspbyte_dagster.lib.errors import InputError
from mspbyte_dagster.lib.model import SEVERITY_RANK
from mspbyte_dagster.lib.store import notifications

ALERT_EVENTS = ("created", "reopened", "severity_raised", "resolved")
PASS_EVENTS = ("pass_failed", "pass_held")
EVENTS = (*ALERT_EVENTS, *PASS_EVENTS)
STOPPED_TENANT_SEVERITY = "high"  # a tenant nobody analyses any more is worth a look the same day
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def checked_events(names: list[str] | None) -> list[str]:
    if not names:
        return list(EVENTS)
    unknown = sorted(set(names) - set(EVENTS))
    if unknown:
        raise InputError(f"unknown event(s) {', '.join(unknown)}: use {', '.join(EVENTS)}")
    return [name for name in EVENTS if name in names]


def checked_types(names: list[str] | None) -> list[str] | None:
    """None: every alert type; a name no analysis raises is refused (a typo would mute the route)."""
    if not names:
        return None
    known = (*ALERT_TYPES, *(kind for integration in INTEGRATIONS.values() for kind in integration.alert_types))
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise InputError(f"unknown alert type(s) {', '.join(unknown)}: use {', '.join(known)}")
    return sorted(set(names))


def checked_severity(name: str) -> str:
    if name not in SEVERITY_RANK:
        raise InputError(f"unknown severity {name!r}: use one of {', '.join(SEVERITY_RANK)}")
    return name


def _event_name(row, before: dict[int, str]) -> str | None:
    """An alert event as a route knows it; an update that did not raise the severity is not news."""
    if row.action in ("created", "reopened", "resolved"):
        return row.action
    if row.action == "updated" and SEVERITY_RANK[row.severity] > SEVERITY_RANK.get(before.get(row.alert_id), 99):
        return "severity_raised"
    return None


def alert_items(tenant: str, rows: list, before: dict[int, str]) -> list[dict]:
    """What a message says of each announced alert event (`before`: updated alerts' severity before the
    pass); its key (the alert event id) lets a receiver drop a repeat."""
    items = []
    for row in rows:
        event = _event_name(row, before)
        if event is None:
            continue
        items.append(
            {
                "key": f"alert-event-{row.event_id}",
                "event": event,
                "tenant": tenant,
                "severity": row.severity,
                "previous_severity": before.get(row.alert_id) if event == "severity_raised" else None,
                "alert_id": row.alert_id,
                "alert_type": row.alert_type,
                "entity_type": row.entity_type,
                "entity_id": row.entity_id,
                "message": row.message,
            }
        )
    return items


def _matches(route, item: dict) -> bool:
    if item["event"] not in route.events:
        return False
    if SEVERITY_RANK[item["severity"]] < SEVERITY_RANK[route.min_severity]:
        return False
    return item.get("alert_type") is None or route.alert_types is None or item["alert_type"] in route.alert_types


def window_end(now: datetime, minutes: int) -> datetime:
    """The end of the digest window `now` falls in (windows are aligned on the epoch, so every pass
    inside one window lands in the same digest)."""
    size = timedelta(minutes=minutes)
    return EPOCH + ((now - EPOCH) // size + 1) * size


def outbox_rows(tenant: str, items: list[dict], routes: list, run_id: str | None, now: datetime) -> list[dict]:
    """One row per channel and timing (at once, or per digest window) with the items its routes take."""
    chosen: dict[tuple[int, int | None], dict[str, dict]] = {}
    immediate: dict[int, set[str]] = {}
    for route in routes:
        for item in items:
            if _matches(route, item):
                chosen.setdefault((route.channel_id, route.digest_minutes), {})[item["key"]] = item
                if route.digest_minutes is None:
                    immediate.setdefault(route.channel_id, set()).add(item["key"])
    rows = []
    for (channel_id, digest), taken in sorted(chosen.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0)):
        if digest is not None:  # what this channel gets at once anyway is not repeated in its digest
            taken = {key: item for key, item in taken.items() if key not in immediate.get(channel_id, set())}
        if taken:
            rows.append(
                {
                    "tenant": tenant,
                    "channel_id": channel_id,
                    "run_id": run_id,
                    "items": list(taken.values()),
                    "digest": digest is not None,
                    "status": "pending",
                    "queued_at": now,
                    "due_at": now if digest is None else window_end(now, digest),
                    "attempts": 0,
                }
            )
    return rows


@dataclass
class AlertAnnouncer:
    """Announces the alert events a pass writes: made before the writer (the routes that can name the
    tenant, and its newest alert event then), used after it in the same transaction. The tenant's lease
    keeps other passes out, so the tenant's events above the mark are this pass's. One read when no
    route can name the tenant; at most five statements otherwise, whatever the number of alerts."""

    tenant: str
    routes: list
    mark: int

    @classmethod
    def before_writing(cls, conn: Connection, tenant: str) -> AlertAnnouncer:
        routes = notifications.routes(conn, tenant)
        return cls(tenant, routes, notifications.newest_event_id(conn, tenant) if routes else 0)

    def queue(self, conn: Connection, run_id: str | None, now: datetime) -> int:
        if not self.routes:
            return 0
        written = notifications.events_since(conn, self.tenant, self.mark)
        updated = sorted({row.alert_id for row in written if row.action == "updated"})
        before = notifications.severities_before(conn, self.tenant, updated, self.mark) if updated else {}
        rows = outbox_rows(self.tenant, alert_items(self.tenant, written, before), self.routes, run_id, now)
        notifications.enqueue(conn, rows)
        return len(rows)


def announce_pass(
    conn: Connection, tenant: str, status: str, reason: str | None, ledger_id: int, run_id: str | None, now: datetime
) -> int:
    """A pass that failed or was held, announced when the tenant's previous pass ended otherwise: a
    tenant failing every hour is one message, not one an hour."""
    event = {"failed": "pass_failed", "held": "pass_held"}.get(status)
    if event is None or notifications.previous_pass_status(conn, tenant, ledger_id) == status:
        return 0
    routes = notifications.routes(conn, tenant)
    item = {
        "key": f"pass-{ledger_id}",
        "event": event,
        "tenant": tenant,
        "severity": STOPPED_TENANT_SEVERITY,
        "reason": reason,
    }
    rows = outbox_rows(tenant, [item], routes, run_id, now)
    notifications.enqueue(conn, rows)
    return len(rows)
