"""AlertManager: the alert lifecycle of docs/rules.md, one alert per fingerprint, ever.

`plan_alerts` decides (pure, from the stored alerts, the pass's findings and the
rules evaluated in it); `AlertManager` has lib/store/alert_writes.py carry it out in bulk, the legacy
writer (lib/legacy/) one alert at a time. Both carry out the same plan.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection

from mspbyte_dagster.lib.context import TenantContext
from mspbyte_dagster.lib.model import SEVERITY_RANK, Analysis, Finding
from mspbyte_dagster.lib.shown import markdown_cell
from mspbyte_dagster.lib.store import alert_writes
from mspbyte_dagster.lib.store.alert_writes import Fingerprint, fingerprint_of

ACTIONS = ("created", "updated", "resolved", "reopened", "suppressed")


@dataclass
class AlertPlan:
    """What one pass does to a tenant's alerts."""

    creates: list[dict] = field(default_factory=list)
    updates: list[dict] = field(default_factory=list)  # {"alert_id": ..., column: value}
    events: list[dict] = field(default_factory=list)  # {"alert_id" or "fingerprint", "action", ...}
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ACTIONS, 0))

    def event(self, action: str, status: str, severity: str, details: dict | None = None, **target) -> None:
        self.counts[action] += 1
        self.events.append({"action": action, "status": status, "severity": severity, "details": details} | target)


def _changed(row, finding: Finding) -> bool:
    return row.severity != finding.severity or (row.details or {}) != finding.details


def plan_alerts(
    tenant: str, existing: list, analysis: Analysis, live: set[tuple[str, str]], seen_at: datetime, now: datetime
) -> AlertPlan:
    """RULES "Alert lifecycle", steps 1-6, for one pass (seen_at: the snapshot's capturedAt)."""
    plan = AlertPlan()
    found: dict[Fingerprint, Finding] = {}
    for finding in analysis.findings:
        kept = found.get(finding.fingerprint)
        if kept is None or SEVERITY_RANK[finding.severity] > SEVERITY_RANK[kept.severity]:
            found[finding.fingerprint] = finding
    stored = {fingerprint_of(row): row for row in existing}
    evaluations = {e.alert_type: e for e in analysis.evaluations}
    for key, finding in found.items():
        row = stored.get(key)
        content = {"severity": finding.severity, "message": finding.message, "details": finding.details}
        if row is None:
            plan.creates.append(
                {
                    "tenant": tenant,
                    "alert_type": finding.alert_type,
                    "analysis_type": finding.analysis_type,
                    "entity_type": finding.entity_type,
                    "entity_id": finding.entity_id,
                    "sku_id": finding.sku_id or "",
                    "status": "active",
                    "first_seen_at": seen_at,
                    "last_seen_at": seen_at,
                    "updated_at": now,
                    "times_reopened": 0,
                }
                | content
            )
            plan.event("created", "active", finding.severity, finding.details, fingerprint=key)
        elif row.status == "resolved" or (row.status == "suppressed" and row.suppressed_until <= now):
            plan.updates.append(
                {
                    "alert_id": row.id,
                    "status": "active",
                    "last_seen_at": seen_at,
                    "resolved_at": None,
                    "resolved_reason": None,
                    "times_reopened": row.times_reopened + 1,
                    "updated_at": now,
                }
                | content
            )
            plan.event("reopened", "active", finding.severity, finding.details, fingerprint=key, alert_id=row.id)
        elif row.status == "suppressed":
            plan.counts["suppressed"] += 1
            if row.last_seen_at != seen_at:
                plan.updates.append({"alert_id": row.id, "last_seen_at": seen_at})
        elif _changed(row, finding):
            plan.updates.append({"alert_id": row.id, "last_seen_at": seen_at, "updated_at": now} | content)
            plan.event("updated", "active", finding.severity, finding.details, fingerprint=key, alert_id=row.id)
        elif row.last_seen_at != seen_at:
            plan.updates.append({"alert_id": row.id, "last_seen_at": seen_at})
    for key, row in stored.items():
        if key in found or row.status == "resolved":
            continue
        if (row.entity_type, row.entity_id) not in live:
            reason = "entity_removed"
        elif (evaluation := evaluations.get(row.alert_type)) is not None and evaluation.covers(row.entity_id):
            reason = "not_found"
        else:
            continue  # its rule was not evaluated for this entity: left exactly as it is
        plan.updates.append(
            {
                "alert_id": row.id,
                "status": "resolved",
                "resolved_at": seen_at,
                "resolved_reason": reason,
                "updated_at": now,
            }
        )
        plan.event("resolved", "resolved", row.severity, {"reason": reason}, fingerprint=key, alert_id=row.id)
    return plan


def alerts_after(rows: list, plan: AlertPlan) -> list[tuple[str, str, str, str]]:
    """(status, severity, entity type, entity id) of every alert once the plan is carried out."""
    after = {row.id: (row.status, row.severity, row.entity_type, row.entity_id) for row in rows}
    for change in plan.updates:
        status, severity, entity_type, entity_id = after[change["alert_id"]]
        after[change["alert_id"]] = (
            change.get("status", status),
            change.get("severity", severity),
            entity_type,
            entity_id,
        )
    created = [(c["status"], c["severity"], c["entity_type"], c["entity_id"]) for c in plan.creates]
    return [*after.values(), *created]


def entity_states(rows: list, plan: AlertPlan) -> dict[tuple[str, str], str]:
    """Highest severity among each entity's active alerts after the plan ('normal' when none)."""
    states: dict[tuple[str, str], str] = {}
    for status, severity, entity_type, entity_id in alerts_after(rows, plan):
        key = (entity_type, entity_id)
        best = states.get(key, "normal")
        if status == "active" and SEVERITY_RANK[severity] > SEVERITY_RANK.get(best, 0):
            best = severity
        states[key] = best
    return states


def state_changes(context: TenantContext, states: dict[tuple[str, str], str]) -> list[dict]:
    """Entity rows whose state moves, including back to normal when their last alert resolved."""
    changes = []
    for key, entity_id in context.entity_ids.items():
        new = states.get(key, "normal")
        if context.states.get(key) != new:
            changes.append({"row_id": entity_id, "new_state": new})
            context.states[key] = new
    return changes


def event_rows(
    tenant: str, plan: AlertPlan, ids: dict[Fingerprint, int], run_id: str | None, now: datetime
) -> Iterator[dict]:
    """The plan's events as rows, one at a time (a first pass of 50,000 users has 24,000)."""
    return (
        {
            "tenant": tenant,
            "alert_id": event.get("alert_id") or ids[event["fingerprint"]],
            "action": event["action"],
            "at": now,
            "run_id": run_id,
            "severity": event["severity"],
            "status": event["status"],
            "details": event["details"],
        }
        for event in plan.events
    )


def open_by_severity(rows: list, plan: AlertPlan) -> dict[str, int]:
    counts = dict.fromkeys(SEVERITY_RANK, 0)
    for status, severity, _entity_type, _entity_id in alerts_after(rows, plan):
        if status == "active":
            counts[severity] += 1
    return counts


def outcome(existing: list, plan: AlertPlan) -> AlertOutcome:
    actions = sorted((e["action"], ":".join(e["fingerprint"])) for e in plan.events)
    return AlertOutcome(plan.counts, open_by_severity(existing, plan), new_alerts_markdown(plan), actions)


def new_alerts_markdown(plan: AlertPlan) -> str:
    if not plan.creates:
        return "No new alerts."
    lines = ["| severity | alert | entity | message |", "|---|---|---|---|"]
    for row in sorted(plan.creates, key=lambda c: -SEVERITY_RANK[c["severity"]])[:50]:
        entity = markdown_cell(f"{row['entity_type']} {row['entity_id']}")
        lines.append(f"| {row['severity']} | {row['alert_type']} | {entity} | {markdown_cell(row['message'])} |")
    if len(plan.creates) > 50:
        lines.append(f"| | | | ... and {len(plan.creates) - 50} more |")
    return "\n".join(lines)


@dataclass
class AlertOutcome:
    counts: dict[str, int]
    open_by_severity: dict[str, int]
    new_alerts: str
    actions: list[tuple[str, str]] = field(default_factory=list)  # (action, fingerprint), for comparison mode

    def as_json(self) -> dict:
        return self.counts | {"open_by_severity": self.open_by_severity}


class AlertManager:
    """Plans a pass's alerts and has the store carry the plan out in a bounded number of statements."""

    def __init__(self, conn: Connection):
        self.conn = conn

    def apply(self, context: TenantContext, analysis: Analysis, now: datetime, run_id: str | None) -> AlertOutcome:
        tenant = context.tenant
        existing = alert_writes.tenant_alerts(self.conn, tenant)
        plan = plan_alerts(tenant, existing, analysis, set(context.entity_ids), context.header.captured_at, now)
        ids = alert_writes.insert_alerts(self.conn, tenant, plan.creates)
        alert_writes.update_alerts(self.conn, tenant, plan.updates)
        alert_writes.insert_events(self.conn, event_rows(tenant, plan, ids, run_id, now))
        alert_writes.set_entity_states(self.conn, tenant, state_changes(context, entity_states(existing, plan)))
        alert_writes.reset_removed_states(self.conn, tenant)
        return outcome(existing, plan)
