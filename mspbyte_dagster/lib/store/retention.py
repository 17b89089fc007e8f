"""What is kept of a tenant, and for how long: its newest snapshots, a window of ledger rows, of
the events of resolved alerts and of the notifications sent. Pruned after each successful pass of the tenant, under its lease."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, delete, select

from mspbyte_dagster.lib.store import ledger, metric_totals
from mspbyte_dagster.lib.store.notifications import prune_outbox
from mspbyte_dagster.lib.store.schema import (
    alert_events,
    alerts,
    data_sources,
    pipeline_ledger,
    quarantined_records,
    snapshots,
)


@dataclass(frozen=True)
class Retention:
    snapshots: int = 10  # SNAPSHOT_RETENTION
    ledger_days: int = 400  # LEDGER_RETENTION_DAYS
    alert_event_days: int = 400  # ALERT_EVENT_RETENTION_DAYS


def prune_tenant(conn: Connection, tenant: str, retention: Retention, now: datetime) -> dict[str, int]:
    """Delete what the tenant no longer keeps; returns how many rows of each kind went."""
    marks = metric_totals.marks(conn)
    if metric_totals.fold_due(conn, now, marks):
        marks = metric_totals.fold(conn, now)
    return {
        "snapshots": _prune_snapshots(conn, tenant, retention.snapshots),
        "ledger_rows": _prune_ledger(conn, tenant, now - timedelta(days=retention.ledger_days), marks["ledger"]),
        "alert_events": _prune_alert_events(
            conn, tenant, now - timedelta(days=retention.alert_event_days), marks["alert_events"]
        ),
        # a message is history like the events it announced: kept as long, once delivered or dead
        "notifications": prune_outbox(conn, tenant, now - timedelta(days=retention.alert_event_days)),
    }


def _prune_snapshots(conn: Connection, tenant: str, keep: int) -> int:
    """All but the newest `keep` of each data source; never the current or processed one of a data source
    (a pass reads it)."""
    in_use = [
        *conn.execute(select(data_sources.c.current_snapshot_id).where(data_sources.c.tenant == tenant)).scalars(),
        *conn.execute(select(data_sources.c.processed_snapshot_id).where(data_sources.c.tenant == tenant)).scalars(),
    ]
    newest_first = select(snapshots.c.id, snapshots.c.data_source_id).where(snapshots.c.tenant == tenant)
    seen: dict[int, int] = {}
    old = []
    for snapshot_id, source in conn.execute(newest_first.order_by(snapshots.c.seq.desc())):
        seen[source] = seen.get(source, 0) + 1
        if seen[source] > keep and snapshot_id not in in_use:
            old.append(snapshot_id)
    if old:
        conn.execute(
            delete(quarantined_records).where(
                quarantined_records.c.tenant == tenant, quarantined_records.c.snapshot_id.in_(old)
            )
        )
        conn.execute(delete(snapshots).where(snapshots.c.tenant == tenant, snapshots.c.id.in_(old)))  # files cascade
    return len(old)


def _prune_ledger(conn: Connection, tenant: str, before: datetime, mark: int) -> int:
    """Rows older than the window and already in the metric totals; never one the guard's baseline comes from."""
    c = pipeline_ledger.c
    baseline = [row.id for row in ledger.baseline_rows(conn, tenant)]
    where = [c.tenant == tenant, c.started_at < before, c.id <= mark, c.id.not_in(baseline)]
    return conn.execute(delete(pipeline_ledger).where(*where)).rowcount


def _prune_alert_events(conn: Connection, tenant: str, before: datetime, mark: int) -> int:
    """Events of resolved alerts older than the window and already in the metric totals (the alert stays)."""
    resolved = select(alerts.c.id).where(alerts.c.tenant == tenant, alerts.c.status == "resolved")
    return conn.execute(
        delete(alert_events).where(
            alert_events.c.tenant == tenant,
            alert_events.c.at < before,
            alert_events.c.id <= mark,
            alert_events.c.alert_id.in_(resolved),
        )
    ).rowcount
