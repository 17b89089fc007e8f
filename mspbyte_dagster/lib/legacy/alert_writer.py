"""The old alert writer: a read and a write per finding, per alert and per entity state."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, insert, select, update

from mspbyte_dagster.lib.adapters.microsoft365.analysis.unified import Analysis
from mspbyte_dagster.lib.alerts import AlertOutcome, entity_states, event_rows, outcome, plan_alerts, state_changes
from mspbyte_dagster.lib.context import TenantContext
from mspbyte_dagster.lib.store.alert_writes import alert_columns, reset_removed_states
from mspbyte_dagster.lib.store.schema import alert_events, alerts, entities


class LegacyAlertWriter:
    def __init__(self, conn: Connection):
        self.conn = conn

    def _load(self, tenant: str, analysis: Analysis) -> list:
        """Each finding's alert on its own, then every open alert (for resolutions)."""
        loaded = {}
        for finding in analysis.findings:
            alert_type, entity_type, entity_id, sku_id = finding.fingerprint
            row = self.conn.execute(
                select(alerts).where(
                    alerts.c.tenant == tenant,
                    alerts.c.alert_type == alert_type,
                    alerts.c.entity_type == entity_type,
                    alerts.c.entity_id == entity_id,
                    alerts.c.sku_id == sku_id,
                )
            ).first()
            if row is not None:
                loaded[row.id] = row
        for row in self.conn.execute(select(alerts).where(alerts.c.tenant == tenant, alerts.c.status != "resolved")):
            loaded[row.id] = row
        return list(loaded.values())

    def apply(self, context: TenantContext, analysis: Analysis, now: datetime, run_id: str | None) -> AlertOutcome:
        tenant = context.tenant
        existing = self._load(tenant, analysis)
        plan = plan_alerts(tenant, existing, analysis, set(context.entity_ids), context.header.captured_at, now)
        ids = {}
        for create in plan.creates:
            key = (create["alert_type"], create["entity_type"], create["entity_id"], create["sku_id"])
            ids[key] = self.conn.execute(insert(alerts).values(create).returning(alerts.c.id)).scalar_one()
        for change in plan.updates:
            self.conn.execute(
                update(alerts)
                .where(alerts.c.tenant == tenant, alerts.c.id == change["alert_id"])
                .values(alert_columns(change))
            )
        for event in event_rows(tenant, plan, ids, run_id, now):
            self.conn.execute(insert(alert_events).values(event))
        for change in state_changes(context, entity_states(existing, plan)):
            self.conn.execute(
                update(entities)
                .where(entities.c.tenant == tenant, entities.c.id == change["row_id"])
                .values(state=change["new_state"])
            )
        reset_removed_states(self.conn, tenant)
        return outcome(existing, plan)
