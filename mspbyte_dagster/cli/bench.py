"""`mspbyte bench`: new vs legacy query pattern, measured side by side in one run."""

from __future__ import annotations

import click

from mspbyte_dagster.cli.common import dev_tool, echo_json, expected_errors, main, settings


@main.command()
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
    users: int, tenant_count: int, seed: int, memory: bool, legacy: bool, repeat: int, sources: str, as_json: bool
) -> None:
    """Synthetic tenants on a scratch database of DATABASE_URL's kind: queries, seconds, peak MB, ratios,
    and the floor (reading the tenant's rows and writing its alerts in one bulk statement)."""
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
        f"({low}-{high}); floor {result['floor_seconds']} s ({result['ratio_to_floor']}x); "
        f"process peak RSS {result['process_max_rss_mb']} MB"
    )
