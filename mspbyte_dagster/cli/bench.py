"""`mspbyte bench`: new vs legacy query pattern, measured side by side in one run."""

from __future__ import annotations

import click

from mspbyte_dagster.cli.common import dev_tool, echo_json, expected_errors, fail, main, settings


@main.group(invoke_without_command=True)
@click.pass_context
@click.option("--users", type=click.IntRange(10, 50_000), default=1_000, show_default=True)
@click.option("--tenants", "tenant_count", type=click.IntRange(1, 100), default=1, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option(
    "--memory/--no-memory",
    default=True,
    show_default=True,
    help="Also measure peak memory per stage of the new path (a second, traced run).",
)
@click.option(
    "--legacy/--no-legacy",
    default=True,
    show_default=True,
    help="Also run the legacy path (slow at large sizes: one statement per entity and edge).",
)
@click.option(
    "--repeat",
    type=click.IntRange(1, 50),
    default=3,
    show_default=True,
    help="Runs of each path: seconds are their median, with the spread (one run is noise on a shared machine).",
)
@click.option(
    "--sources",
    default="m365",
    show_default=True,
    help="Data sources of each tenant, comma-separated: m365,sophos gives it as many endpoints as users.",
)
@click.option("--json", "as_json", is_flag=True)
@expected_errors
def bench(
    ctx: click.Context,
    users: int,
    tenant_count: int,
    seed: int,
    memory: bool,
    legacy: bool,
    repeat: int,
    sources: str,
    as_json: bool,
) -> None:
    """Synthetic tenants on a scratch database of DATABASE_URL's kind: queries, seconds, peak MB, ratios,
    and the floor (reading the tenant's rows and writing its alerts in one bulk statement).
    `mspbyte bench fleet` measures a fleet through the production stack instead."""
    if ctx.invoked_subcommand is not None:
        return
    bench_tool = dev_tool("bench", "bench")
    options = settings().pass_options(run_id="mspbyte-bench")
    chosen = [source.strip() for source in sources.split(",") if source.strip()]
    result = bench_tool.run_bench(
        settings().database_url, users, tenant_count, seed, memory, legacy, options, repeat=repeat, sources=chosen
    )
    if as_json:
        echo_json(result)
        return
    click.echo(f"{result['database']}: {tenant_count} tenant(s) x {users} users, sources {', '.join(chosen)}")
    kept = result["snapshots"]
    click.echo(
        f"snapshots: imported in {kept['import_seconds']} s; {kept['raw_mb']} MB of JSON stored as "
        f"{kept['stored_mb']} MB; read back and validated in {kept['load_seconds_per_tenant']} s a tenant"
    )
    click.echo(f"{'stage':<15}{'path':<8}{'queries':>9}{'seconds':>10}{'spread':>16}{'peak MB':>9}")
    for stage in bench_tool.BENCH_STAGES:
        figures = result["stages"][stage]
        for path in ("new", "legacy"):
            f = figures[path]
            if f is None:
                continue
            peak = "-" if f["peak_mb"] is None else f"{f['peak_mb']:.1f}"
            spread = f"{f['spread'][0]:.3f}-{f['spread'][1]:.3f}"
            click.echo(f"{stage:<15}{path:<8}{f['queries']:>9}{f['seconds']:>10.3f}{spread:>16}{peak:>9}")
        ratio = figures["ratio"]
        if ratio:
            click.echo(f"{'':<15}{'ratio':<8}{ratio['queries']:>8}x{ratio['seconds']:>9}x")
    low, high = result["new_total_seconds_spread"]
    click.echo(
        f"new path, linking to alerts: {result['new_total_seconds_median']} s median of {repeat} "
        f"({low}-{high}, the collection after it {result['collector_seconds']} s included); "
        f"floor {result['floor_seconds']} s ({result['ratio_to_floor']}x); "
        f"process peak RSS {result['process_max_rss_mb']} MB"
        + (f" ({result['traced_process_max_rss_mb']} MB after tracing memory)" if memory else "")
    )


@bench.command("fleet")
@click.option("--tenants", "tenant_count", type=click.IntRange(1, 10_000), default=100, show_default=True)
@click.option("--users", type=click.IntRange(10, 10_000), default=100, show_default=True)
@click.option("--workers", type=click.IntRange(1, 32), default=2, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@expected_errors
def bench_fleet(tenant_count: int, users: int, workers: int, seed: int, as_json: bool) -> None:
    """A synthetic fleet refreshed through the production stack (daemon, Celery workers) on scratch
    databases of DATABASE_URL's PostgreSQL server, the broker of CELERY_BROKER_URL (else REDIS_URL) and
    NATS_URL; and the same fleet's `mspbyte run --all` in one process, in the same run."""
    current = settings()
    broker = current.celery_broker_url or current.redis_url
    if not current.database_url.startswith("postgresql") or not broker or not current.nats_url:
        fail(
            "bench fleet runs the production stack: set DATABASE_URL to a PostgreSQL server, CELERY_BROKER_URL "
            "(or REDIS_URL) and NATS_URL (scratch databases, a queue and streams of its own are made there)"
        )
    fleet = dev_tool("fleet", "bench fleet")
    result = fleet.run_fleet_bench(current.database_url, broker, current.nats_url, tenant_count, users, workers, seed)
    if as_json:
        echo_json(result)
        return
    click.echo(
        f"{tenant_count} tenants x {users} users, {workers} worker(s): {result['wall_seconds']} s through the "
        f"daemon ({result['runs_launched']} runs, {result['tenants_succeeded']} tenants succeeded, "
        f"{result['tenants_per_second']} tenants/s); mspbyte run --all in one process: "
        f"{result['in_process_seconds']} s (ratio {result['ratio_to_in_process']})"
    )
    click.echo(
        f"where the time went: a run waited {result['queued_seconds_median']} s (median) for a slot and took "
        f"{result['launch_seconds_median']} s from launch to its worker; runs "
        f"{result['run_seconds_total']} s in all, of which the passes {result['tenant_work_seconds']} s and "
        f"Dagster {result['dagster_overhead_seconds']} s ({result['events']} events)"
    )
