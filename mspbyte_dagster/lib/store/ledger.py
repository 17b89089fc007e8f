"""The pipeline ledger: one row per tenant pass, written outside the pass's transaction.

A pass that fails is rolled back, but its ledger row (status, error, figures)
stays: that is what the metrics exporter and `mspbyte run` read.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, insert, or_, select, update

from mspbyte_dagster.lib.store.schema import pipeline_ledger


def start_pass(conn: Connection, tenant: str, run_id: str | None, started_at: datetime) -> int:
    return conn.execute(
        insert(pipeline_ledger)
        .values(tenant=tenant, run_id=run_id, status="running", started_at=started_at, stages={}, details={})
        .returning(pipeline_ledger.c.id)
    ).scalar_one()


def finish_pass(conn: Connection, ledger_id: int, tenant: str, **values) -> None:
    conn.execute(
        update(pipeline_ledger)
        .where(pipeline_ledger.c.tenant == tenant, pipeline_ledger.c.id == ledger_id)
        .values(**values)
    )


def guard_baseline(conn: Connection, tenant: str) -> dict | None:
    """Guard counts of the tenant's previous successful pass (every stage ran) or accepted drop."""
    row = baseline_row(conn, tenant)
    return row.details.get("guard") if row else None


def baseline_row(conn: Connection, tenant: str):
    """The ledger row the guard compares with (retention never prunes it)."""
    return conn.execute(
        select(pipeline_ledger.c.id, pipeline_ledger.c.details)
        .where(
            pipeline_ledger.c.tenant == tenant,
            or_(
                (pipeline_ledger.c.status == "succeeded") & pipeline_ledger.c.all_stages,
                pipeline_ledger.c.status == "accepted_drop",
            ),
        )
        .order_by(pipeline_ledger.c.id.desc())
        .limit(1)
    ).first()


def record_accepted_drop(
    conn: Connection, tenant: str, reason: str, snapshot_id: int, guard: dict, at: datetime
) -> int:
    return conn.execute(
        insert(pipeline_ledger)
        .values(
            tenant=tenant,
            status="accepted_drop",
            reason=reason,
            snapshot_id=snapshot_id,
            started_at=at,
            duration_ms=0,
            stages={},
            details={"guard": guard},
        )
        .returning(pipeline_ledger.c.id)
    ).scalar_one()


def passes_of_run(conn: Connection, tenants: list[str], run_id: str) -> list:
    return list(
        conn.execute(
            select(pipeline_ledger)
            .where(pipeline_ledger.c.tenant.in_(tenants), pipeline_ledger.c.run_id == run_id)
            .order_by(pipeline_ledger.c.id)
        )
    )
