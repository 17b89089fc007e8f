"""The pipeline ledger: one row per tenant pass, written outside the pass's transaction.

A pass that fails is rolled back, but its ledger row (status, error, figures)
stays: that is what the metrics exporter and `mspbyte run` read.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import Connection, func, insert, or_, select, update

from mspbyte_dagster.lib.store.schema import pipeline_ledger


def start_pass(conn: Connection, tenant: str, run_id: str | None, started_at: datetime, process: str) -> int:
    """The pass's row, `running`, naming the process that runs it (so a killed one can be told apart)."""
    return conn.execute(
        insert(pipeline_ledger)
        .values(
            tenant=tenant,
            run_id=run_id,
            status="running",
            started_at=started_at,
            stages={},
            details={"process": process},
        )
        .returning(pipeline_ledger.c.id)
    ).scalar_one()


def fail_orphans(conn: Connection, is_dead: Callable[[str | None], bool]) -> list[str]:
    """Close the `running` rows whose process died (a killed `mspbyte run`): failed, naming why.
    Returns their tenants."""
    orphans = [
        row
        for row in conn.execute(
            select(pipeline_ledger.c.id, pipeline_ledger.c.tenant, pipeline_ledger.c.details).where(
                pipeline_ledger.c.status == "running"
            )
        )
        if is_dead((row.details or {}).get("process"))
    ]
    for row in orphans:
        conn.execute(
            update(pipeline_ledger)
            .where(pipeline_ledger.c.id == row.id)
            .values(
                status="failed",
                reason=f"the process running this pass ({row.details['process']}) died before it ended; "
                "its transaction was rolled back",
            )
        )
    return [row.tenant for row in orphans]


def running_runs(conn: Connection) -> list[str]:
    """The runs that have a pass still `running` (a handful: the passes going on right now)."""
    c = pipeline_ledger.c
    return list(conn.execute(select(c.run_id).distinct().where(c.status == "running", c.run_id.is_not(None))).scalars())


def close_passes_of_run(conn: Connection, run_id: str, reason: str) -> list[tuple[int, str]]:
    """A run ended (failed, stopped at its time limit, its worker killed) while a pass of it was `running`:
    that pass was rolled back with its process, so its row says failed and why. Returns (row id, tenant)."""
    c = pipeline_ledger.c
    return list(
        conn.execute(
            update(pipeline_ledger)
            .where(c.run_id == run_id, c.status == "running")
            .values(status="failed", reason=reason)
            .returning(c.id, c.tenant)
        ).all()
    )


def skipped_after(conn: Connection, after_id: int) -> list:
    """Passes that found their tenant's lease held (status skipped), newer than `after_id`."""
    c = pipeline_ledger.c
    return list(
        conn.execute(
            select(c.id, c.tenant, c.run_id).where(c.id > after_id, c.status == "skipped").order_by(c.id)
        ).all()
    )


def newest_id(conn: Connection) -> int:
    return conn.execute(select(func.max(pipeline_ledger.c.id))).scalar() or 0


def finish_pass(conn: Connection, ledger_id: int, tenant: str, **values) -> None:
    conn.execute(
        update(pipeline_ledger)
        .where(pipeline_ledger.c.tenant == tenant, pipeline_ledger.c.id == ledger_id)
        .values(**values)
    )


def guard_baseline(conn: Connection, tenant: str) -> dict | None:
    """Per measure, the count of the latest successful pass (every stage ran) or accepted drop that
    read its file: a sync without users.json must not become the users baseline."""
    baseline: dict = {}
    for row in baseline_rows(conn, tenant):
        for measure, count in (row.details.get("guard") or {}).items():
            if baseline.get(measure) is None:
                baseline[measure] = count
    return baseline or None


BASELINE_PAGE = 20


def baseline_rows(conn: Connection, tenant: str) -> list:
    """The ledger rows the guard's baseline comes from, newest first (retention never prunes them): read
    a page at a time, as the newest usually has every measure (a server-side cursor took three round trips
    of every pass, twice)."""
    c = pipeline_ledger.c
    page = (
        select(c.id, c.details)
        .where(c.tenant == tenant, or_((c.status == "succeeded") & c.all_stages, c.status == "accepted_drop"))
        .order_by(c.id.desc())
        .limit(BASELINE_PAGE)
    )
    used, missing, last = [], None, None
    while rows := conn.execute(page if last is None else page.where(c.id < last)).all():
        for row in rows:
            guard = row.details.get("guard") or {}
            if missing is None:
                missing = set(guard)
            counted = {measure for measure, count in guard.items() if count is not None}
            if missing & counted:
                used.append(row)
                missing -= counted
            if not missing:
                return used
        if len(rows) < BASELINE_PAGE:
            break
        last = rows[-1].id
    return used


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


def last_refreshed(conn: Connection, tenants: list[str]) -> dict[str, datetime | None]:
    """When each tenant's latest pass that ran every stage and succeeded started (None: never)."""
    c = pipeline_ledger.c
    found = dict(
        conn.execute(
            select(c.tenant, func.max(c.started_at))
            .where(c.tenant.in_(tenants), c.status == "succeeded", c.all_stages)
            .group_by(c.tenant)
        ).all()
    )
    return {tenant: found.get(tenant) for tenant in tenants}


def settled_mark(conn: Connection, now: datetime, quiet: timedelta, running_for: timedelta) -> int | None:
    """The newest finished pass, once the fleet is quiet: no pass running (one started longer ago than
    `running_for` is a dead process's, not running) and none finished in the last `quiet`."""
    c = pipeline_ledger.c
    running = select(c.id).where(c.status == "running", c.started_at > now - running_for).limit(1)
    if conn.execute(running).first() is not None:
        return None
    newest = conn.execute(
        select(c.id, c.started_at, c.duration_ms).where(c.status != "running").order_by(c.id.desc()).limit(1)
    ).first()
    if newest is None or newest.started_at + timedelta(milliseconds=newest.duration_ms or 0) > now - quiet:
        return None
    return newest.id
