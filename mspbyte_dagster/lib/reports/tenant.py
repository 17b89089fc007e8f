"""The tenant report: what an MSP sends its customer. One self-contained HTML page (inline CSS and
chart, nothing fetched), and the same tables as CSV and XLSX.

Its data is the tenant's own only: its posture figures (from its latest full pass), its open alerts by
severity and type, what opened and resolved since its previous report, and its open alerts by
severity over its last passes.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from datetime import datetime

import pandas as pd
from jinja2 import Environment, select_autoescape
from markupsafe import Markup
from sqlalchemy import Connection

from mspbyte_dagster.lib.model import SEVERITIES, SEVERITY_RANK
from mspbyte_dagster.lib.reports.posture import shown_figure
from mspbyte_dagster.lib.reports.spreadsheet import csv_bytes, xlsx_bytes
from mspbyte_dagster.lib.store import reports

HISTORY_PASSES = 30
COLOURS = {"critical": "#7b1fa2", "high": "#d32f2f", "medium": "#f57c00", "low": "#1976d2"}
POSTURE_LABELS = {
    "enabled_members": "Enabled member accounts",
    "mfa_enforced_pct": "MFA required for all apps (% of members)",
    "mfa_registered_pct": "Registered for MFA (% of members)",
    "ca_covered_pct": "Covered by an enabled Conditional Access policy (% of members)",
    "stale_accounts": "Stale accounts",
}


@dataclass
class TenantReport:
    tenant: str
    name: str
    created_at: datetime
    posture: dict
    open_alerts: pd.DataFrame
    by_type: pd.DataFrame
    changes: pd.DataFrame
    history: pd.DataFrame
    first: bool  # no previous report: every change since the tenant began

    def figures(self) -> dict:
        """What the next report compares with, and what `alerts list` would count."""
        counts = self.open_alerts[self.open_alerts["status"] == "active"]["severity"].value_counts()
        return {
            "posture": self.posture,
            "open_by_severity": {severity: int(counts.get(severity, 0)) for severity in SEVERITIES},
            "opened": int((self.changes["change"] == "opened").sum()) if len(self.changes) else 0,
            "resolved": int((self.changes["change"] == "resolved").sum()) if len(self.changes) else 0,
        }


def build_report(conn: Connection, tenant: str, name: str, now: datetime) -> TenantReport:
    previous = reports.previous_report(conn, tenant)
    latest = reports.latest_figures(conn, tenant).get(tenant)
    posture = ((latest[1] or {}).get("findings") or {}).get("posture") or {} if latest else {}
    open_alerts = pd.DataFrame(
        [
            {
                "id": row.id,
                "severity": row.severity,
                "status": row.status,
                "alert_type": row.alert_type,
                "entity": f"{row.entity_type}:{row.entity_id}" + (f" ({row.sku_id})" if row.sku_id else ""),
                "message": row.message,
                "since": row.first_seen_at.date().isoformat(),
            }
            for row in reports.open_alert_rows(conn, tenant)
        ],
        columns=["id", "severity", "status", "alert_type", "entity", "message", "since"],
    )
    open_alerts["rank"] = open_alerts["severity"].map(SEVERITY_RANK)
    open_alerts = open_alerts.sort_values(["rank", "id"], ascending=[False, True]).drop(columns="rank")
    active = open_alerts[open_alerts["status"] == "active"]
    by_type = _by_type(active)
    changes = pd.DataFrame(
        [
            {
                "change": "resolved" if row.action == "resolved" else "opened",
                "at": row.at.strftime("%Y-%m-%d %H:%M"),
                "severity": row.severity,
                "alert_type": row.alert_type,
                "entity": f"{row.entity_type}:{row.entity_id}",
                "message": row.message,
            }
            for row in reports.changes_since(conn, tenant, previous.created_at if previous else None)
        ],
        columns=["change", "at", "severity", "alert_type", "entity", "message"],
    )
    history = pd.DataFrame(
        [
            {
                "pass": row.started_at,
                **{s: (row.stages["alerts"].get("open_by_severity") or {}).get(s, 0) for s in SEVERITIES},
            }
            for row in reports.pass_history(conn, tenant, HISTORY_PASSES)
        ],
        columns=["pass", *SEVERITIES],
    )
    return TenantReport(tenant, name, now, posture, open_alerts, by_type, changes, history, previous is None)


def _by_type(active: pd.DataFrame) -> pd.DataFrame:
    """Active alerts per type and severity (a pivot), most frequent type first."""
    if active.empty:
        return pd.DataFrame(columns=["alert_type", *SEVERITIES, "total"])
    pivot = pd.pivot_table(active, index="alert_type", columns="severity", values="id", aggfunc="count", fill_value=0)
    pivot = pivot.reindex(columns=SEVERITIES, fill_value=0)
    pivot["total"] = pivot.sum(axis=1)
    return pivot.sort_values(["total", "alert_type"], ascending=[False, True]).reset_index().rename_axis(columns=None)


def posture_table(report: TenantReport) -> pd.DataFrame:
    rows = [{"figure": label, "value": shown_figure(report.posture.get(key))} for key, label in POSTURE_LABELS.items()]
    for source, figures in report.posture.items():  # other integrations' figures, where the tenant has them
        if isinstance(figures, dict) and source != "licence_waste_units":
            rows += [
                {"figure": f"{source}: {name.replace('_', ' ')}", "value": shown_figure(value)}
                for name, value in figures.items()
            ]
    waste = report.posture.get("licence_waste_units")
    if waste is None:
        rows.append({"figure": "Licences wasted", "value": "not known"})
    for sku, units in (waste or {}).items():
        rows.append({"figure": f"Licences wasted: {sku}", "value": shown_figure(units)})
    return pd.DataFrame(rows, columns=["figure", "value"], dtype=object)


def chart_svg(history: pd.DataFrame) -> str:
    """Open alerts by severity over the last passes, as inline SVG (text as paths: no font fetched)."""
    from matplotlib import rc_context  # imported here: a pass that builds no report never loads it
    from matplotlib.figure import Figure  # no pyplot: no global state shared by the run's threads

    figure = Figure(figsize=(8, 2.8))
    axes = figure.subplots()
    if len(history):
        bottom = None
        positions = list(range(len(history)))
        for severity in reversed(SEVERITIES):
            axes.bar(positions, history[severity], bottom=bottom, color=COLOURS[severity], label=severity)
            bottom = history[severity] if bottom is None else bottom + history[severity]
        axes.set_xticks(positions, [moment.strftime("%m-%d %H:%M") for moment in history["pass"]])
        axes.legend(loc="lower left", bbox_to_anchor=(0, 1.0), fontsize=8, ncols=4, frameon=False)
        axes.tick_params(axis="x", labelrotation=60, labelsize=7)
    else:
        axes.text(0.5, 0.5, "no pass recorded yet", ha="center", va="center", transform=axes.transAxes)
    axes.set_ylabel("open alerts")
    axes.spines[["top", "right"]].set_visible(False)
    figure.tight_layout()
    buffer = io.StringIO()
    with rc_context({"svg.fonttype": "path"}):  # text as paths: no font to fetch or to lack
        figure.savefig(buffer, format="svg")
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :]  # without the XML prolog and doctype: inline in HTML
    return re.sub(r"<metadata>.*?</metadata>", "", svg, flags=re.S)  # matplotlib's RDF block and timestamp


TEMPLATE = Environment(autoescape=select_autoescape(default=True, default_for_string=True)).from_string(
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>Security report: {{ report.name }}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2rem;color:#222;max-width:1100px}
h1{margin-bottom:.2rem} .sub{color:#666;margin-top:0}
table{border-collapse:collapse;margin:.5rem 0 1.5rem;width:100%}
th,td{border-bottom:1px solid #ddd;padding:.3rem .5rem;text-align:left;vertical-align:top;font-size:.9rem}
th{background:#f5f5f5} .num{text-align:right}
.critical{color:#7b1fa2;font-weight:600}.high{color:#d32f2f;font-weight:600}.medium{color:#f57c00}.low{color:#1976d2}
.counts span{display:inline-block;margin-right:1.5rem;font-size:1.1rem}
</style></head><body>
<h1>Security report: {{ report.name }}</h1>
<p class="sub">Tenant {{ report.tenant }} &middot; {{ report.created_at.strftime("%Y-%m-%d %H:%M") }} UTC</p>
<h2>Posture</h2>
<table><tr><th>figure</th><th class="num">value</th></tr>
{% for row in posture %}<tr><td>{{ row.figure }}</td><td class="num">{{ row.value }}</td></tr>{% endfor %}
</table>
<h2>Open alerts</h2>
<p class="counts">{% for severity, count in figures.open_by_severity.items() %}<span class="{{ severity }}">{{ severity }}: {{ count }}</span>{% endfor %}</p>
{% if by_type %}<table><tr><th>alert type</th>{% for s in severities %}<th class="num">{{ s }}</th>{% endfor %}<th class="num">total</th></tr>
{% for row in by_type %}<tr><td>{{ row.alert_type }}</td>{% for s in severities %}<td class="num">{{ row[s] }}</td>{% endfor %}<td class="num">{{ row.total }}</td></tr>{% endfor %}
</table>{% else %}<p>No open alerts.</p>{% endif %}
<h2>Open alerts over the last passes</h2>
{{ chart }}
<h2>Since the {{ "first pass" if report.first else "previous report" }}</h2>
<p>{{ figures.opened }} opened, {{ figures.resolved }} resolved.</p>
{% if changes %}<table><tr><th>change</th><th>when</th><th>severity</th><th>alert</th><th>entity</th><th>message</th></tr>
{% for row in changes %}<tr><td>{{ row.change }}</td><td>{{ row.at }}</td><td class="{{ row.severity }}">{{ row.severity }}</td><td>{{ row.alert_type }}</td><td>{{ row.entity }}</td><td>{{ row.message }}</td></tr>{% endfor %}
</table>{% endif %}
<h2>Every open alert</h2>
{% if alerts %}<table><tr><th>id</th><th>severity</th><th>status</th><th>alert</th><th>entity</th><th>message</th><th>since</th></tr>
{% for row in alerts %}<tr><td>{{ row.id }}</td><td class="{{ row.severity }}">{{ row.severity }}</td><td>{{ row.status }}</td><td>{{ row.alert_type }}</td><td>{{ row.entity }}</td><td>{{ row.message }}</td><td>{{ row.since }}</td></tr>{% endfor %}
</table>{% else %}<p>None.</p>{% endif %}
</body></html>
"""
)


def render(report: TenantReport, figures: dict) -> dict[str, bytes]:
    """html, csv (the open alerts) and xlsx (every table, a sheet each)."""
    posture = posture_table(report)
    html = TEMPLATE.render(
        report=report,
        figures=figures,
        posture=posture.to_dict("records"),
        by_type=report.by_type.to_dict("records"),
        severities=SEVERITIES,
        changes=report.changes.to_dict("records"),
        alerts=report.open_alerts.to_dict("records"),
        chart=Markup(chart_svg(report.history)),  # noqa: S704 (our own SVG: dates and counts, no tenant text)
    )
    sheets = {
        "posture": posture,
        "open alerts": report.open_alerts,
        "by type": report.by_type,
        "changes": report.changes,
        "history": report.history.assign(**{"pass": report.history["pass"].astype(str)}),
    }
    return {"html": html.encode(), "csv": csv_bytes(report.open_alerts), "xlsx": xlsx_bytes(sheets)}
