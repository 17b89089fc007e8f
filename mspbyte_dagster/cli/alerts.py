"""`mspbyte alerts` and `mspbyte thresholds`: what an engineer does with alerts between passes."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import click

from mspbyte_dagster.cli.common import app_engine, echo_json, expected_errors, main
from mspbyte_dagster.lib.model import SEVERITY_RANK
from mspbyte_dagster.lib.shown import terminal_text


@main.group()
def alerts() -> None:
    """List, suppress, trace and export alerts."""


@alerts.command("list")
@click.option("--tenant")
@click.option("--status", type=click.Choice(["active", "suppressed", "resolved"]))
@click.option("--json", "as_json", is_flag=True)
@expected_errors
def alerts_list(tenant: str | None, status: str | None, as_json: bool) -> None:
    """Alerts, most severe first, optionally of one tenant and one status."""
    from mspbyte_dagster.lib.store.alert_store import list_alerts
    from mspbyte_dagster.lib.store.tenants import require_tenant

    with app_engine(read_only=True).connect() as conn:
        if tenant:
            require_tenant(conn, tenant)
        rows = list_alerts(conn, tenant, status)
    rows.sort(key=lambda row: (-SEVERITY_RANK.get(row["severity"], 0), row["tenant"], row["id"]))
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("no alerts")
        return
    click.echo(f"{'ID':>6} {'TENANT':<20} {'SEVERITY':<9}{'STATUS':<11}{'TYPE':<24}ENTITY  MESSAGE")
    for row in rows:
        acknowledged = f"  [acknowledged by {terminal_text(row['acknowledged_by'])}]" if row["acknowledged_by"] else ""
        click.echo(
            f"{row['id']:>6} {row['tenant']:<20} {row['severity']:<9}{row['status']:<11}"
            f"{row['alert_type']:<24}{row['entity_type']}:{terminal_text(row['entity_id'])}  "
            f"{terminal_text(row['message'])}{acknowledged}"
        )


@alerts.command("suppress")
@click.argument("alert_id", type=click.IntRange(1, 2**63 - 1))
@click.option("--reason", required=True)
@click.option(
    "--until",
    "until",
    required=True,
    type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
    help="Expiry (UTC), at most 90 days ahead.",
)
@click.option("--json", "as_json", is_flag=True)
@expected_errors
def alerts_suppress(alert_id: int, reason: str, until: datetime, as_json: bool) -> None:
    """Silence an alert until a date; it comes back (reopened) if the finding outlives it."""
    from mspbyte_dagster.lib.store.alert_store import suppress_alert

    with app_engine().begin() as conn:
        row = suppress_alert(conn, alert_id, reason, until.replace(tzinfo=UTC), datetime.now(UTC))
    if as_json:
        echo_json(row)
    else:
        click.echo(f"alert {alert_id} suppressed until {row['suppressed_until']}")


@alerts.command("unsuppress")
@click.argument("alert_id", type=click.IntRange(1, 2**63 - 1))
@click.option("--json", "as_json", is_flag=True)
@expected_errors
def alerts_unsuppress(alert_id: int, as_json: bool) -> None:
    """End a suppression now: the alert is active again."""
    from mspbyte_dagster.lib.store.alert_store import unsuppress_alert

    with app_engine().begin() as conn:
        row = unsuppress_alert(conn, alert_id, datetime.now(UTC))
    if as_json:
        echo_json(row)
    else:
        click.echo(f"alert {alert_id} is active again")


@alerts.command("acknowledge")
@click.argument("alert_id", type=click.IntRange(1, 2**63 - 1))
@click.option("--by", "by", required=True, help="Who acknowledges it (shown in `alerts list` and its history).")
@click.option("--json", "as_json", is_flag=True)
@expected_errors
def alerts_acknowledge(alert_id: int, by: str, as_json: bool) -> None:
    """Record that someone has seen the alert and owns it; it stays open until its finding goes."""
    from mspbyte_dagster.lib.store.alert_store import acknowledge_alert

    with app_engine().begin() as conn:
        row = acknowledge_alert(conn, alert_id, by, datetime.now(UTC))
    echo_json(row) if as_json else click.echo(
        f"alert {alert_id} acknowledged by {terminal_text(row['acknowledged_by'])}"
    )


@alerts.command("history")
@click.argument("alert_id", type=click.IntRange(1, 2**63 - 1))
@click.option("--json", "as_json", is_flag=True)
@expected_errors
def alerts_history(alert_id: int, as_json: bool) -> None:
    """An alert and every action taken on it, oldest first."""
    from mspbyte_dagster.lib.store.alert_store import alert_history

    with app_engine(read_only=True).connect() as conn:
        history = alert_history(conn, alert_id)
    if as_json:
        echo_json(history)
        return
    click.echo(
        f"{history['alert_type']} on {history['entity_type']}:{terminal_text(history['entity_id'])} "
        f"({history['status']})"
    )
    for event in history["events"]:
        details = json.dumps(event["details"], ensure_ascii=False, sort_keys=True) if event["details"] else ""
        click.echo(f"  {event['at']}  {event['action']:<12} {event['severity'] or '':<9} {terminal_text(details)}")


@alerts.command("export")
@click.option("--tenant", required=True)
@click.option("--out", type=click.Path(dir_okay=False, writable=True), help="File to write (default: stdout).")
@expected_errors
def alerts_export(tenant: str, out: str | None) -> None:
    """A tenant's open (active and suppressed) alerts as CSV; no cell is a formula a spreadsheet runs."""
    import pandas as pd

    from mspbyte_dagster.lib.reports.spreadsheet import csv_bytes
    from mspbyte_dagster.lib.store.alert_store import LIST_FIELDS, list_alerts
    from mspbyte_dagster.lib.store.tenants import require_tenant

    with app_engine(read_only=True).connect() as conn:
        require_tenant(conn, tenant)
        rows = [row for status in ("active", "suppressed") for row in list_alerts(conn, tenant, status)]
    text = csv_bytes(pd.DataFrame(rows, columns=list(LIST_FIELDS))).decode()
    if out:
        with open(out, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
    else:
        click.echo(text, nl=False)


@main.group()
def thresholds() -> None:
    """Per-tenant rule thresholds (stale_days, unused_license_threshold, endpoint_stale_days)."""


@thresholds.command("get")
@click.argument("tenant")
@click.option("--json", "as_json", is_flag=True)
@expected_errors
def thresholds_get(tenant: str, as_json: bool) -> None:
    from mspbyte_dagster.lib.store.tenants import thresholds as read

    with app_engine(read_only=True).connect() as conn:
        values = read(conn, tenant)
    if as_json:
        echo_json(values)
    else:
        for name, value in values.items():
            click.echo(f"{name} = {value}")


# A negative value is a value to refuse by range, not an option to refuse as unknown.
@thresholds.command("set", context_settings={"ignore_unknown_options": True})
@click.argument("tenant")
@click.argument("name")
@click.argument("value", type=int)
@expected_errors
def thresholds_set(tenant: str, name: str, value: int) -> None:
    """Change a threshold; the tenant's next pass uses it."""
    from mspbyte_dagster.lib.store.tenants import set_threshold

    with app_engine().begin() as conn:
        values = set_threshold(conn, tenant, name, value)
    click.echo(f"{tenant}: {name} = {values[name]}")
