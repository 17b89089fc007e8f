"""The findings of a tenant's latest analysis pass, and the rules evaluated in it."""

from __future__ import annotations

from sqlalchemy import Connection, delete, insert, select

from mspbyte_dagster.lib.model import Analysis, Finding, RuleEvaluation
from mspbyte_dagster.lib.store.bulk import bulk_insert
from mspbyte_dagster.lib.store.schema import findings, rule_evaluations


def replace_findings(
    conn: Connection, tenant: str, data_source_id: int, analysis: Analysis, ledger_id: int | None
) -> None:
    """The latest pass replaces the previous one: findings are a state, alerts keep the history."""
    conn.execute(delete(findings).where(findings.c.tenant == tenant))
    conn.execute(delete(rule_evaluations).where(rule_evaluations.c.tenant == tenant))
    bulk_insert(
        conn,
        findings,
        [
            {
                "tenant": tenant,
                "data_source_id": data_source_id,
                "ledger_id": ledger_id,
                "analysis_type": f.analysis_type,
                "alert_type": f.alert_type,
                "entity_type": f.entity_type,
                "entity_id": f.entity_id,
                "sku_id": f.sku_id,
                "severity": f.severity,
                "message": f.message,
                "details": f.details,
            }
            for f in analysis.findings
        ],
    )
    conn.execute(
        insert(rule_evaluations),
        [{"tenant": tenant, "ledger_id": ledger_id} | e.as_json() for e in analysis.evaluations],
    )


def load_findings(conn: Connection, tenant: str) -> Analysis:
    """The stored analysis, for an `alerts` stage that runs without `findings`."""
    found = [
        Finding(r.analysis_type, r.alert_type, r.entity_type, r.entity_id, r.severity, r.message, r.details, r.sku_id)
        for r in conn.execute(select(findings).where(findings.c.tenant == tenant))
    ]
    evaluated = [
        RuleEvaluation.from_json(r._asdict())
        for r in conn.execute(select(rule_evaluations).where(rule_evaluations.c.tenant == tenant))
    ]
    if not evaluated:
        raise LookupError(f"tenant {tenant!r} has no analysis yet: run the findings stage first")
    return Analysis(found, evaluated)
