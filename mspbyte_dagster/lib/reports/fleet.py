"""The fleet view for the MSP itself: one row per tenant with its posture figures and open alerts, as
Parquet and CSV, and the tenants most in need of attention. Three reads whatever the fleet's size."""

from __future__ import annotations

import io
from datetime import datetime

import pandas as pd
from sqlalchemy import Connection

from mspbyte_dagster.lib.model import SEVERITIES
from mspbyte_dagster.lib.reports.posture import FIGURES, shown_figure
from mspbyte_dagster.lib.reports.spreadsheet import csv_bytes
from mspbyte_dagster.lib.shown import markdown_cell
from mspbyte_dagster.lib.store import reports

# Attention: open alerts weighted by severity (a critical outweighs a page of lows).
WEIGHTS = {"critical": 100, "high": 10, "medium": 3, "low": 1}
SHOWN = 10


def fleet_posture(conn: Connection) -> pd.DataFrame:
    latest = reports.latest_figures(conn)
    counts = reports.open_counts(conn)
    rows = []
    for tenant, name in reports.fleet_tenants(conn):
        started, stages = latest.get(tenant, (None, {}))
        posture = ((stages or {}).get("findings") or {}).get("posture") or {}
        waste = posture.get("licence_waste_units")
        open_alerts = counts.get(tenant, {})
        rows.append(
            {
                "tenant": tenant,
                "name": name,
                "last_full_pass": started,
                **{figure: posture.get(figure) for figure in FIGURES if figure != "licence_waste_units"},
                "licence_waste_units": sum(waste.values()) if waste is not None else None,
                **{  # other integrations' figures, where the tenant has that source (Sophos Central)
                    f"{source}_{name}": value
                    for source, figures in posture.items()
                    if isinstance(figures, dict) and source != "licence_waste_units"
                    for name, value in figures.items()
                },
                **{f"open_{severity}": open_alerts.get(severity, 0) for severity in SEVERITIES},
                "attention": sum(WEIGHTS[s] * n for s, n in open_alerts.items()),
            }
        )
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    return frame.sort_values(["attention", "tenant"], ascending=[False, True]).reset_index(drop=True)


def most_in_need(frame: pd.DataFrame) -> str:
    """A Markdown table of the tenants with the heaviest open alerts."""
    if frame.empty:
        return "No tenants yet."
    needing = frame[frame["attention"] > 0].head(SHOWN)
    if needing.empty:
        return f"None of the {len(frame)} tenant(s) has an open alert."
    lines = [
        "| tenant | critical | high | medium | low | MFA required % | CA covered % |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in needing.itertuples():
        lines.append(
            f"| {markdown_cell(f'{row.name} ({row.tenant})')} | {row.open_critical} | {row.open_high} | "
            f"{row.open_medium} | {row.open_low} | {shown_figure(row.mfa_enforced_pct)} | {shown_figure(row.ca_covered_pct)} |"
        )
    return "\n".join(lines)


def exports(frame: pd.DataFrame) -> dict[str, bytes]:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return {"parquet": buffer.getvalue(), "csv": csv_bytes(frame)}


def build_fleet_posture(conn: Connection, now: datetime) -> tuple[pd.DataFrame, dict[str, bytes], int]:
    """The fleet's frame, its files, and the id of the export kept in the app database."""
    frame = fleet_posture(conn)
    files = exports(frame)
    return frame, files, reports.save_fleet_export(conn, now, len(frame), files)
