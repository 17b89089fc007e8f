"""One tenant's pass: the selected stages in order, under the tenant's lease, in one transaction.

A pass ends in one of four ways, each written to the ledger: `succeeded`,
`held` by the empty-sync guard (nothing written), `failed` (rolled back, the
error kept) or `skipped` (another pass holds the tenant).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine

from mspbyte_dagster.lib.adapters.snapshot_files import Snapshot
from mspbyte_dagster.lib.alerts import AlertManager, AlertOutcome, duplicate_open_fingerprints
from mspbyte_dagster.lib.analysis.unified import Analysis, UnifiedAnalyzer
from mspbyte_dagster.lib.comparison import PathOutputs, compare, path_outputs
from mspbyte_dagster.lib.context import DataContextLoader, TenantContext
from mspbyte_dagster.lib.entities import process_entities
from mspbyte_dagster.lib.flags import FLAG_DEFAULTS, FeatureFlagManager
from mspbyte_dagster.lib.guard import guard_counts, hold_reason
from mspbyte_dagster.lib.legacy import LegacyAlertWriter, LegacyAnalyzers, LegacyContextLoader, LegacyLinker
from mspbyte_dagster.lib.linking import Microsoft365Linker
from mspbyte_dagster.lib.model import STAGES
from mspbyte_dagster.lib.snapshots import load_snapshot
from mspbyte_dagster.lib.store import ledger
from mspbyte_dagster.lib.store import tenants as tenant_store
from mspbyte_dagster.lib.store.findings import load_findings, replace_findings
from mspbyte_dagster.lib.store.lease import LeaseUnavailable, process_name, tenant_lease
from mspbyte_dagster.lib.store.query_stats import QueryStats, measuring, module
from mspbyte_dagster.lib.store.retention import Retention, prune_tenant

log = logging.getLogger(__name__)

PATH_STAGES = STAGES[2:]  # the stages with a legacy and a new implementation
COMPARISON = "comparison_report"
ASSETS = (*STAGES, COMPARISON)
# The path each stage's flag selects: off runs the legacy query pattern (new_pipeline off: all of them).
STAGE_FLAGS = {
    "tenant_context": "batch_loading",
    "relationships": "batch_loading",
    "findings": "unified_analyzer",
    "alerts": "alert_manager",
}


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
    flags: FeatureFlagManager = field(default_factory=lambda: FeatureFlagManager(FLAG_DEFAULTS))
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    # Graph-backed tenants: fetch a new snapshot before the pass transaction (figures, or None for files mode).
    refresh_snapshot: Callable[[Engine, str], dict | None] | None = None
    compare: bool = False  # run both paths whatever comparison_mode says (`mspbyte compare`)
    read_only: bool = False  # the whole pass rolled back, no ledger row (`mspbyte compare` outside Dagster)
    retention: Retention = field(default_factory=Retention)

    def paths(self, tenant: str) -> dict[str, str]:
        """Per stage, "new" or "legacy" for this tenant, as the flags decide."""
        whole = self.flags.is_enabled("new_pipeline", tenant)
        return {
            stage: "new" if whole and self.flags.is_enabled(flag, tenant) else "legacy"
            for stage, flag in STAGE_FLAGS.items()
        }


@dataclass
class PassState:
    """What the stages of one pass share."""

    conn: Connection
    tenant: str
    data_source_id: int
    snapshot_id: int
    options: PassOptions
    ledger_id: int | None = None
    paths: dict[str, str] = field(default_factory=dict)
    snapshot: Snapshot | None = None
    guard: dict = field(default_factory=dict)
    checks: dict[str, CheckOutcome] = field(default_factory=dict)
    context: TenantContext | None = None
    analysis: Analysis | None = None
    alert_outcome: AlertOutcome | None = None


@dataclass(frozen=True)
class CheckOutcome:
    """One per-tenant check's result: shown in Dagster as an asset check evaluation."""

    passed: bool
    description: str
    metadata: dict = field(default_factory=dict)


@dataclass
class TenantPass:
    """How one tenant's pass ended, with per stage the figures shown in the UI."""

    tenant: str
    status: str = "running"
    reason: str | None = None
    stages: dict[str, dict] = field(default_factory=dict)
    guard: dict = field(default_factory=dict)
    checks: dict[str, CheckOutcome] = field(default_factory=dict)
    comparison: dict | None = None
    queries: int = 0
    slow_queries: int = 0
    duration_ms: int = 0


def snapshot_stage(state: PassState) -> dict:
    """Read the tenant's current snapshot and check it against the empty-sync guard."""
    current = tenant_store.current_snapshot(state.conn, state.tenant)
    state.snapshot = load_snapshot(state.conn, state.tenant, current.snapshot_id)
    counts = guard_counts(state.snapshot)
    baseline = ledger.guard_baseline(state.conn, state.tenant)
    state.guard = {"counts": counts, "baseline": baseline, "held": hold_reason(baseline, counts)}
    state.checks["empty_sync_guard"] = CheckOutcome(
        passed=not state.guard["held"],
        description=state.guard["held"] or "no sudden drop against the last successful pass",
        metadata={"counts": counts, "baseline": baseline},
    )
    return {
        "snapshot": current.seq,
        "captured_at": state.snapshot.tenant["capturedAt"],
        "counts": state.snapshot.counts(),
        "missing_files": state.snapshot.missing(),
        "incomplete_sources": state.snapshot.incomplete(),
        "flags": state.options.flags.tenant_values(state.tenant),
        "paths": state.paths,
    }


def entities_stage(state: PassState) -> dict:
    counts = process_entities(state.conn, state.tenant, state.data_source_id, state.snapshot, state.snapshot_id)
    tenant_store.mark_processed(state.conn, state.tenant, state.data_source_id, state.snapshot_id)
    return counts.as_json()


def _loader(state: PassState):
    return DataContextLoader if state.paths["tenant_context"] == "new" else LegacyContextLoader


def context_stage(state: PassState) -> dict:
    """Load the context: new, a constant number of queries; legacy, one per entity."""
    state.context = None
    context = _context(state)
    return {
        "path": state.paths["tenant_context"],
        "entities": context.entity_counts(),
        "admins": len(context.admins),
        "inputs_read": sorted(context.header.complete),
    }


def _context(state: PassState) -> TenantContext:
    """The pass's context: loaded once per pass (a stage run alone loads it: a few queries, nothing kept)."""
    if state.context is None:
        loader = _loader(state)
        with module(loader.__name__):
            state.context = loader(state.conn).load(state.tenant)
    return state.context


def relationships_stage(state: PassState) -> dict:
    linker = Microsoft365Linker if state.paths["relationships"] == "new" else LegacyLinker
    with module(linker.__name__):
        counts = linker(state.conn).link(_context(state), state.options.now())
    return {"path": state.paths["relationships"]} | counts.as_json()


def findings_stage(state: PassState) -> dict:
    context = _context(state)
    if state.paths["findings"] == "new":
        with module(UnifiedAnalyzer.__name__):
            state.analysis = UnifiedAnalyzer().analyze(context)
    else:
        with module(LegacyAnalyzers.__name__):
            state.analysis = LegacyAnalyzers(state.conn).analyze(context)
    with module("FindingsStore"):
        replace_findings(state.conn, state.tenant, state.data_source_id, state.analysis, state.ledger_id)
    orphans = sorted(
        {
            f"{f.entity_type}:{f.entity_id}"
            for f in state.analysis.findings
            if (f.entity_type, f.entity_id) not in context.entity_ids
        }
    )
    state.checks["finding_entities_exist"] = CheckOutcome(
        passed=not orphans,
        description=f"{len(orphans)} finding(s) name an entity the context lacks"
        if orphans
        else "every finding's entity is in the context",
        metadata={"missing": orphans[:50]},
    )
    return {"path": state.paths["findings"]} | state.analysis.summary()


def alerts_stage(state: PassState) -> dict:
    context = _context(state)
    analysis = state.analysis or load_findings(state.conn, state.tenant)
    writer = AlertManager if state.paths["alerts"] == "new" else LegacyAlertWriter
    with module(writer.__name__):
        outcome = writer(state.conn).apply(context, analysis, state.options.now(), state.options.run_id)
    state.alert_outcome = outcome
    with module("AlertChecks"):
        doubles = duplicate_open_fingerprints(state.conn, state.tenant)
    state.checks["one_open_alert_per_fingerprint"] = CheckOutcome(
        passed=not doubles,
        description=f"{len(doubles)} fingerprint(s) with more than one open alert"
        if doubles
        else "no two open alerts share a fingerprint",
        metadata={"duplicates": doubles[:50]},
    )
    return {"path": state.paths["alerts"]} | outcome.as_json() | {"new_alerts_markdown": outcome.new_alerts}


STAGE_FUNCTIONS: dict[str, Callable[[PassState], dict]] = {
    "m365_snapshot": snapshot_stage,
    "entities": entities_stage,
    "tenant_context": context_stage,
    "relationships": relationships_stage,
    "findings": findings_stage,
    "alerts": alerts_stage,
}


def _run_stage(state: PassState, stage: str, stats: QueryStats) -> dict:
    """One stage, with its statements, slow statements and milliseconds added to its figures."""
    started, before, slow_before = time.perf_counter(), stats.total, len(stats.slow)
    with module(stage):
        figures = STAGE_FUNCTIONS[stage](state)
    return figures | {
        "queries": stats.total - before,
        "slow_queries": len(stats.slow) - slow_before,
        "milliseconds": round((time.perf_counter() - started) * 1000),
    }


def _shadow_outputs(state: PassState, stats: QueryStats) -> PathOutputs:
    """The path the flags did not select, run inside a SAVEPOINT that is rolled back."""
    kind = "legacy" if "new" in state.paths.values() else "new"
    shadow = replace(
        state,
        paths=dict.fromkeys(PATH_STAGES, kind),
        context=None,
        analysis=None,
        alert_outcome=None,
        checks={},
    )
    with state.conn.begin_nested() as savepoint:
        figures = [_run_stage(shadow, stage, stats) for stage in PATH_STAGES]
        outputs = path_outputs(state.conn, shadow.context, shadow.analysis, shadow.alert_outcome, shadow.paths)
        savepoint.rollback()
    outputs.queries = sum(f["queries"] for f in figures)
    outputs.milliseconds = sum(f["milliseconds"] for f in figures)
    return outputs


def _comparison(state: PassState, shadow: PathOutputs, done: dict[str, dict]) -> dict:
    primary = path_outputs(state.conn, state.context, state.analysis, state.alert_outcome, state.paths)
    primary.queries = sum(done[s]["queries"] for s in PATH_STAGES)
    primary.milliseconds = sum(done[s]["milliseconds"] for s in PATH_STAGES)
    legacy, new = (shadow, primary) if "legacy" in shadow.paths.values() else (primary, shadow)
    return compare(state.tenant, legacy, new)


def _run_stages(state: PassState, stages: tuple[str, ...], result: TenantPass, stats: QueryStats) -> None:
    needed = stages if "m365_snapshot" in stages else ("m365_snapshot", *stages)
    comparing = (state.options.compare or state.options.flags.is_enabled("comparison_mode", state.tenant)) and all(
        stage in needed for stage in PATH_STAGES
    )
    shadow, done = None, {}
    for stage in STAGES:
        if stage not in needed:
            continue
        if stage != "m365_snapshot" and state.guard.get("held"):
            raise TenantHeld(state.guard["held"])
        if comparing and stage == PATH_STAGES[0]:
            shadow = _shadow_outputs(state, stats)
        done[stage] = _run_stage(state, stage, stats)
        if stage in stages:
            result.stages[stage] = done[stage]
        result.guard = state.guard
        result.checks = dict(state.checks)
    if shadow is not None:
        result.comparison = _comparison(state, shadow, done)
        if COMPARISON in stages:
            result.stages[COMPARISON] = result.comparison


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


def run_tenant_pass(engine: Engine, tenant: str, stages: tuple[str, ...], options: PassOptions) -> TenantPass:
    """Run the selected stages for one tenant; never raises for the tenant's own failure."""
    result = TenantPass(tenant)
    stats = QueryStats(
        slow_threshold_ms=options.slow_query_threshold_ms,
        timed=options.flags.is_enabled("performance_monitoring", tenant),
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
                    if options.refresh_snapshot and "m365_snapshot" in stages:  # Graph HTTP, outside any transaction
                        fetched = options.refresh_snapshot(engine, tenant)
                    with engine.connect() as conn, conn.begin() as transaction:
                        state = _open_pass(conn, tenant, options, ledger_id)
                        _run_stages(state, stages, result, stats)
                        if options.read_only:
                            transaction.rollback()
                    result.status = "succeeded"
                    if not options.read_only:
                        _prune(engine, tenant, options.retention)
                except TenantHeld as held:
                    result.status, result.reason = "held", str(held)
                finally:
                    lease["released_at"] = datetime.now(UTC).isoformat()
                    if fetched and "m365_snapshot" in result.stages:
                        result.stages["m365_snapshot"] |= fetched
        except LeaseUnavailable as busy:
            result.status, result.reason = "skipped", str(busy)
        except Exception as error:  # the tenant fails alone; its transaction was rolled back
            result.status, result.reason = "failed", f"{type(error).__name__}: {error}"
            result.stages = {}  # rolled back: no stage of this tenant counts as done
        result.duration_ms = round((time.perf_counter() - clock) * 1000)
        # read before the ledger's own write (and SQLite's BEGIN) adds to them
        result.queries, result.slow_queries, query_stats = stats.total, len(stats.slow), stats.as_json()
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
                stages=result.stages,
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
    return result
