"""`mspbyte bench`: the new and the legacy query patterns, side by side, on the same tenants.

Each path runs its stages (linking, context, analysis, alerts) from the same
starting point (entities written, no edges, no alerts) inside a transaction
that is rolled back, on a scratch database of the configured kind, so the
figures are comparable and the configured database is never touched.
"""

from __future__ import annotations

import gc
import resource
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from statistics import median

from sqlalchemy import Connection, Engine, MetaData, func, select, text
from sqlalchemy.engine import make_url

from mspbyte_dagster.lib.adapters.microsoft365.analysis.unified import UnifiedAnalyzer
from mspbyte_dagster.lib.adapters.microsoft365.linking import Microsoft365Linker
from mspbyte_dagster.lib.alerts import AlertManager
from mspbyte_dagster.lib.context import DataContextLoader, edges_query, header_query, live_entities_query, tenant_header
from mspbyte_dagster.lib.legacy import LegacyAlertWriter, LegacyAnalyzers, LegacyContextLoader, LegacyLinker
from mspbyte_dagster.lib.onboarding import import_folders
from mspbyte_dagster.lib.passes import SOURCE_STAGES
from mspbyte_dagster.lib.pipeline import PassOptions, run_tenant_pass
from mspbyte_dagster.lib.snapshots import load_snapshot
from mspbyte_dagster.lib.stages import collector_paused, with_other_sources
from mspbyte_dagster.lib.store import tenants as tenant_store
from mspbyte_dagster.lib.store.bulk import batched_rows, bulk_insert
from mspbyte_dagster.lib.store.db import engine_for, upgrade
from mspbyte_dagster.lib.store.findings import replace_findings
from mspbyte_dagster.lib.store.query_stats import QueryStats, measuring
from mspbyte_dagster.lib.store.schema import alerts, snapshot_files
from mspbyte_dev.stack import postgres_database
from mspbyte_dev.synthetic import write_snapshots
from mspbyte_dev.synthetic.sophos import write_sophos_snapshots

BENCH_STAGES = ("linking", "source_linking", "context", "analysis", "alerts")
# Tracing memory slows each statement; the legacy path sends one per entity and edge.
LEGACY_TRACED_USERS = 2_000
PATHS = {
    "new": (DataContextLoader, Microsoft365Linker, lambda conn: UnifiedAnalyzer(), AlertManager),
    "legacy": (LegacyContextLoader, LegacyLinker, LegacyAnalyzers, LegacyAlertWriter),
}


@contextmanager
def scratch_database(configured_url: str) -> Iterator[tuple[Engine, str]]:
    """A fresh database of the configured kind (a temporary file, or a new PostgreSQL database)."""
    url = make_url(configured_url)
    if url.get_backend_name() == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            engine = engine_for(f"sqlite:///{Path(folder) / 'bench.db'}")
            yield engine, "sqlite"
            engine.dispose()
        return
    with postgres_database(configured_url, f"mspbyte_bench_{uuid.uuid4().hex[:8]}") as scratch:
        engine = engine_for(scratch)
        try:
            yield engine, "postgresql"
        finally:
            engine.dispose()


def _measure(step: Callable[[], object], stats: QueryStats, with_memory: bool) -> tuple[object, dict]:
    before = stats.total
    if with_memory:
        tracemalloc.start()
    started = time.perf_counter()
    value = step()
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] / 2**20 if with_memory else None
    if with_memory:
        tracemalloc.stop()
    return value, {"queries": stats.total - before, "seconds": seconds, "peak_mb": peak}


def _run_path(conn: Connection, tenant: str, path: str, with_memory: bool) -> tuple[dict[str, dict], float]:
    """The path's stages with the cycle collector paused throughout, as a pass runs them, and the seconds
    of the collection that turning it back on sets off once their objects are gone (the youngest
    generation's: what the pass pays after; at 10,000 users it finds nothing to free)."""
    with collector_paused():
        figures = _path_stages(conn, tenant, path, with_memory)
    started = time.perf_counter()
    gc.collect(0)
    return figures, time.perf_counter() - started


def _path_stages(conn: Connection, tenant: str, path: str, with_memory: bool) -> dict[str, dict]:
    loader, linker, analyzer, writer = PATHS[path]
    stats, now, figures = QueryStats(timed=False), datetime.now(UTC), {}
    source = tenant_header(conn.execute(header_query(tenant)).one()).data_source_id
    linking = linker(conn)
    with measuring(stats):
        _, figures["linking"] = _measure(lambda: linking.link(tenant, source), stats, with_memory)
        _, figures["source_linking"] = _measure(lambda: _link_other_sources(conn, tenant), stats, with_memory)
        # as a pass loads it: the new path from the entities its linker read
        load = (lambda: loader(conn).load(tenant, linking.rows)) if path == "new" else lambda: loader(conn).load(tenant)
        context, figures["context"] = _measure(load, stats, with_memory)

        def analyse():
            analysis = with_other_sources(analyzer(conn).analyze(context), context)
            replace_findings(conn, tenant, context.header.data_source_id, analysis, None)
            return analysis

        analysis, figures["analysis"] = _measure(analyse, stats, with_memory)
        _, figures["alerts"] = _measure(lambda: writer(conn).apply(context, analysis, now, None), stats, with_memory)
    return figures


def _link_other_sources(conn: Connection, tenant: str) -> None:
    """The other integrations' linkers (the new path only: they have no legacy one)."""
    for integration in SOURCE_STAGES.values():
        current = tenant_store.current_snapshot(conn, tenant, integration.name)
        if current is not None and integration.linker is not None:
            integration.linker(conn).link(tenant, current.data_source_id)


def _floor_seconds(conn: Connection, tenant: str, source: int) -> float:
    """The physical floor of a pass, on the state the path just wrote: read the tenant's entity and edge
    rows raw, and write its alerts again in one bulk statement (into a temporary table of their shape)."""
    scratch = alerts.to_metadata(MetaData(), name="floor_alerts")
    conn.execute(text("CREATE TEMPORARY TABLE floor_alerts AS SELECT * FROM alerts WHERE 1 = 0"))
    written = [dict(row) for row in conn.execute(select(alerts).where(alerts.c.tenant == tenant)).mappings()]
    started = time.perf_counter()
    with collector_paused():  # as the path's stages run
        list(batched_rows(conn.execute(live_entities_query(tenant, source))))
        list(batched_rows(conn.execute(edges_query(tenant, source))))
        bulk_insert(conn, scratch, written)
    seconds = time.perf_counter() - started
    conn.execute(text("DROP TABLE floor_alerts"))
    return seconds


def _vacuum(engine: Engine) -> None:
    """Clears what a rolled-back run left in PostgreSQL's indexes, so each repeat starts as the first
    did (tens of thousands of dead edge entries would slow the next run's inserts)."""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM"))


def _path_figures(engine: Engine, tenants: list[str], path: str, repeat: int) -> dict:
    """Per stage, queries and seconds summed over the tenants, `repeat` times (each tenant rolled back
    after); and for the new path the floor, measured in the same runs."""
    totals = {stage: {"queries": 0, "seconds": [], "peak_mb": None} for stage in BENCH_STAGES}
    floors, collections = [], []
    for _ in range(repeat):
        seconds = dict.fromkeys(BENCH_STAGES, 0.0)
        floor = collection = 0.0
        for tenant in tenants:
            with engine.connect() as conn:
                transaction = conn.begin()
                figures, collected = _run_path(conn, tenant, path, False)
                collection += collected
                if path == "new":
                    source = tenant_header(conn.execute(header_query(tenant)).one()).data_source_id
                    floor += _floor_seconds(conn, tenant, source)
                transaction.rollback()
            for stage, measured in figures.items():
                seconds[stage] += measured["seconds"]
                totals[stage]["queries"] = measured["queries"]  # the same every time
        for stage in BENCH_STAGES:
            totals[stage]["seconds"].append(seconds[stage])
        floors.append(floor)
        collections.append(collection)
        _vacuum(engine)
    runs = zip(*(totals[s]["seconds"] for s in BENCH_STAGES), collections, strict=True)
    path_seconds = [sum(run) for run in runs]
    return {"stages": totals, "total_seconds": path_seconds, "floor_seconds": floors, "collector_seconds": collections}


def _traced_peaks(engine: Engine, tenants: list[str], path: str, stages: dict[str, dict]) -> None:
    """Each stage's largest traced peak over the tenants, from a run of its own (tracing slows every
    allocation, and its traces weigh on the process's RSS: it comes after every timed run)."""
    for tenant in tenants:
        with engine.connect() as conn:
            transaction = conn.begin()
            figures, _ = _run_path(conn, tenant, path, True)
            transaction.rollback()
        for stage, measured in figures.items():
            stages[stage]["peak_mb"] = max(stages[stage]["peak_mb"] or 0, measured["peak_mb"])


def _max_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def run_bench(
    configured_url: str,
    users: int,
    tenants: int,
    seed: int = 1,
    with_memory: bool = True,
    legacy: bool = True,
    options: PassOptions | None = None,
    repeat: int = 3,
    sources: list[str] | None = None,
) -> dict:
    """`options`: the pass options the settings make (Settings.pass_options); the defaults without.
    Each path runs `repeat` times; seconds are medians, with their spread (min, max)."""
    with scratch_database(configured_url) as (engine, kind), tempfile.TemporaryDirectory() as folder:
        upgrade(engine)
        folders = write_snapshots(Path(folder) / "synth", tenants, users, seed)
        if "sophos" in (sources or ()):  # as many endpoints as users
            folders += write_sophos_snapshots(Path(folder) / "synth", tenants, users, seed)
        started = time.perf_counter()
        imported = import_folders(engine, folders)
        keys = sorted({item.tenant for item in imported})
        snapshots = _snapshot_figures(engine, imported, time.perf_counter() - started)
        for key in keys:
            run_tenant_pass(engine, key, ("m365_snapshot", *SOURCE_STAGES, "entities"), options or PassOptions())
        trace_legacy = with_memory and users <= LEGACY_TRACED_USERS
        chosen = PATHS if legacy else ("new",)
        paths = {path: _path_figures(engine, keys, path, repeat) for path in chosen}
        untraced_rss = _max_rss_mb()
        for path in chosen if with_memory else ():
            if path == "new" or trace_legacy:
                _traced_peaks(engine, keys, path, paths[path]["stages"])
    stages = {}
    for stage in BENCH_STAGES:
        new, old = paths["new"]["stages"][stage], paths.get("legacy", {}).get("stages", {}).get(stage)
        stages[stage] = {
            "new": _rounded(new),
            "legacy": _rounded(old) if old else None,
            "ratio": {
                "queries": round(old["queries"] / max(new["queries"], 1), 1),
                "seconds": round(median(old["seconds"]) / max(median(new["seconds"]), 1e-6), 1),
            }
            if old
            else None,
        }
    new_totals, floors = paths["new"]["total_seconds"], paths["new"]["floor_seconds"]
    result = {
        "database": kind,
        "users": users,
        "tenants": tenants,
        "repeat": repeat,
        "snapshots": snapshots,
        "stages": stages,
        "new_total_seconds": round(
            sum(median(paths["new"]["stages"][s]["seconds"]) for s in BENCH_STAGES)
            + median(paths["new"]["collector_seconds"]),
            3,
        ),
        "collector_seconds": round(median(paths["new"]["collector_seconds"]), 3),
        "new_total_seconds_median": round(median(new_totals), 3),
        "new_total_seconds_spread": [round(min(new_totals), 3), round(max(new_totals), 3)],
        "floor_seconds": round(median(floors), 3),
        "ratio_to_floor": round(median(new_totals) / max(median(floors), 1e-6), 2),
        # the process's peak before any traced run, and after them (tracemalloc's traces included)
        "process_max_rss_mb": untraced_rss,
        "traced_process_max_rss_mb": _max_rss_mb() if with_memory else None,
    }
    if legacy and with_memory and not trace_legacy:
        result["legacy_peak_mb_not_measured"] = (
            f"the legacy path is traced up to {LEGACY_TRACED_USERS:,} users: above, tracing its one statement "
            "per entity and edge takes many minutes and changes no budget"
        )
    return result


def _snapshot_figures(engine: Engine, imported: list, import_seconds: float) -> dict:
    """What keeping snapshots in the app database costs: import, storage, and reading one back."""
    with engine.connect() as conn:
        raw, stored = conn.execute(
            select(func.sum(snapshot_files.c.size), func.sum(func.length(snapshot_files.c.content)))
        ).one()
        started = time.perf_counter()
        for item in imported:
            load_snapshot(conn, item.tenant, item.snapshot_id)
        load_seconds = (time.perf_counter() - started) / len(imported)
    return {
        "import_seconds": round(import_seconds, 3),
        "raw_mb": round(raw / 2**20, 2),
        "stored_mb": round(stored / 2**20, 2),
        "load_seconds_per_tenant": round(load_seconds, 3),
    }


def _rounded(figures: dict) -> dict:
    peak, seconds = figures["peak_mb"], figures["seconds"]
    return {
        "queries": figures["queries"],
        "seconds": round(median(seconds), 3),
        "spread": [round(min(seconds), 3), round(max(seconds), 3)],
        "peak_mb": round(peak, 1) if peak is not None else None,
    }
