"""`mspbyte run`: job tenant_pipeline on the Dagster instance, in this process."""

from __future__ import annotations

import multiprocessing
import os
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from functools import cache

import click

from mspbyte_dagster.cli.common import (
    app_engine,
    configure_logging,
    dagster_instance,
    expected_errors,
    fail,
    main,
    settings,
)
from mspbyte_dagster.cli.tenants import register_partitions
from mspbyte_dagster.lib.batching import tenant_ranges


@main.command()
@click.option("--tenant", "tenant_keys", multiple=True, help="Tenant key (repeatable).")
@click.option("--all", "all_tenants", is_flag=True, help="Every registered tenant.")
@click.option(
    "--jobs",
    type=click.IntRange(1, 64),
    help="Runs at once, each in a process of its own. Default: MAX_CONCURRENT_JOBS, at most one per CPU, "
    "on PostgreSQL; 1 on SQLite, which takes one writer at a time.",
)
@expected_errors
def run(tenant_keys: tuple[str, ...], all_tenants: bool, jobs: int | None) -> None:
    """Run job tenant_pipeline on the Dagster instance (visible in the UI) and wait for it: one run per
    range of at most 50 tenants."""
    from mspbyte_dagster.defs.partitions import TENANTS
    from mspbyte_dagster.lib.store import ledger
    from mspbyte_dagster.lib.store import tenants as tenant_store

    if bool(tenant_keys) == all_tenants:
        fail("name tenants with --tenant ID (repeatable) or use --all")
    engine = app_engine(read_only=True)
    with engine.connect() as conn:
        registered = tenant_store.tenant_keys(conn)
    unknown = [key for key in tenant_keys if key not in registered]
    if unknown:
        fail(f"unknown tenant(s): {', '.join(unknown)}; `mspbyte tenants list` shows the registered ones")
    chosen = registered if all_tenants else list(dict.fromkeys(tenant_keys))
    register_partitions(registered)
    instance = dagster_instance()
    close_orphans(instance)
    ranges = tenant_ranges(instance.get_dynamic_partitions(TENANTS), chosen)
    if jobs is None:
        jobs = 1 if engine.dialect.name == "sqlite" else min(settings().max_concurrent_jobs, os.cpu_count() or 1)
    failed_runs, unfinished = [], {}
    for keys, (run_id, success) in _ranges_run(instance, ranges, jobs, settings().log_level):
        with engine.connect() as conn:
            passes = ledger.passes_of_run(conn, keys, run_id)
        statuses = {row.tenant: row.status for row in passes}
        summary = ", ".join(f"{n} {s}" for s, n in sorted(Counter(statuses.values()).items()))
        click.echo(f"run {run_id} tenants {keys[0]}..{keys[-1]}: {summary or 'no pass recorded'}")
        for row in passes:
            if row.status != "succeeded":
                click.echo(f"  {row.tenant}: {row.status}: {row.reason}", err=True)
            if row.status in ("failed", "held", "skipped"):
                unfinished[row.tenant] = row.status
        if not success:
            failed_runs.append(run_id)
    if unfinished or failed_runs:
        named = ", ".join(f"{tenant} ({status})" for tenant, status in unfinished.items())
        fail(f"not every tenant went through: {named or 'run(s) ' + ', '.join(failed_runs) + ' failed'}", code=1)


def _ranges_run(
    instance, ranges: list[list[str]], jobs: int, log_level: str
) -> Iterator[tuple[list[str], tuple[str, bool]]]:
    """Each range's run (id, success) as it ends: in this process, or `jobs` at a time in worker processes
    (spawned: a forked copy would share this process's database connections). Over PostgreSQL the runs'
    waits on the databases overlap: 1,000 tenants x 100 users took 267 s one run after another, 126 s
    two at a time, on two cores (docs/benchmarks.md)."""
    if jobs == 1 or len(ranges) == 1:
        for keys in ranges:
            yield keys, run_range(keys, log_level, instance)
        return
    context = multiprocessing.get_context("spawn")
    workers = min(jobs, len(ranges))
    with ProcessPoolExecutor(workers, mp_context=context, initializer=configure_logging, initargs=(log_level,)) as pool:
        started = {pool.submit(run_range, keys, log_level): keys for keys in ranges}
        for done in as_completed(started):
            yield started[done], done.result()


@cache
def _worker_instance():
    """A worker process's Dagster instance, made once for all its ranges (DAGSTER_HOME as the parent set it)."""
    from dagster import DagsterInstance

    return DagsterInstance.get()


def run_range(keys: list[str], log_level: str, instance=None) -> tuple[str, bool]:
    """One run of job tenant_pipeline over a range of tenants, in this process (on `instance`, or the
    worker's own); its id and success. Each tenant's outcome is printed once, by the pipeline's own log
    line; Dagster's event log (a failure's stack traces included) stays in the UI, or shows here with
    LOG_LEVEL=debug."""
    from mspbyte_dagster.definitions import defs
    from mspbyte_dagster.defs.partitions import PROCESS_TAG, range_tags
    from mspbyte_dagster.lib.store.lease import process_name

    console_level = "DEBUG" if log_level == "debug" else "CRITICAL"
    result = defs.resolve_job_def("tenant_pipeline").execute_in_process(
        run_config={"loggers": {"console": {"config": {"log_level": console_level}}}},
        instance=instance or _worker_instance(),
        tags=range_tags(keys, trigger="cli") | {PROCESS_TAG: process_name()},
        raise_on_error=False,
    )
    return result.run_id, result.success


def close_orphans(instance) -> None:
    """What a killed `mspbyte run` left behind (no daemon watches in-process runs): its ledger rows
    `running` and its Dagster runs STARTED. Both are marked failed, saying why."""
    from dagster import DagsterRunStatus, RunsFilter

    from mspbyte_dagster.defs.partitions import PROCESS_TAG, TRIGGER_TAG
    from mspbyte_dagster.lib.store import ledger
    from mspbyte_dagster.lib.store.lease import is_dead_here

    with app_engine().begin() as conn:
        tenants = ledger.fail_orphans(conn, is_dead_here)
    if tenants:
        click.echo(f"passes of a killed mspbyte run marked failed: {', '.join(tenants)}", err=True)
    for run in instance.get_runs(filters=RunsFilter(statuses=[DagsterRunStatus.STARTED], tags={TRIGGER_TAG: "cli"})):
        process = run.tags.get(PROCESS_TAG)
        if is_dead_here(process):
            instance.report_run_failed(run, message=f"the mspbyte run process ({process}) died before the run ended")
            click.echo(f"run {run.run_id} of a killed mspbyte run marked failed", err=True)
