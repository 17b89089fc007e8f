"""One tenant's pass: the selected stages in order, under the tenant's lease, in one transaction.

A pass ends in one of four ways, each written to the ledger: `succeeded`,
`held` by the empty-sync guard (nothing written), `failed` (rolled back, the
error kept) or `skipped` (another pass holds the tenant).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Connection, Engine

from mspbyte_dagster.lib.adapters.snapshot_files import Snapshot, read_snapshot
from mspbyte_dagster.lib.entities import process_entities
from mspbyte_dagster.lib.guard import guard_counts, hold_reason
from mspbyte_dagster.lib.store import ledger
from mspbyte_dagster.lib.store import tenants as tenant_store
from mspbyte_dagster.lib.store.lease import LeaseUnavailable, tenant_lease
from mspbyte_dagster.lib.store.query_stats import QueryStats, measuring, module

STAGES = ("m365_snapshot", "entities")
WRITING_STAGES = ("entities",)


class NoSnapshotError(LookupError):
    def __init__(self, tenant: str):
        super().__init__(f"tenant {tenant!r} has no snapshot yet: import one with `mspbyte tenants import DIR`")


class TenantHeld(Exception):
    """The empty-sync guard stopped the pass before anything was written."""


@dataclass(frozen=True)
class PassOptions:
    run_id: str | None = None
    lease_wait_seconds: float = 10.0
    lease_ttl: timedelta = timedelta(minutes=10)
    slow_query_threshold_ms: float = 100.0
    timed: bool = True


@dataclass
class PassState:
    """What the stages of one pass share."""

    conn: Connection
    tenant: str
    data_source_id: int
    snapshot_id: int
    snapshot: Snapshot | None = None
    guard: dict = field(default_factory=dict)


@dataclass
class TenantPass:
    """How one tenant's pass ended, with per stage the figures shown in the UI."""

    tenant: str
    status: str = "running"
    reason: str | None = None
    stages: dict[str, dict] = field(default_factory=dict)
    guard: dict = field(default_factory=dict)
    queries: int = 0
    slow_queries: int = 0
    duration_ms: int = 0


def snapshot_stage(state: PassState) -> dict:
    """Read the tenant's current snapshot and check it against the empty-sync guard."""
    current = tenant_store.current_snapshot(state.conn, state.tenant)
    state.snapshot = read_snapshot(Path(current.path))
    counts = guard_counts(state.snapshot)
    baseline = ledger.guard_baseline(state.conn, state.tenant)
    state.guard = {"counts": counts, "baseline": baseline, "held": hold_reason(baseline, counts)}
    return {
        "snapshot": current.seq,
        "captured_at": state.snapshot.tenant["capturedAt"],
        "counts": state.snapshot.counts(),
        "missing_files": state.snapshot.missing(),
        "incomplete_sources": state.snapshot.incomplete(),
    }


def entities_stage(state: PassState) -> dict:
    counts = process_entities(state.conn, state.tenant, state.data_source_id, state.snapshot, state.snapshot_id)
    return counts.as_json()


STAGE_FUNCTIONS: dict[str, Callable[[PassState], dict]] = {
    "m365_snapshot": snapshot_stage,
    "entities": entities_stage,
}


def _run_stages(conn: Connection, tenant: str, stages: tuple[str, ...], result: TenantPass, stats: QueryStats) -> None:
    current = tenant_store.current_snapshot(conn, tenant)
    if current is None:
        raise NoSnapshotError(tenant)
    state = PassState(conn, tenant, current.data_source_id, current.snapshot_id)
    needed = stages if "m365_snapshot" in stages else ("m365_snapshot", *stages)
    for stage in STAGES:
        if stage not in needed:
            continue
        if stage in WRITING_STAGES and state.guard.get("held"):
            raise TenantHeld(state.guard["held"])
        started, before = time.perf_counter(), stats.total
        with module(stage):
            figures = STAGE_FUNCTIONS[stage](state)
        figures |= {"queries": stats.total - before, "milliseconds": round((time.perf_counter() - started) * 1000)}
        if stage in stages:
            result.stages[stage] = figures
        result.guard = state.guard


def run_tenant_pass(engine: Engine, tenant: str, stages: tuple[str, ...], options: PassOptions) -> TenantPass:
    """Run the selected stages for one tenant; never raises for the tenant's own failure."""
    result = TenantPass(tenant)
    stats = QueryStats(slow_threshold_ms=options.slow_query_threshold_ms, timed=options.timed)
    started_at, clock = datetime.now(UTC), time.perf_counter()
    lease: dict = {}
    with measuring(stats):
        with engine.begin() as conn:
            try:
                tenant_store.require_tenant(conn, tenant)
            except tenant_store.UnknownTenantError as unknown:
                result.status, result.reason = "failed", str(unknown)
                return result
            ledger_id = ledger.start_pass(conn, tenant, options.run_id, started_at)
        try:
            with tenant_lease(engine, tenant, options.lease_wait_seconds, options.lease_ttl):
                lease = {"acquired_at": datetime.now(UTC).isoformat()}
                try:
                    with engine.begin() as conn:
                        _run_stages(conn, tenant, stages, result, stats)
                    result.status = "succeeded"
                except TenantHeld as held:
                    result.status, result.reason = "held", str(held)
                finally:
                    lease["released_at"] = datetime.now(UTC).isoformat()
        except LeaseUnavailable as busy:
            result.status, result.reason = "skipped", str(busy)
        except Exception as error:  # the tenant fails alone; its transaction was rolled back
            result.status, result.reason = "failed", f"{type(error).__name__}: {error}"
            result.stages = {}  # rolled back: no stage of this tenant counts as done
        result.duration_ms = round((time.perf_counter() - clock) * 1000)
        with engine.begin() as conn:
            ledger.finish_pass(
                conn,
                ledger_id,
                tenant,
                status=result.status,
                reason=result.reason,
                all_stages=result.status == "succeeded" and set(stages) == set(STAGES),
                duration_ms=result.duration_ms,
                queries=stats.total,
                slow_queries=len(stats.slow),
                stages=result.stages,
                details={"guard": result.guard.get("counts"), "lease": lease, "query_stats": stats.as_json()},
            )
    result.queries, result.slow_queries = stats.total, len(stats.slow)
    return result
