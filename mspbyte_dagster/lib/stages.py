"""The stages of a tenant pass, each over the state the pass's stages share; new or legacy path as the
flags chose."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial

from mspbyte_dagster.lib.adapters.microsoft365.analysis.unified import UnifiedAnalyzer
from mspbyte_dagster.lib.adapters.microsoft365.linking import Microsoft365Linker
from mspbyte_dagster.lib.alerts import AlertManager
from mspbyte_dagster.lib.context import DataContextLoader, TenantContext
from mspbyte_dagster.lib.entities import process_entities
from mspbyte_dagster.lib.legacy import LegacyAlertWriter, LegacyAnalyzers, LegacyContextLoader, LegacyLinker
from mspbyte_dagster.lib.model import Analysis
from mspbyte_dagster.lib.notify.routing import AlertAnnouncer
from mspbyte_dagster.lib.passes import REPORT, SOURCE_STAGES, CheckOutcome, PassState, SourceRead, guard_check
from mspbyte_dagster.lib.reports.posture import posture
from mspbyte_dagster.lib.snapshots import load_snapshot
from mspbyte_dagster.lib.store import ledger, reports
from mspbyte_dagster.lib.store import tenants as tenant_store
from mspbyte_dagster.lib.store.alert_store import open_alerts
from mspbyte_dagster.lib.store.alert_writes import duplicate_open_fingerprints
from mspbyte_dagster.lib.store.findings import load_findings, replace_findings
from mspbyte_dagster.lib.store.query_stats import QueryStats, module


def snapshot_stage(state: PassState) -> dict:
    """Read the tenant's current Microsoft 365 snapshot and check it against the empty-sync guard."""
    current = tenant_store.current_snapshot(state.conn, state.tenant)
    state.snapshot = load_snapshot(state.conn, state.tenant, current.snapshot_id)
    counts, baseline, held = _guarded(state, state.snapshot)
    state.guard = {"counts": counts, "baseline": baseline, "held": held}
    return _snapshot_figures(current.seq, state.snapshot, held) | {
        "flags": state.options.flags.tenant_values(state.tenant),
        "paths": state.paths,
    }


def source_snapshot_stage(state: PassState, stage: str) -> dict:
    """Another integration's snapshot, when the tenant has a data source of it, under its own guard: held,
    its entities are not written (its rules' alerts stay as they are) and the tenant's other sources go on."""
    integration = SOURCE_STAGES[stage]
    current = tenant_store.current_snapshot(state.conn, state.tenant, integration.name)
    if current is None:
        return {"data_source": None}  # the tenant has no data source of this integration
    snapshot = load_snapshot(state.conn, state.tenant, current.snapshot_id)
    counts, baseline, held = _guarded(state, snapshot)
    state.sources[stage] = SourceRead(integration, current.data_source_id, current.snapshot_id, snapshot, held)
    # a held source's previous figures stay the baseline: its drop is never accepted by a later pass
    kept = {measure: (baseline or {}).get(measure) for measure in counts} if held else counts
    state.guard["counts"] = (state.guard.get("counts") or {}) | kept
    return {"data_source": integration.source_id} | _snapshot_figures(current.seq, snapshot, held)


def _guarded(state: PassState, snapshot) -> tuple[dict, dict | None, str | None]:
    """A snapshot's guard measures, their baseline (the measures' names differ between integrations, so
    one ledger row keeps them all) and why it is held; recorded as the source's guard check."""
    integration = snapshot.integration
    counts = integration.guard_counts(snapshot)
    baseline = ledger.guard_baseline(state.conn, state.tenant)
    held = integration.hold_reason(baseline, counts)
    state.checks[guard_check(integration)] = CheckOutcome(
        passed=not held,
        description=held or "no sudden drop against the last successful pass",
        metadata={"counts": counts, "baseline": baseline},
    )
    return counts, baseline, held


def _snapshot_figures(seq: int, snapshot, held: str | None) -> dict:
    return {
        "snapshot": seq,
        "captured_at": snapshot.tenant["capturedAt"],
        "counts": snapshot.counts(),
        "missing_files": snapshot.missing(),
        "incomplete_sources": snapshot.incomplete(),
        # a held snapshot is materialized as held: the UI shows it, and nothing of it is written
        "held": bool(held),
        "held_reason": held or "",
    }


def entities_stage(state: PassState) -> dict:
    counts = process_entities(state.conn, state.tenant, state.data_source_id, state.snapshot, state.snapshot_id)
    tenant_store.mark_processed(state.conn, state.tenant, state.data_source_id, state.snapshot_id)
    others = {}
    for source in state.sources.values():
        name = source.integration.source_id
        if source.held:
            others[name] = {"held": source.held}
            continue
        written = process_entities(state.conn, state.tenant, source.data_source_id, source.snapshot, source.snapshot_id)
        tenant_store.mark_processed(state.conn, state.tenant, source.data_source_id, source.snapshot_id)
        others[name] = written.as_json()
    return counts.as_json() | ({"other_sources": others} if others else {})


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
    """The pass's context: loaded once per pass (a stage run alone loads it: a few queries, nothing kept),
    from the entities the new linker read, when it ran before in the pass."""
    if state.context is None:
        loader = _loader(state)
        rows, state.entity_rows = state.entity_rows, None
        with module(loader.__name__):
            if loader is DataContextLoader:
                state.context = loader(state.conn).load(state.tenant, rows)
            else:
                state.context = loader(state.conn).load(state.tenant)
    return state.context


def relationships_stage(state: PassState) -> dict:
    linker = Microsoft365Linker if state.paths["relationships"] == "new" else LegacyLinker
    with module(linker.__name__):
        linking = linker(state.conn)
        counts = linking.link(state.tenant, state.data_source_id)
    if isinstance(linking, Microsoft365Linker):
        state.entity_rows = linking.rows
    others = {}
    for source in state.sources.values():  # a new integration has the new path only
        linker = source.integration.linker
        if linker is None or source.held:
            continue
        with module(linker.__name__):
            linked = linker(state.conn).link(state.tenant, source.data_source_id)
        others[source.integration.source_id] = linked.as_json()
    return {"path": state.paths["relationships"]} | counts.as_json() | ({"other_sources": others} if others else {})


def with_other_sources(analysis: Analysis, context: TenantContext) -> Analysis:
    """The path's analysis and the other integrations' rules (a new integration has the new path only)."""
    for integration in SOURCE_STAGES.values():
        for analyse in integration.analyses:
            with module(integration.name):
                found, evaluated = analyse(context)
            analysis = Analysis([*analysis.findings, *found], [*analysis.evaluations, *evaluated])
    return analysis


def findings_stage(state: PassState) -> dict:
    context = _context(state)
    if state.paths["findings"] == "new":
        with module(UnifiedAnalyzer.__name__):
            state.analysis = UnifiedAnalyzer().analyze(context)
    else:
        with module(LegacyAnalyzers.__name__):
            state.analysis = LegacyAnalyzers(state.conn).analyze(context)
    state.analysis = with_other_sources(state.analysis, context)
    with module("FindingsStore"):
        replace_findings(state.conn, state.tenant, state.data_source_id, state.analysis, state.ledger_id)
    orphans = sorted(
        {
            f"{f.entity_type}:{f.entity_id}"
            for f in state.analysis.findings
            if (f.entity_type, f.entity_id) not in context.entity_ids
        }
    )
    state.checks["finding_entities_exist"] = CheckOutcome.listing(
        orphans, "finding(s) name an entity the context lacks", "every finding's entity is in the context", "missing"
    )
    return {"path": state.paths["findings"]} | state.analysis.summary() | {"posture": posture(context, state.analysis)}


OPEN_ALERTS_SHOWN = 100  # rows of the open-alerts table in the UI; the rest are counted


def alerts_stage(state: PassState) -> dict:
    context = _context(state)
    analysis = state.analysis or load_findings(state.conn, state.tenant)
    writer = AlertManager if state.paths["alerts"] == "new" else LegacyAlertWriter
    now, run_id = state.options.now(), state.options.run_id
    with module("Outbox"):
        announcer = AlertAnnouncer.before_writing(state.conn, state.tenant)
    with module(writer.__name__):
        outcome = writer(state.conn).apply(context, analysis, now, run_id)
    state.alert_outcome = outcome
    with module("Outbox"):  # in the pass's transaction: a pass that rolls back announces nothing
        queued = announcer.queue(state.conn, run_id, now)
    with module("AlertChecks"):
        doubles = duplicate_open_fingerprints(state.conn, state.tenant)
        table, still_open = open_alerts(state.conn, state.tenant, OPEN_ALERTS_SHOWN)  # the UI's table
    state.checks["one_open_alert_per_fingerprint"] = CheckOutcome.listing(
        doubles, "fingerprint(s) with more than one open alert", "no two open alerts share a fingerprint", "duplicates"
    )
    shown = {
        "open_alerts_table": table,
        "open_alerts_not_shown": still_open - len(table),
    }
    announced = {"notifications_queued": queued}
    return (
        {"path": state.paths["alerts"]}
        | outcome.as_json()
        | {"new_alerts_markdown": outcome.new_alerts}
        | announced
        | shown
    )


def report_stage(state: PassState) -> dict:
    """The customer report (HTML, CSV, XLSX), kept in the app database with the tenant's newest ones.
    Imported here: pandas and what it brings are 80 MB of every process that renders no report."""
    from mspbyte_dagster.lib.reports.tenant import build_report, render

    now = state.options.now()
    with module("TenantReport"):
        report = build_report(state.conn, state.tenant, reports.tenant_name(state.conn, state.tenant), now)
        figures = report.figures()
        files = render(report, figures)
        report_id = reports.save_report(
            state.conn,
            state.tenant,
            files,
            figures,
            state.options.retention.snapshots,
            created_at=now,
            run_id=state.options.run_id,
        )
    sizes = {f"{kind}_kb": round(len(content) / 1024, 1) for kind, content in files.items()}
    return {"report_id": report_id} | figures | sizes


STAGE_FUNCTIONS: dict[str, Callable[[PassState], dict]] = {
    "m365_snapshot": snapshot_stage,
    **{stage: partial(source_snapshot_stage, stage=stage) for stage in SOURCE_STAGES},
    "entities": entities_stage,
    "tenant_context": context_stage,
    "relationships": relationships_stage,
    "findings": findings_stage,
    "alerts": alerts_stage,
    REPORT: report_stage,
}


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cycle collector off while a pass (or a stage run alone) builds its rows and maps: each
    full collection rescans every live object, and reading 10,000 users' records set off enough of them
    to triple the read (0.5 s against 0.15 s). The rows and maps hold no cycles; what the pass leaves is
    collected after it, once its state is gone."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def run_stage(state: PassState, stage: str, stats: QueryStats) -> dict:
    """One stage, with its statements, slow statements and milliseconds added to its figures."""
    started, before, slow_before = time.perf_counter(), stats.total, len(stats.slow)
    with module(stage), collector_paused():
        figures = STAGE_FUNCTIONS[stage](state)
    return figures | {
        "queries": stats.total - before,
        "slow_queries": len(stats.slow) - slow_before,
        "milliseconds": round((time.perf_counter() - started) * 1000),
    }
