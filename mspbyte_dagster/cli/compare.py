"""`mspbyte compare`: one tenant's pass with both paths, and what differs between them."""

from __future__ import annotations

import click

from mspbyte_dagster.cli.common import app_engine, echo_json, expected_errors, fail, main, settings


@main.command()
@click.option("--tenant", required=True)
@click.option("--json", "as_json", is_flag=True)
@expected_errors
def compare(tenant: str, as_json: bool) -> None:
    """Run the tenant's pass with both paths and compare them; nothing is written (the whole pass is rolled back)."""
    from mspbyte_dagster.cli.flags import flag_manager
    from mspbyte_dagster.lib.passes import ASSETS
    from mspbyte_dagster.lib.pipeline import run_tenant_pass
    from mspbyte_dagster.lib.store.tenants import require_tenant

    engine = app_engine()
    with engine.connect() as conn:
        require_tenant(conn, tenant)
    options = settings().pass_options(run_id="mspbyte-compare", flags=flag_manager(), compare=True, read_only=True)
    result = run_tenant_pass(engine, tenant, ASSETS, options)
    if result.comparison is None:
        fail(f"{tenant}: no comparison, the pass ended {result.status}: {result.reason}", code=1)
    if as_json:
        echo_json({k: v for k, v in result.comparison.items() if k != "report_markdown"})
    else:
        click.echo(result.comparison["report_markdown"])
