"""`mspbyte bench`: the new and the legacy query patterns, side by side, on the same tenants.

Each path runs its stages (context, linking, analysis, alerts) from the same
starting point (entities written, no edges, no alerts) inside a transaction
that is rolled back, on a scratch database of the configured kind, so the
figures are comparable and the configured database is never touched.
"""

from __future__ import annotations

import resource
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, func, select, text
from sqlalchemy.engine import make_url

from mspbyte_dagster.lib.alerts import AlertManager
from mspbyte_dagster.lib.analysis.unified import UnifiedAnalyzer
from mspbyte_dagster.lib.context import DataContextLoader
from mspbyte_dagster.lib.legacy import LegacyAlertWriter, LegacyAnalyzers, LegacyContextLoader, LegacyLinker
from mspbyte_dagster.lib.linking import Microsoft365Linker
from mspbyte_dagster.lib.onboarding import import_folders
from mspbyte_dagster.lib.pipeline import PassOptions, run_tenant_pass
from mspbyte_dagster.lib.snapshots import load_snapshot
from mspbyte_dagster.lib.store.db import engine_for, upgrade
from mspbyte_dagster.lib.store.findings import replace_findings
from mspbyte_dagster.lib.store.query_stats import QueryStats, measuring
from mspbyte_dagster.lib.store.schema import snapshot_files
from mspbyte_dev.synthetic import write_snapshots

BENCH_STAGES = ("context", "linking", "analysis", "alerts")
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
    name = f"mspbyte_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = engine_for(url.set(database=name).render_as_string(hide_password=False))
    try:
        yield engine, "postgresql"
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


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


def _run_path(conn: Connection, tenant: str, path: str, with_memory: bool) -> dict[str, dict]:
    loader, linker, analyzer, writer = PATHS[path]
    stats, now, figures = QueryStats(timed=False), datetime.now(UTC), {}
    with measuring(stats):
        context, figures["context"] = _measure(lambda: loader(conn).load(tenant), stats, with_memory)
        _, figures["linking"] = _measure(lambda: linker(conn).link(context, now), stats, with_memory)

        def analyse():
            analysis = analyzer(conn).analyze(context)
            replace_findings(conn, tenant, context.header.data_source_id, analysis, None)
            return analysis

        analysis, figures["analysis"] = _measure(analyse, stats, with_memory)
        _, figures["alerts"] = _measure(lambda: writer(conn).apply(context, analysis, now, None), stats, with_memory)
    return figures


def _path_figures(engine: Engine, tenants: list[str], path: str, with_memory: bool) -> dict[str, dict]:
    """Sum of queries and seconds over the tenants, largest peak; each tenant rolled back after."""
    total = {stage: {"queries": 0, "seconds": 0.0, "peak_mb": None} for stage in BENCH_STAGES}
    for tenant in tenants:
        runs = [False, True] if with_memory else [False]
        for memory_run in runs:
            with engine.connect() as conn:
                transaction = conn.begin()
                figures = _run_path(conn, tenant, path, memory_run)
                transaction.rollback()
            for stage, measured in figures.items():
                if memory_run:
                    total[stage]["peak_mb"] = max(total[stage]["peak_mb"] or 0, measured["peak_mb"])
                else:
                    total[stage]["queries"] += measured["queries"]
                    total[stage]["seconds"] += measured["seconds"]
    return total


def run_bench(
    configured_url: str,
    users: int,
    tenants: int,
    seed: int = 1,
    with_memory: bool = True,
    legacy: bool = True,
    options: PassOptions | None = None,
) -> dict:
    """`options`: the pass options the settings make (Settings.pass_options); the defaults without."""
    with scratch_database(configured_url) as (engine, kind), tempfile.TemporaryDirectory() as folder:
        upgrade(engine)
        folders = write_snapshots(Path(folder) / "synth", tenants, users, seed)
        started = time.perf_counter()
        imported = import_folders(engine, folders)
        keys = [item.tenant for item in imported]
        snapshots = _snapshot_figures(engine, imported, time.perf_counter() - started)
        for key in keys:
            run_tenant_pass(engine, key, ("m365_snapshot", "entities"), options or PassOptions())
        # Peak memory is traced (a second run) on the new path only: tracing the legacy path's
        # hundreds of thousands of statements would take long and says nothing the budget needs.
        chosen = PATHS if legacy else ("new",)
        paths = {path: _path_figures(engine, keys, path, with_memory and path == "new") for path in chosen}
    stages = {}
    for stage in BENCH_STAGES:
        new, old = paths["new"][stage], paths.get("legacy", {}).get(stage)
        stages[stage] = {
            "new": _rounded(new),
            "legacy": _rounded(old) if old else None,
            "ratio": {
                "queries": round(old["queries"] / max(new["queries"], 1), 1),
                "seconds": round(old["seconds"] / max(new["seconds"], 1e-6), 1),
            }
            if old
            else None,
        }
    return {
        "database": kind,
        "users": users,
        "tenants": tenants,
        "snapshots": snapshots,
        "stages": stages,
        "new_total_seconds": round(sum(paths["new"][s]["seconds"] for s in BENCH_STAGES), 3),
        "process_max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


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
    peak = figures["peak_mb"]
    return {
        "queries": figures["queries"],
        "seconds": round(figures["seconds"], 3),
        "peak_mb": round(peak, 1) if peak is not None else None,
    }
