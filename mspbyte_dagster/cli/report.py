"""`mspbyte report`: a tenant's customer report, or the fleet view, written to a folder."""

from __future__ import annotations

import zlib
from datetime import UTC, datetime
from pathlib import Path

import click

from mspbyte_dagster.cli.common import app_engine, expected_errors, fail, main, settings


@main.command()
@click.option("--tenant", help="The tenant whose customer report to build.")
@click.option("--fleet", is_flag=True, help="The fleet view instead: one row per tenant (Parquet and CSV).")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Folder to write to.")
@expected_errors
def report(tenant: str | None, fleet: bool, out: Path) -> None:
    """Build a report now (kept in the app database too) and write its files to --out."""
    if bool(tenant) == fleet:
        fail("name a tenant with --tenant ID, or use --fleet")
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    files = _fleet() if fleet else _tenant(tenant)
    prefix = "fleet-posture" if fleet else f"{tenant}-report"
    for kind, content in files.items():
        path = out / f"{prefix}-{stamp}.{kind}"
        path.write_bytes(content)
        click.echo(str(path))


def _tenant(tenant: str) -> dict[str, bytes]:
    """The report stage as a pass of its own (under the tenant's lease, with its ledger row)."""
    from sqlalchemy import select

    from mspbyte_dagster.lib.passes import REPORT
    from mspbyte_dagster.lib.pipeline import run_tenant_pass
    from mspbyte_dagster.lib.store.schema import tenant_reports
    from mspbyte_dagster.lib.store.tenants import require_tenant

    engine = app_engine()
    with engine.connect() as conn:
        require_tenant(conn, tenant)
    result = run_tenant_pass(engine, tenant, (REPORT,), settings().pass_options(run_id=None))
    if result.status != "succeeded":
        fail(f"tenant {tenant}: the report was not built: {result.status}: {result.reason}", code=1)
    c = tenant_reports.c
    with engine.connect() as conn:
        row = conn.execute(select(c.html, c.csv, c.xlsx).where(c.id == result.stages[REPORT]["report_id"])).one()
    return {kind: zlib.decompress(getattr(row, kind)) for kind in ("html", "csv", "xlsx")}


def _fleet() -> dict[str, bytes]:
    from mspbyte_dagster.lib.reports.fleet import build_fleet_posture

    with app_engine().begin() as conn:
        _frame, files, _export_id = build_fleet_posture(conn, datetime.now(UTC))
    return files
