"""What reports read (alerts, their recent events, the passes' figures) and keep (the reports and the
fleet exports). Every read of a tenant report names the tenant: a report holds no other tenant's data."""

from __future__ import annotations

import zlib
from datetime import datetime

from sqlalchemy import Connection, delete, func, insert, select

from mspbyte_dagster.lib.store.schema import (
    alert_events,
    alerts,
    fleet_posture_exports,
    pipeline_ledger,
    tenant_reports,
    tenants,
)

FLEET_EXPORTS_KEPT = 10
CHANGES = ("created", "reopened", "resolved")


def open_alert_rows(conn: Connection, tenant: str) -> list:
    a = alerts.c
    query = select(
        a.id, a.severity, a.status, a.alert_type, a.entity_type, a.entity_id, a.sku_id, a.message, a.first_seen_at
    ).where(a.tenant == tenant, a.status != "resolved")
    return list(conn.execute(query))


def changes_since(conn: Connection, tenant: str, since: datetime | None) -> list:
    """Alerts opened (created, reopened) and resolved after `since` (None: since the tenant began)."""
    e, a = alert_events.c, alerts.c
    query = (
        select(e.action, e.at, a.id, a.severity, a.alert_type, a.entity_type, a.entity_id, a.message)
        .join(alerts, (a.id == e.alert_id) & (a.tenant == tenant))
        .where(e.tenant == tenant, e.action.in_(CHANGES))
        .order_by(e.id)
    )
    if since is not None:
        query = query.where(e.at > since)
    return list(conn.execute(query))


def pass_history(conn: Connection, tenant: str, passes: int) -> list:
    """The tenant's last `passes` successful passes that wrote alerts: (started_at, stages), oldest first."""
    c = pipeline_ledger.c
    query = (
        select(c.started_at, c.stages)
        .where(c.tenant == tenant, c.status == "succeeded")
        .order_by(c.id.desc())
        .limit(passes * 3)  # passes without the alerts stage (a report run, a subset) are skipped
    )
    rows = [row for row in conn.execute(query) if "alerts" in (row.stages or {})][:passes]
    return rows[::-1]


def latest_figures(conn: Connection, tenant: str | None = None) -> dict[str, tuple]:
    """Per tenant, its latest full successful pass: (started_at, stages)."""
    c = pipeline_ledger.c
    newest = select(func.max(c.id)).where(c.status == "succeeded", c.all_stages.is_(True)).group_by(c.tenant)
    if tenant is not None:
        newest = newest.where(c.tenant == tenant)
    query = select(c.tenant, c.started_at, c.stages).where(c.id.in_(newest))
    if tenant is not None:
        query = query.where(c.tenant == tenant)
    return {row.tenant: (row.started_at, row.stages) for row in conn.execute(query)}


def tenant_name(conn: Connection, tenant: str) -> str:
    return conn.execute(select(tenants.c.name).where(tenants.c.tenant == tenant)).scalar_one()


def fleet_tenants(conn: Connection) -> list:
    return list(conn.execute(select(tenants.c.tenant, tenants.c.name).order_by(tenants.c.tenant)))


def open_counts(conn: Connection) -> dict[str, dict[str, int]]:
    """Per tenant, open (active) alerts by severity: one grouped read for the whole fleet."""
    a = alerts.c
    query = select(a.tenant, a.severity, func.count()).where(a.status == "active").group_by(a.tenant, a.severity)
    counts: dict[str, dict[str, int]] = {}
    for tenant, severity, count in conn.execute(query):
        counts.setdefault(tenant, {})[severity] = count
    return counts


def previous_report(conn: Connection, tenant: str):
    c = tenant_reports.c
    query = select(c.id, c.created_at, c.figures).where(c.tenant == tenant).order_by(c.id.desc()).limit(1)
    return conn.execute(query).first()


def save_report(conn: Connection, tenant: str, files: dict[str, bytes], figures: dict, keep: int, **row) -> int:
    """The report, and the tenant's older ones beyond the newest `keep` pruned."""
    packed = {name: zlib.compress(content) for name, content in files.items()}
    report_id = conn.execute(
        insert(tenant_reports).values(tenant=tenant, figures=figures, **packed, **row).returning(tenant_reports.c.id)
    ).scalar_one()
    c = tenant_reports.c
    kept = select(c.id).where(c.tenant == tenant).order_by(c.id.desc()).limit(keep)
    conn.execute(delete(tenant_reports).where(c.tenant == tenant, c.id.not_in(kept.scalar_subquery())))
    return report_id


def save_fleet_export(conn: Connection, created_at: datetime, tenants_count: int, files: dict[str, bytes]) -> int:
    export_id = conn.execute(
        insert(fleet_posture_exports)
        .values(created_at=created_at, tenants=tenants_count, **{k: zlib.compress(v) for k, v in files.items()})
        .returning(fleet_posture_exports.c.id)
    ).scalar_one()
    c = fleet_posture_exports.c
    kept = select(c.id).order_by(c.id.desc()).limit(FLEET_EXPORTS_KEPT)
    conn.execute(delete(fleet_posture_exports).where(c.id.not_in(kept.scalar_subquery())))
    return export_id
