"""`mspbyte run`: job tenant_pipeline on the Dagster instance, in this process."""

from __future__ import annotations

from collections import Counter

import click

from mspbyte_dagster.cli.common import app_engine, dagster_instance, expected_errors, fail, main, settings
from mspbyte_dagster.cli.tenants import register_partitions
from mspbyte_dagster.lib.batching import tenant_ranges


@main.command()
@click.option("--tenant", "tenant_keys", multiple=True, help="Tenant key (repeatable).")
@click.option("--all", "all_tenants", is_flag=True, help="Every registered tenant.")
@expected_errors
def run(tenant_keys: tuple[str, ...], all_tenants: bool) -> None:
    """Run job tenant_pipeline on the Dagster instance (visible in the UI) and wait for it."""
    from mspbyte_dagster.definitions import defs
    from mspbyte_dagster.defs.partitions import PROCESS_TAG, TENANTS, range_tags
    from mspbyte_dagster.lib.store import ledger
    from mspbyte_dagster.lib.store import tenants as tenant_store
    from mspbyte_dagster.lib.store.lease import process_name

    if bool(tenant_keys) == all_tenants:
        fail("name tenants with --tenant ID (repeatable) or use --all")
    with app_engine(read_only=True).connect() as conn:
        registered = tenant_store.tenant_keys(conn)
    unknown = [key for key in tenant_keys if key not in registered]
    if unknown:
        fail(f"unknown tenant(s): {', '.join(unknown)}; `mspbyte tenants list` shows the registered ones")
    chosen = registered if all_tenants else list(dict.fromkeys(tenant_keys))
    register_partitions(registered)
    instance = dagster_instance()
    close_orphans(instance)
    job = defs.resolve_job_def("tenant_pipeline")
    # Each tenant's outcome is printed once, by the pipeline's own log line, and summed up below; Dagster's
    # event log (a failure's stack traces included) stays in the UI, or shows here with LOG_LEVEL=debug.
    console_level = "DEBUG" if settings().log_level == "debug" else "CRITICAL"
    failed_runs, unfinished = [], {}
    for keys in tenant_ranges(instance.get_dynamic_partitions(TENANTS), chosen):
        result = job.execute_in_process(
            run_config={"loggers": {"console": {"config": {"log_level": console_level}}}},
            instance=instance,
            tags=range_tags(keys, trigger="cli") | {PROCESS_TAG: process_name()},
            raise_on_error=False,
        )
        with app_engine(read_only=True).connect() as conn:
            passes = ledger.passes_of_run(conn, keys, result.run_id)
        statuses = {row.tenant: row.status for row in passes}
        summary = ", ".join(f"{n} {s}" for s, n in sorted(Counter(statuses.values()).items()))
        click.echo(f"run {result.run_id} tenants {keys[0]}..{keys[-1]}: {summary or 'no pass recorded'}")
        for row in passes:
            if row.status != "succeeded":
                click.echo(f"  {row.tenant}: {row.status}: {row.reason}", err=True)
            if row.status in ("failed", "held", "skipped"):
                unfinished[row.tenant] = row.status
        if not result.success:
            failed_runs.append(result.run_id)
    if unfinished or failed_runs:
        named = ", ".join(f"{tenant} ({status})" for tenant, status in unfinished.items())
        fail(f"not every tenant went through: {named or 'run(s) ' + ', '.join(failed_runs) + ' failed'}", code=1)


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
