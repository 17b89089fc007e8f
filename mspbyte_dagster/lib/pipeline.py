"""One tenant's pass: the selected stages in order, under the tenant's lease, in one transaction, with
its ledger row (the stages are lib/stages.py, the shadow run of comparison mode lib/comparison.py).

A pass ends in one of four ways, each written to the ledger: `succeeded`,
`held` by the empty-sync guard (nothing written), `failed` (rolled back, the
error kept) or `skipped` (another pass holds the tenant).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine

from mspbyte_dagster.lib.comparison import comparison_of, shadow_outputs
from mspbyte_dagster.lib.model import STAGES
from mspbyte_dagster.lib.notify.routing import announce_pass
from mspbyte_dagster.lib.passes import (
    COMPARISON,
    FRESHNESS_CHECK,
    PASS_STAGES,
    PATH_STAGES,
    REPORT,
    SOURCE_STAGES,
    CheckOutcome,
    NoSnapshotError,
    PassOptions,
    PassState,
    TenantHeld,
    TenantPass,
)
from mspbyte_dagster.lib.stages import collector_paused, run_stage
from mspbyte_dagster.lib.store import ledger
from mspbyte_dagster.lib.store import tenants as tenant_store
from mspbyte_dagster.lib.store.lease import LeaseUnavailable, process_name, tenant_lease
from mspbyte_dagster.lib.store.query_stats import PIPELINE_LOGGER, QueryStats, measuring
from mspbyte_dagster.lib.store.retention import Retention, prune_tenant

log = logging.getLogger(__name__)
pass_log = logging.getLogger(f"{PIPELINE_LOGGER}.pipeline")


def _run_stages(state: PassState, stages: tuple[str, ...], result: TenantPass, stats: QueryStats) -> None:
    needed = _needed(stages)
    comparing = (state.options.compare or state.options.flags.is_enabled("comparison_mode", state.tenant)) and all(
        stage in needed for stage in PATH_STAGES
    )
    shadow, done = None, {}
    for stage in (*PASS_STAGES, REPORT):
        if stage not in needed:
            continue
        if stage not in SNAPSHOT_STAGES and state.guard.get("held"):
            raise TenantHeld(state.guard["held"])
        if comparing and stage == PATH_STAGES[0]:
            shadow = shadow_outputs(state, stats)
        done[stage] = run_stage(state, stage, stats)
        if stage in stages:
            result.stages[stage] = done[stage]
        result.guard = state.guard
        result.checks = dict(state.checks)
    if shadow is not None:  # a comparison that ran is reported whether or not the run selected its asset
        result.comparison = comparison_of(state, shadow, done)
        result.stages[COMPARISON] = result.comparison


def _refreshed(options: PassOptions, engine: Engine, tenant: str) -> dict[str, dict]:
    """The data sources read from an API, refreshed before the pass; their figures by snapshot stage."""
    fetched = options.refresh_sources(engine, tenant) if options.refresh_sources else {}
    graph = options.refresh_snapshot(engine, tenant) if options.refresh_snapshot else None
    return fetched | ({STAGES[0]: graph} if graph else {})


def _needed(stages: tuple[str, ...]) -> tuple[str, ...]:
    """Every stage that writes from a snapshot waits for the guards' verdicts: the Microsoft 365 snapshot is
    always read, the other sources' when their entities or edges are written; a report run alone reads neither."""
    if set(stages) == {REPORT}:
        return stages
    sources = tuple(SOURCE_STAGES) if {"entities", "relationships"} & set(stages) else ()
    return tuple(dict.fromkeys((STAGES[0], *sources, *stages)))


SNAPSHOT_STAGES = (STAGES[0], *SOURCE_STAGES)


def _run_in_transaction(
    engine: Engine,
    tenant: str,
    options: PassOptions,
    ledger_id: int,
    stages: tuple[str, ...],
    result: TenantPass,
    stats: QueryStats,
) -> None:
    """The pass's stages in one transaction. Its state (snapshot, context, analysis) dies when this
    returns, before the caller turns the cycle collector back on: turned on while they lived, it scanned
    them after every stage (0.77 s of a 50,000-user path's 6 s)."""
    with engine.connect() as conn, conn.begin() as transaction:
        state = _open_pass(conn, tenant, options, ledger_id)
        _run_stages(state, stages, result, stats)
        if options.read_only:
            transaction.rollback()


def _open_pass(conn: Connection, tenant: str, options: PassOptions, ledger_id: int) -> PassState:
    current = tenant_store.current_snapshot(conn, tenant)
    if current is None:
        raise NoSnapshotError(tenant)
    return PassState(
        conn, tenant, current.data_source_id, current.snapshot_id, options, ledger_id, options.paths(tenant)
    )


def _prune(engine: Engine, tenant: str, retention: Retention) -> None:
    """Retention after a committed pass, still under the lease; housekeeping, so neither counted in the
    pass's figures nor able to fail it (what is not pruned now is pruned after the next pass)."""
    try:
        with measuring(QueryStats()), engine.begin() as conn:
            prune_tenant(conn, tenant, retention, datetime.now(UTC))
    except Exception as error:
        log.warning("tenant %s: retention did not prune this time (%s: %s)", tenant, type(error).__name__, error)


def _ledger_figures(stages: dict[str, dict]) -> dict[str, dict]:
    """The stages' figures as the ledger keeps them: tables for the UI (up to 100 open alerts) stay
    out, or a year of hourly passes would keep a year of copies."""
    return {stage: {k: v for k, v in figures.items() if not k.endswith("_table")} for stage, figures in stages.items()}


def _log_outcome(result: TenantPass) -> None:
    """The migration guide's lines, one per pass, with the pass's figures."""
    figures = (result.tenant, result.duration_ms, result.queries, result.slow_queries)
    if result.status == "failed":
        pass_log.error(
            "Pipeline execution failed: tenant=%s duration_ms=%d queries=%d slow_queries=%d error=%s",
            *figures,
            result.reason,
        )
    else:
        pass_log.info(
            "Pipeline execution completed: tenant=%s duration_ms=%d queries=%d slow_queries=%d status=%s%s",
            *figures,
            result.status,
            f" reason={result.reason}" if result.reason else "",
        )


def run_tenant_pass(engine: Engine, tenant: str, stages: tuple[str, ...], options: PassOptions) -> TenantPass:
    """Run the selected stages for one tenant; never raises for the tenant's own failure."""
    result = TenantPass(tenant)
    stats = QueryStats(
        slow_threshold_ms=options.slow_query_threshold_ms,
        timed=options.flags.is_enabled("performance_monitoring", tenant),
        tenant=tenant,
    )
    started_at, clock = datetime.now(UTC), time.perf_counter()
    lease: dict = {}
    with measuring(stats):
        with engine.begin() as conn:
            try:
                tenant_store.require_tenant(conn, tenant)
            except tenant_store.UnknownTenantError as unknown:
                result.status, result.reason = "failed", str(unknown)
                return result
            ledger_id = (
                None
                if options.read_only
                else ledger.start_pass(conn, tenant, options.run_id, started_at, process_name())
            )
        try:
            with tenant_lease(engine, tenant, options.lease_wait_seconds, options.lease_ttl):
                lease = {"acquired_at": datetime.now(UTC).isoformat()}
                fetched = None
                try:
                    if "m365_snapshot" in stages:  # the APIs' HTTP, outside any transaction
                        fetched = _refreshed(options, engine, tenant)
                    with collector_paused():
                        _run_in_transaction(engine, tenant, options, ledger_id, stages, result, stats)
                    result.status = "succeeded"
                    if set(STAGES) <= set(stages):
                        result.checks[FRESHNESS_CHECK] = CheckOutcome(True, "refreshed by this pass")
                    if not options.read_only:
                        _prune(engine, tenant, options.retention)
                except TenantHeld as held:
                    result.status, result.reason = "held", str(held)
                finally:
                    lease["released_at"] = datetime.now(UTC).isoformat()
                    for stage, figures in (fetched or {}).items():
                        if stage in result.stages:
                            result.stages[stage] |= figures
        except LeaseUnavailable as busy:
            result.status, result.reason = "skipped", str(busy)
        except Exception as error:  # the tenant fails alone; its transaction was rolled back
            result.status, result.reason = "failed", f"{type(error).__name__}: {error}"
            result.stages = {}  # rolled back: no stage of this tenant counts as done
        result.duration_ms = round((time.perf_counter() - clock) * 1000)
        # read before the ledger's own write (and SQLite's BEGIN) adds to them
        result.queries, result.slow_queries, query_stats = stats.total, len(stats.slow), stats.as_json()
        _log_outcome(result)
        if options.read_only:
            return result
        with engine.begin() as conn:
            ledger.finish_pass(
                conn,
                ledger_id,
                tenant,
                status=result.status,
                reason=result.reason,
                all_stages=result.status == "succeeded" and set(STAGES) <= set(stages),
                duration_ms=result.duration_ms,
                queries=result.queries,
                slow_queries=result.slow_queries,
                stages=_ledger_figures(result.stages),
                details={
                    "guard": result.guard.get("counts"),
                    "lease": lease,
                    "flags": options.flags.tenant_values(tenant),
                    "comparison": {"has_discrepancies": result.comparison["has_discrepancies"]}
                    if result.comparison
                    else None,
                    "query_stats": query_stats,
                },
            )
            announce_pass(conn, tenant, result.status, result.reason, ledger_id, options.run_id, datetime.now(UTC))
    return result
